"""Results of sending an offer channel, and Twilio's status callbacks, applied to the state.

These functions receive plain values (a SID, a status string, an error code) and never import
Twilio: the job and webhook layers translate the library's objects into them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from dispatch import events, messages
from dispatch.eligibility import NOT_SENT_CONFIG
from dispatch.engine import DispatchEngine, sms_from
from dispatch.models import (
    Channel,
    ChannelPause,
    ChannelState,
    Dispatch,
    NumberFlag,
    OfferChannel,
    OfferState,
    OptOut,
    PoolState,
)
from dispatch.outcomes import (
    _after_offer_closed,
    end_channel,
    extend_deadline,
    stand_down_channel,
)
from dispatch.phones import mask
from dispatch.twilio_errors import ErrorKind, classify_error, describe_error

logger = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 4

# Ordering of message statuses; message callbacks carry no sequence number, so a status
# never replaces one of a higher rank.
MESSAGE_STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "read": 5,
    "undelivered": 6,
    "failed": 6,
    "canceled": 6,
}

CALL_STATUS_TO_STATE = {
    "queued": ChannelState.QUEUED,
    "initiated": ChannelState.QUEUED,
    "ringing": ChannelState.RINGING,
    "in-progress": ChannelState.IN_PROGRESS,
    "answered": ChannelState.IN_PROGRESS,
}


def record_sent(engine: DispatchEngine, row: OfferChannel, sid: str) -> None:
    """Store the provider SID once Twilio accepted the request, and start the window then."""
    if row.provider_sid is None:
        row.provider_sid = sid
    row.accepted_by_twilio_at = engine.now
    row.lease_until = None
    row.updated_at = engine.now
    offer = row.offer
    events.record(
        engine.session,
        "channel_sent",
        at=engine.now,
        account_id=row.account_id,
        dispatch_id=offer.dispatch_id,
        offer_id=offer.id,
        actor=offer.member_name,
        channel=str(row.channel),
        sid=sid,
        to=row.to_number,
    )
    sent_state = ChannelState.QUEUED if row.channel == Channel.VOICE else ChannelState.SENT
    if row.state == ChannelState.STOOD_DOWN:
        # Stood down while the request was in flight: cancel the call or text "no longer
        # needed", as for any live channel.
        row.state = sent_state
        stand_down_channel(engine, row, "superseded_in_flight")
        return
    if row.state in (ChannelState.SENDING, ChannelState.UNCERTAIN, ChannelState.PENDING):
        row.state = sent_state
    extend_deadline(engine, offer, engine.now)


def record_send_error(
    engine: DispatchEngine,
    row: OfferChannel,
    kind: ErrorKind,
    code: int | None,
    detail: str,
) -> bool:
    """Apply a failed send. Returns True when the job should try again after a pause."""
    offer = row.offer
    row.lease_until = None
    events.record(
        engine.session,
        "send_failed",
        at=engine.now,
        account_id=row.account_id,
        dispatch_id=offer.dispatch_id,
        offer_id=offer.id,
        actor=offer.member_name,
        channel=str(row.channel),
        kind=str(kind),
        error_code=code,
        meaning=describe_error(code),
        detail=detail,
        attempt=row.send_attempts,
    )
    logger.warning(
        "dispatch %d offer %d: %s send to %s failed: %s (%s)",
        offer.dispatch_id,
        offer.id,
        row.channel,
        mask(row.to_number),
        kind,
        code,
    )
    if row.state == ChannelState.STOOD_DOWN:
        return False
    if kind == ErrorKind.TRANSIENT_REST:
        if row.send_attempts <= MAX_TRANSIENT_RETRIES and engine.now < offer.deadline:
            row.state = ChannelState.PENDING
            return True
        end_channel(engine, row, ChannelState.FAILED, code, detail="retries exhausted")
        return False
    if kind == ErrorKind.UNKNOWN:
        row.state = ChannelState.UNCERTAIN
        row.lease_until = engine.now + timedelta(seconds=30)
        return False
    if kind == ErrorKind.CONFIG:
        pause_channel(engine, row, code)
        return False
    if kind == ErrorKind.OPT_OUT:
        record_opt_out(
            engine,
            row.to_number,
            row.from_number or "",
            account_id=row.account_id,
            dispatch_id=offer.dispatch_id,
            source=f"error {code}",
        )
        end_channel(engine, row, ChannelState.FAILED, code)
        return False
    if kind in (ErrorKind.NUMBER, ErrorKind.CHANNEL):
        flag_channel = Channel.SMS if kind == ErrorKind.CHANNEL else row.channel
        flag_number(
            engine, row.account_id, row.to_number, flag_channel, code, dispatch_id=offer.dispatch_id
        )
    end_channel(engine, row, ChannelState.FAILED, code)
    return False


def flag_number(
    engine: DispatchEngine,
    account_id: int,
    number: str,
    channel: Channel,
    code: int | None,
    *,
    dispatch_id: int | None,
) -> None:
    """Flag a member's number for one channel, once, for an admin to review."""
    existing = engine.session.execute(
        select(NumberFlag).where(
            NumberFlag.account_id == account_id,
            NumberFlag.number == number,
            NumberFlag.channel == channel,
        )
    ).scalar_one_or_none()
    if existing is not None and existing.active:
        return
    if existing is None:
        engine.session.add(
            NumberFlag(
                account_id=account_id,
                number=number,
                channel=channel,
                error_code=code,
                active=True,
                created_at=engine.now,
            )
        )
    else:
        existing.active = True
        existing.error_code = code
    events.record(
        engine.session,
        "number_flagged",
        at=engine.now,
        account_id=account_id,
        dispatch_id=dispatch_id,
        number=number,
        channel=str(channel),
        error_code=code,
        meaning=describe_error(code),
    )


