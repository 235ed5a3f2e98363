"""Messages taken after hours, delivered when the account's business hours start."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from dispatch import events, messages
from dispatch.engine import DispatchEngine, sms_from
from dispatch.models import Account, Dispatch, DispatchState, Member, OutboxMessage
from dispatch.schedule import window_kinds

logger = logging.getLogger(__name__)

PURPOSE = "message_delivery"
# Messages older than this are not delivered any more: a week-old callback request is stale,
# and the admin log still shows it.
MAX_AGE_DAYS = 7


def deliver_taken_messages(engine: DispatchEngine) -> list[int]:
    """Queue each undelivered taken message to its route's message pool if the office is open.

    Returns the ids of the dispatches whose message was queued now.
    """
    delivered = select(OutboxMessage.dispatch_id).where(OutboxMessage.purpose == PURPOSE)
    pending = (
        engine.session.execute(
            select(Dispatch)
            .where(
                Dispatch.state == DispatchState.MESSAGE_TAKEN,
                Dispatch.created_at >= engine.now - timedelta(days=MAX_AGE_DAYS),
                Dispatch.id.not_in(delivered.where(OutboxMessage.dispatch_id.is_not(None))),
            )
            .order_by(Dispatch.id)
        )
        .scalars()
        .all()
    )
    queued: list[int] = []
    for dispatch in pending:
        account = engine.session.get(Account, dispatch.account_id)
        assert account is not None
        profile = engine.profile_for(account)
        if "business_hours" not in window_kinds(profile, engine.now):
            continue
        route = engine.route_for(dispatch, profile)
        pool_key = route.message_pool if route else None
        keys = list(profile.pool(pool_key).members) if pool_key else []
        numbers = [
            member.sms_number
            for member in engine.session.execute(
                select(Member).where(
                    Member.account_id == account.id, Member.key.in_(keys), Member.active
                )
            ).scalars()
            if member.sms_number
        ]
        if not numbers:
            continue
        text = _message_text(profile.account.name, profile.account.phi, dispatch)
        for number in numbers:
            engine.queue_sms(
                dispatch,
                to=number,
                body=text,
                purpose=PURPOSE,
                from_number=sms_from(profile),
                dedup_key=f"{PURPOSE}:{dispatch.id}:{number}",
            )
        events.record(
            engine.session,
            "message_delivered",
            at=engine.now,
            account_id=account.id,
            dispatch_id=dispatch.id,
            pool=pool_key,
            recipients=numbers,
        )
        logger.info(
            "dispatch %d: taken message queued to %d members of pool %s",
            dispatch.id,
            len(numbers),
            pool_key,
        )
        queued.append(dispatch.id)
    return queued


def _message_text(account_name: str, phi: bool, dispatch: Dispatch) -> str:
    callback = messages.callback_phrase(
        dispatch.callback_number, dispatch.callback_supplied, dispatch.caller_withheld
    )
    if phi:
        return (
            f"{account_name}: a message was taken ({dispatch.code}). "
            f"Call {dispatch.answering_number} for the details."
        )
    reason = messages.short_reason(dispatch.reason) or "no details given"
    return (
        f"{account_name}: message {dispatch.code} taken after hours. {reason}. "
        f"Call back: {callback}."[: messages.SMS_MAX_CHARS]
    )
