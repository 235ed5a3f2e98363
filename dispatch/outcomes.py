"""Offer outcomes: accepted, passed, ended on every channel, timed out, or cancelled."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatch import events, messages
from dispatch.engine import DispatchEngine, sms_from
from dispatch.models import (
    Channel,
    ChannelState,
    Dispatch,
    DispatchState,
    Offer,
    OfferChannel,
    OfferKind,
    OfferState,
)

logger = logging.getLogger(__name__)

TERMINAL_CHANNEL_STATES = frozenset(ChannelState) - {
    ChannelState.PENDING,
    ChannelState.SENDING,
    ChannelState.UNCERTAIN,
    ChannelState.QUEUED,
    ChannelState.RINGING,
    ChannelState.IN_PROGRESS,
    ChannelState.SENT,
    ChannelState.DELIVERED,
}


@dataclass(frozen=True)
class AcceptResult:
    outcome: str  # accepted | already_yours | already_handled | expired
    dispatch: Dispatch
    by_name: str | None = None
    at: datetime | None = None


def accept(
    engine: DispatchEngine,
    dispatch: Dispatch,
    offer: Offer,
    channel: OfferChannel | None,
    *,
    via: str,
) -> AcceptResult:
    """Accept a dispatch for the person of ``offer``; the first accept wins.

    Anyone who was offered an open dispatch may accept it until the late-accept limit, even
    after their own offer rolled over; whoever was paged after them is then stood down.
    """
    now = engine.now
    if dispatch.state == DispatchState.ACKNOWLEDGED:
        holder = _offer_by_id(dispatch, dispatch.acknowledged_offer_id)
        mine = holder is not None and holder.member_key == offer.member_key
        return AcceptResult(
            "already_yours" if mine else "already_handled",
            dispatch,
            holder.member_name if holder else None,
            dispatch.acknowledged_at,
        )
    if not dispatch.is_open:
        return AcceptResult("already_handled", dispatch, dispatch.state.value, dispatch.settled_at)
    late_limit = dispatch.created_at + timedelta(seconds=engine.config.late_accept_seconds)
    if now > late_limit:
        return AcceptResult("expired", dispatch, None, late_limit)

    was_unacknowledged = dispatch.state == DispatchState.UNACKNOWLEDGED
    _cancel_rollover_jobs(engine, dispatch)
    dispatch.state = DispatchState.ACKNOWLEDGED
    dispatch.state_reason = f"accepted by {offer.member_name} via {via}"
    dispatch.acknowledged_at = now
    dispatch.acknowledged_offer_id = offer.id
    dispatch.acknowledged_member_id = offer.member_id
    dispatch.settled_at = now
    late = offer.state != OfferState.LIVE
    offer.state = OfferState.ACCEPTED
    offer.close_reason = "accepted_late" if late else "accepted"
    offer.closed_at = now
    if channel is not None:
        channel.state = ChannelState.ACCEPTED
        channel.updated_at = now
    events.record(
        engine.session,
        "acknowledged",
        at=now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=offer.id,
        actor=offer.member_name,
        member=offer.member_key,
        via=via,
        late=late,
        after_unacknowledged=was_unacknowledged,
        seconds_to_acknowledge=round((now - dispatch.created_at).total_seconds(), 3),
    )
    logger.info(
        "dispatch %d offer %d: acknowledged by %s via %s",
        dispatch.id,
        offer.id,
        offer.member_key or "desk",
        via,
    )

    for row in offer.channels:
        if row is not channel and row.is_live:
            stand_down_channel(engine, row, "accepted_on_other_channel")
    for other in dispatch.offers:
        if other.id != offer.id and other.state == OfferState.LIVE:
            stand_down_offer(engine, other, "superseded")
    if via == "sms":
        _confirm_by_sms(engine, dispatch, offer, channel)
    if dispatch.source == Channel.SMS and dispatch.caller_number:
        _tell_texting_caller(engine, dispatch, offer)
    return AcceptResult("accepted", dispatch, offer.member_name, now)


def cancel(engine: DispatchEngine, dispatch: Dispatch, *, actor: str, reason: str) -> bool:
    """Cancel an open dispatch for an admin and stand down its live offers.

    Returns False, changing nothing, when the dispatch is already settled.
    """
    if not dispatch.is_open:
        return False
    dispatch.state = DispatchState.CANCELLED
    dispatch.state_reason = f"cancelled by {actor}: {reason}"
    dispatch.settled_at = engine.now
    for offer in dispatch.offers:
        if offer.state == OfferState.LIVE:
            stand_down_offer(engine, offer, "cancelled")
    events.record(
        engine.session, "cancelled", at=engine.now, account_id=dispatch.account_id,
        dispatch_id=dispatch.id, actor=actor, reason=reason,
    )
    logger.info("dispatch %d: cancelled by an admin", dispatch.id)
    return True


def _tell_texting_caller(engine: DispatchEngine, dispatch: Dispatch, offer: Offer) -> None:
    """Tell a caller who texted that someone has the job; staff numbers are never shared."""
    profile = engine.profile_for(engine.account(dispatch.account_id))
    first_name = offer.member_name.split()[0] if offer.member_key else "Our answering service"
    assert dispatch.caller_number is not None
    engine.queue_sms(
        dispatch,
        to=dispatch.caller_number,
        purpose="caller_accepted",
        body=messages.caller_accepted(profile.account.name, first_name),
        from_number=dispatch.answering_number,
        dedup_key=f"caller_accepted:{dispatch.id}",
    )


def _cancel_rollover_jobs(engine: DispatchEngine, dispatch: Dispatch) -> None:
    """Ask for the timers of every live offer to be deleted: the first and the extended one."""
    for other in dispatch.offers:
        if other.state != OfferState.LIVE:
            continue
        first_deadline = other.created_at + timedelta(seconds=other.window_seconds)
        for deadline in {first_deadline, other.deadline}:
            engine.effects.cancelled_rollovers.append((other.id, deadline))


def _confirm_by_sms(
    engine: DispatchEngine, dispatch: Dispatch, offer: Offer, channel: OfferChannel | None
) -> None:
    account = engine.account(dispatch.account_id)
    profile = engine.profile_for(account)
    to = channel.to_number if channel else None
    if to is None:
        sms_rows = [c for c in offer.channels if c.channel == Channel.SMS]
        to = sms_rows[0].to_number if sms_rows else None
    if to is None:
        return
    body = messages.sms_accepted(
        code=dispatch.code,
        account_name=profile.account.name,
        answering_number=dispatch.answering_number,
        phi=profile.account.phi,
        callback=messages.callback_phrase(
            dispatch.callback_number, dispatch.callback_supplied, dispatch.caller_withheld
        ),
        reason=dispatch.reason,
    )
    engine.queue_sms(
        dispatch,
        to=to,
        body=body,
        purpose="ack_confirmation",
        from_number=sms_from(profile),
        dedup_key=f"ack_confirmation:{dispatch.id}",
        offer_id=offer.id,
    )


def _offer_by_id(dispatch: Dispatch, offer_id: int | None) -> Offer | None:
    for offer in dispatch.offers:
        if offer.id == offer_id:
            return offer
    return None


def stand_down_offer(engine: DispatchEngine, offer: Offer, reason: str) -> None:
    offer.state = OfferState.STOOD_DOWN
    offer.close_reason = reason
    offer.closed_at = engine.now
    for row in offer.channels:
        if row.is_live:
            stand_down_channel(engine, row, reason)
    events.record(
        engine.session,
        "stood_down",
        at=engine.now,
        account_id=offer.account_id,
        dispatch_id=offer.dispatch_id,
        offer_id=offer.id,
        actor=offer.member_name,
        reason=reason,
    )
    logger.info("dispatch %d offer %d: stood down (%s)", offer.dispatch_id, offer.id, reason)


def stand_down_channel(engine: DispatchEngine, row: OfferChannel, reason: str) -> None:
    """Stop one live channel: cancel or end a call, or text that the job is no longer needed.

    A channel not yet sent is only marked; the send job checks the state before and after it
    calls Twilio, so a call created while this transaction ran is cancelled there.
    """
    previous = row.state
    row.state = ChannelState.STOOD_DOWN
    row.updated_at = engine.now
    if row.provider_sid is None:
        return
    if row.channel == Channel.VOICE:
        if previous in (ChannelState.QUEUED, ChannelState.RINGING):
            engine.queue_call_update(row, purpose="cancel_call", status="canceled")
        elif previous == ChannelState.IN_PROGRESS:
            engine.queue_call_update(row, purpose="end_call_taken", twiml=taken_twiml())
        return
    offer = row.offer
    dispatch = engine.session.get(Dispatch, offer.dispatch_id)
    assert dispatch is not None
    profile = engine.profile_for(engine.account(dispatch.account_id))
    engine.queue_sms(
        dispatch,
        to=row.to_number,
        purpose="stand_down",
        body=messages.sms_stood_down(dispatch.code, profile.account.name),
        from_number=sms_from(profile),
        dedup_key=f"stand_down:{row.offer_id}",
        offer_id=row.offer_id,
    )
    events.record(
        engine.session,
        "stand_down_text_queued",
        at=engine.now,
        account_id=row.account_id,
        dispatch_id=dispatch.id,
        offer_id=row.offer_id,
        reason=reason,
    )


def taken_twiml() -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say>'
        f"{messages.VOICE_TAKEN}</Say><Hangup/></Response>"
    )


def pass_offer(
    engine: DispatchEngine,
    dispatch: Dispatch,
    offer: Offer,
    channel: OfferChannel | None,
    *,
    via: str,
) -> bool:
    """Close a live offer as passed and roll over at once; False when it was not live."""
    if offer.state != OfferState.LIVE or dispatch.state not in (
        DispatchState.OFFERING,
        DispatchState.UNACKNOWLEDGED,
    ):
        events.record(
            engine.session,
            "late_pass",
            at=engine.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            offer_id=offer.id,
            actor=offer.member_name,
            via=via,
            offer_state=str(offer.state),
            dispatch_state=str(dispatch.state),
        )
        return False
    if channel is not None:
        channel.state = ChannelState.PASSED
        channel.updated_at = engine.now
    offer.state = OfferState.PASSED
    offer.close_reason = "passed"
    offer.closed_at = engine.now
    events.record(
        engine.session,
        "passed",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=offer.id,
        actor=offer.member_name,
        via=via,
    )
    for row in offer.channels:
        if row is not channel and row.is_live:
            stand_down_channel(engine, row, "passed_on_other_channel")
    _after_offer_closed(engine, dispatch, offer)
    return True


def end_channel(
    engine: DispatchEngine,
    row: OfferChannel,
    state: ChannelState,
    error_code: int | None = None,
    *,
    detail: str | None = None,
) -> None:
    """Move a channel to a final state; when none of the offer's channels is live, roll over."""
    if row.state in TERMINAL_CHANNEL_STATES:
        logger.debug("channel %d: already %s, %s ignored", row.id, row.state, state)
        return
    offer = row.offer
    dispatch = engine.lock_dispatch(offer.dispatch_id)
    assert dispatch is not None
    row.state = state
    row.error_code = error_code
    row.updated_at = engine.now
    events.record(
        engine.session,
        "channel_ended",
        at=engine.now,
        account_id=row.account_id,
        dispatch_id=offer.dispatch_id,
        offer_id=offer.id,
        actor=offer.member_name,
        channel=str(row.channel),
        state=str(state),
        error_code=error_code,
        detail=detail,
    )
    logger.info(
        "dispatch %d offer %d: %s channel ended as %s%s",
        offer.dispatch_id,
        offer.id,
        row.channel,
        state,
        f" (error {error_code})" if error_code else "",
    )
    if offer.state != OfferState.LIVE or any(c.is_live for c in offer.channels):
        return
    offer.state = OfferState.ENDED
    offer.close_reason = str(state)
    offer.closed_at = engine.now
    _after_offer_closed(engine, dispatch, offer)