def record_opt_out(
    engine: DispatchEngine,
    number: str,
    sender: str,
    *,
    account_id: int | None,
    dispatch_id: int | None,
    source: str,
) -> bool:
    """Record that ``number`` opted out of texts from ``sender``; True when it is new."""
    row = engine.session.execute(
        select(OptOut).where(OptOut.number == number, OptOut.sender == sender)
    ).scalar_one_or_none()
    if row is not None and row.active:
        return False
    if row is None:
        engine.session.add(
            OptOut(
                number=number,
                sender=sender,
                active=True,
                created_at=engine.now,
                updated_at=engine.now,
            )
        )
    else:
        row.active = True
        row.updated_at = engine.now
    events.record(
        engine.session,
        "opt_out",
        at=engine.now,
        account_id=account_id,
        dispatch_id=dispatch_id,
        number=number,
        sender=sender,
        source=source,
    )
    logger.info("opt-out recorded for %s from sender %s (%s)", mask(number), sender, source)
    return True


def clear_opt_out(
    engine: DispatchEngine, number: str, senders: list[str], *, account_id: int | None
) -> bool:
    rows = (
        engine.session.execute(
            select(OptOut).where(OptOut.number == number, OptOut.sender.in_(senders), OptOut.active)
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.active = False
        row.updated_at = engine.now
    if rows:
        events.record(
            engine.session,
            "opt_in",
            at=engine.now,
            account_id=account_id,
            number=number,
            senders=[r.sender for r in rows],
        )
    return bool(rows)


def pause_channel(engine: DispatchEngine, row: OfferChannel, code: int | None) -> None:
    """Pause a channel for the whole account after an account or configuration error.

    The attempt does not count: the offer closes as not sent, the pointer goes back if nobody
    moved it since, and the next offer skips the paused channel for every member.
    """
    offer = row.offer
    pause = engine.session.execute(
        select(ChannelPause).where(
            ChannelPause.account_id == row.account_id, ChannelPause.channel == row.channel
        )
    ).scalar_one_or_none()
    newly_paused = pause is None or not pause.active
    if pause is None:
        engine.session.add(
            ChannelPause(
                account_id=row.account_id,
                channel=row.channel,
                error_code=code,
                active=True,
                created_at=engine.now,
            )
        )
    else:
        pause.active = True
        pause.error_code = code
    row.state = ChannelState.PAUSED
    row.error_code = code
    row.updated_at = engine.now
    dispatch = engine.lock_dispatch(offer.dispatch_id)
    assert dispatch is not None
    if newly_paused:
        events.record(
            engine.session,
            "channel_paused",
            at=engine.now,
            account_id=row.account_id,
            dispatch_id=dispatch.id,
            channel=str(row.channel),
            error_code=code,
            meaning=describe_error(code),
        )
        _alert_desk_of_pause(engine, dispatch, row.channel, code)
    if offer.state != OfferState.LIVE or any(c.is_live for c in offer.channels):
        return
    offer.state = OfferState.ENDED
    offer.close_reason = NOT_SENT_CONFIG
    offer.closed_at = engine.now
    if offer.pool_key and offer.member_key:
        state = engine.session.execute(
            select(PoolState).where(
                PoolState.account_id == row.account_id, PoolState.pool_key == offer.pool_key
            )
        ).scalar_one_or_none()
        if state is not None and state.last_member_key == offer.member_key:
            state.last_member_key = offer.pointer_before
    _after_offer_closed(engine, dispatch, offer)


def _alert_desk_of_pause(
    engine: DispatchEngine, dispatch: Dispatch, channel: Channel, code: int | None
) -> None:
    profile = engine.profile_for(engine.account(dispatch.account_id))
    line = engine.escalation_line(profile)
    if line is None:
        return
    what = f"{channel} paused after Twilio error {code} ({describe_error(code)})"
    body = messages.desk_alert(profile.account.name, dispatch.code, what)
    if channel == Channel.SMS:
        engine.queue_call_alert(dispatch, to=line, text=body, purpose=f"pause_alert_{channel}")
    else:
        engine.queue_sms(
            dispatch,
            to=line,
            body=body,
            purpose=f"pause_alert_{channel}",
            from_number=sms_from(profile),
            dedup_key=f"pause_alert:{dispatch.account_id}:{channel}:{engine.now:%Y%m%d%H}",
        )


def apply_call_status(
    engine: DispatchEngine,
    row: OfferChannel,
    status: str,
    sequence: int | None,
    error_code: int | None,
    answered_by: str | None = None,
) -> str:
    """Apply a call status callback in sequence order; returns what was done."""
    if sequence is not None and sequence <= row.last_sequence:
        return "out_of_order"
    if sequence is not None:
        row.last_sequence = sequence
    if status in CALL_STATUS_TO_STATE:
        new_state = CALL_STATUS_TO_STATE[status]
        if row.state in (
            ChannelState.SENDING,
            ChannelState.PENDING,
            ChannelState.UNCERTAIN,
            ChannelState.QUEUED,
            ChannelState.RINGING,
        ) and _rank(new_state) >= _rank(row.state):
            row.state = new_state
            row.updated_at = engine.now
        return "progress"
    terminal = {
        "busy": ChannelState.BUSY,
        "no-answer": ChannelState.NO_ANSWER,
        "failed": ChannelState.FAILED,
        "canceled": ChannelState.FAILED,
    }
    if status == "completed":
        if row.answered_by and row.answered_by.startswith("machine"):
            final = ChannelState.MACHINE
        else:
            final = ChannelState.NO_KEYPRESS
    elif status in terminal:
        final = terminal[status]
    else:
        return "unknown_status"
    if final == ChannelState.FAILED and error_code is not None:
        return _callback_failure(engine, row, error_code)
    end_channel(engine, row, final, error_code, detail=f"CallStatus={status}")
    return "ended"


def _rank(state: ChannelState) -> int:
    order = [
        ChannelState.PENDING,
        ChannelState.SENDING,
        ChannelState.UNCERTAIN,
        ChannelState.QUEUED,
        ChannelState.RINGING,
        ChannelState.IN_PROGRESS,
    ]
    return order.index(state) if state in order else len(order)


def apply_message_status(
    engine: DispatchEngine, row: OfferChannel, status: str, error_code: int | None
) -> str:
    rank = MESSAGE_STATUS_RANK.get(status)
    if rank is None:
        return "unknown_status"
    if status in ("sent", "delivered", "read", "queued", "sending", "accepted"):
        if row.state in (ChannelState.SENDING, ChannelState.UNCERTAIN, ChannelState.PENDING):
            row.state = ChannelState.SENT
        if status in ("delivered", "read") and row.state == ChannelState.SENT:
            row.state = ChannelState.DELIVERED
        row.updated_at = engine.now
        return "progress"
    if error_code is not None:
        return _callback_failure(engine, row, error_code)
    end_channel(engine, row, ChannelState.FAILED, None, detail=f"MessageStatus={status}")
    return "ended"


def _callback_failure(engine: DispatchEngine, row: OfferChannel, code: int) -> str:
    kind = classify_error(code, at="callback", channel=str(row.channel))
    offer = row.offer
    if kind == ErrorKind.OPT_OUT:
        record_opt_out(
            engine,
            row.to_number,
            row.from_number or "",
            account_id=row.account_id,
            dispatch_id=offer.dispatch_id,
            source=f"callback error {code}",
        )
    elif kind in (ErrorKind.NUMBER, ErrorKind.CHANNEL):
        channel = Channel.SMS if kind == ErrorKind.CHANNEL else row.channel
        flag_number(
            engine, row.account_id, row.to_number, channel, code, dispatch_id=offer.dispatch_id
        )
    elif kind == ErrorKind.CONFIG:
        pause_channel(engine, row, code)
        return "paused"
    end_channel(engine, row, ChannelState.FAILED, code, detail=describe_error(code))
    return "ended"


def uncertain_settled(
    engine: DispatchEngine, row: OfferChannel, found_sid: str | None, *, resend_sms: bool
) -> str:
    """Settle a send whose outcome was unknown, from a listing of Twilio's records."""
    if found_sid is not None:
        record_sent(engine, row, found_sid)
        return "found"
    if row.channel == Channel.SMS and resend_sms:
        row.state = ChannelState.PENDING
        return "resend"
    if row.channel == Channel.VOICE:
        # A call is never placed twice: a duplicate call wakes the same person again.
        end_channel(engine, row, ChannelState.FAILED, None, detail="outcome unknown, not resent")
        return "failed"
    return "wait"