def rollover_due(engine: DispatchEngine, offer_id: int) -> tuple[str, datetime | None]:
    """Roll an offer over if it is still live and past its deadline.

    Returns what was done, and the deadline when the offer is live but not yet due, so a
    caller can schedule itself again. Safe to run any number of times, late or early.
    """
    offer = engine.session.get(Offer, offer_id)
    if offer is None:
        return "orphan", None
    dispatch = engine.lock_dispatch(offer.dispatch_id)
    assert dispatch is not None
    engine.session.refresh(offer)
    if offer.state != OfferState.LIVE:
        return f"offer already {offer.state}", None
    if not dispatch.is_open:
        return f"dispatch {dispatch.id} {dispatch.state}", None
    if engine.now < offer.deadline:
        return "not_due", offer.deadline
    late_by = (engine.now - offer.deadline).total_seconds()
    offer.state = OfferState.TIMED_OUT
    offer.close_reason = "timed_out"
    offer.closed_at = engine.now
    for row in offer.channels:
        if row.is_live:
            row.state = ChannelState.TIMED_OUT
            row.updated_at = engine.now
    events.record(
        engine.session,
        "rollover",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=offer.id,
        actor=offer.member_name,
        reason="timed_out",
        deadline=offer.deadline.isoformat(),
        late_by_seconds=late_by,
    )
    logger.info(
        "dispatch %d offer %d: timed out, rollover late by %.1fs", dispatch.id, offer.id, late_by
    )
    _after_offer_closed(engine, dispatch, offer)
    return "rolled_over", None


def _after_offer_closed(engine: DispatchEngine, dispatch: Dispatch, offer: Offer) -> None:
    if offer.kind == OfferKind.ESCALATION:
        events.record(
            engine.session,
            "escalation_unanswered",
            at=engine.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            offer_id=offer.id,
            reason=offer.close_reason,
        )
        return
    if dispatch.state == DispatchState.OFFERING:
        engine.advance(dispatch)


def extend_deadline(engine: DispatchEngine, offer: Offer, accepted_at: datetime) -> None:
    """Count the window from when Twilio accepted the request, never shortening it."""
    candidate = accepted_at + timedelta(seconds=offer.window_seconds)
    if candidate > offer.deadline and offer.state == OfferState.LIVE:
        offer.deadline = candidate
        engine.effects.rollovers.append((offer.id, candidate))
