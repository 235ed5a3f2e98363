"""Voice scripts as plain data, and the offer call: what the callee hears and what keys do.

The webhook layer renders a script to TwiML; keeping it as data here keeps Twilio out of the
domain and lets tests read what a caller or callee would hear.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dispatch import events, messages
from dispatch.engine import DispatchEngine
from dispatch.models import ChannelState, Dispatch, OfferChannel
from dispatch.outcomes import accept, end_channel, pass_offer, taken_twiml

logger = logging.getLogger(__name__)

GATHER_TIMEOUT_SECONDS = 6
MAX_REPEATS = 2
MAX_REPROMPTS = 1


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Pause:
    seconds: int = 1


@dataclass(frozen=True)
class Gather:
    action: str
    says: tuple[str, ...]
    num_digits: int | None = 1
    input: str = "dtmf"
    timeout: int = GATHER_TIMEOUT_SECONDS
    finish_on_key: str | None = None
    action_on_empty_result: bool = True


@dataclass(frozen=True)
class Dial:
    number: str
    caller_id: str
    action: str | None = None
    timeout: int = 30


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Hangup:
    pass


Step = Say | Pause | Gather | Dial | Redirect | Hangup
Script = list[Step]


def ended(text: str) -> Script:
    return [Say(text), Hangup()]


def _offer_gather(channel_id: int, prompt: int, says: tuple[str, ...]) -> Gather:
    return Gather(action=f"/twilio/offer/{channel_id}/gather?prompt={prompt}", says=says)


def _offer_text(engine: DispatchEngine, dispatch: Dispatch) -> str:
    profile = engine.profile_for(engine.account(dispatch.account_id))
    callback = dispatch.callback_number
    if callback:
        spoken = messages.spoken_digits(callback)
        if dispatch.callback_supplied:
            spoken += ", supplied by the caller"
    elif dispatch.caller_withheld:
        spoken = "caller ID withheld, no callback number"
    else:
        spoken = "none"
    return messages.voice_offer(
        account_name=profile.account.name,
        code=dispatch.code,
        phi=profile.account.phi,
        reason=dispatch.reason,
        callback_spoken=spoken,
    )


def _details_after_accept(engine: DispatchEngine, dispatch: Dispatch) -> str | None:
    """Health-information accounts speak the details only once the callee has pressed 1."""
    profile = engine.profile_for(engine.account(dispatch.account_id))
    if not profile.account.phi:
        return None
    about = messages.short_reason(dispatch.reason) or "No reason was given"
    return f"{about}."


def _load(engine: DispatchEngine, channel_id: int) -> tuple[OfferChannel, Dispatch] | None:
    row = engine.session.get(OfferChannel, channel_id)
    if row is None:
        return None
    dispatch = engine.lock_dispatch(row.offer.dispatch_id)
    assert dispatch is not None
    engine.session.refresh(row)
    return row, dispatch


def offer_script(engine: DispatchEngine, channel_id: int) -> Script:
    """Return what the callee hears when an offer call connects, checking state on every fetch."""
    loaded = _load(engine, channel_id)
    if loaded is None:
        logger.warning("offer channel %d: not found for TwiML", channel_id)
        return ended(messages.VOICE_TAKEN)
    row, dispatch = loaded
    if not dispatch.is_open or row.state == ChannelState.STOOD_DOWN:
        return ended(messages.VOICE_TAKEN)
    if row.answered_by and row.answered_by.startswith("machine"):
        return ended(messages.VOICE_MACHINE)
    if row.state in (
        ChannelState.QUEUED,
        ChannelState.RINGING,
        ChannelState.SENDING,
        ChannelState.UNCERTAIN,
        ChannelState.PENDING,
    ):
        row.state = ChannelState.IN_PROGRESS
        row.updated_at = engine.now
    events.record(
        engine.session,
        "offer_call_answered",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=row.offer_id,
        actor=row.offer.member_name,
        sid=row.provider_sid,
    )
    text = _offer_text(engine, dispatch)
    return [
        _offer_gather(channel_id, 1, (text, messages.VOICE_PROMPT)),
        Redirect(f"/twilio/offer/{channel_id}/gather?prompt=1"),
    ]


def gather_result(engine: DispatchEngine, channel_id: int, prompt: int, digits: str) -> Script:
    """Act on a keypress: 1 accepts, 2 passes, 9 repeats; anything else re-prompts once."""
    loaded = _load(engine, channel_id)
    if loaded is None:
        logger.warning("offer channel %d: gather for an unknown channel", channel_id)
        return ended(messages.VOICE_TAKEN)
    row, dispatch = loaded
    offer = row.offer
    events.record(
        engine.session,
        "keypress",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=offer.id,
        actor=offer.member_name,
        digits=digits,
        prompt=prompt,
    )
    if digits == "1":
        return _accept_by_key(engine, row, dispatch)
    if digits == "2":
        pass_offer(engine, dispatch, offer, row, via="keypress")
        return ended(messages.VOICE_PASSED)
    if not dispatch.is_open:
        return ended(messages.VOICE_TAKEN)
    if digits == "9" and row.repeats < MAX_REPEATS:
        row.repeats += 1
        text = _offer_text(engine, dispatch)
        return [
            _offer_gather(channel_id, prompt + 1, (text, messages.VOICE_PROMPT)),
            Redirect(f"/twilio/offer/{channel_id}/gather?prompt={prompt + 1}"),
        ]
    if digits == "9" or row.prompts < MAX_REPROMPTS:
        if digits != "9":
            row.prompts += 1
        return [
            _offer_gather(channel_id, prompt + 1, (messages.VOICE_PROMPT,)),
            Redirect(f"/twilio/offer/{channel_id}/gather?prompt={prompt + 1}"),
        ]
    end_channel(engine, row, ChannelState.NO_KEYPRESS, detail="no valid key after a re-prompt")
    return ended(messages.VOICE_NO_KEYPRESS)


def _accept_by_key(engine: DispatchEngine, row: OfferChannel, dispatch: Dispatch) -> Script:
    result = accept(engine, dispatch, row.offer, row, via="keypress")
    if result.outcome in ("already_handled", "expired"):
        events.record(
            engine.session,
            "late_keypress",
            at=engine.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            offer_id=row.offer_id,
            actor=row.offer.member_name,
            outcome=result.outcome,
            held_by=result.by_name,
        )
        logger.info(
            "dispatch %d offer %d: late_keypress (%s)", dispatch.id, row.offer_id, result.outcome
        )
        return ended(
            "This job was already handled by another technician. No action is needed. Goodbye."
        )
    script: Script = [
        Say(messages.voice_accepted(dispatch.code, dispatch.callback_number is not None))
    ]
    details = _details_after_accept(engine, dispatch)
    if details:
        script.insert(1, Say(details))
    if dispatch.callback_number is None:
        script.append(Hangup())
        return script
    dispatch.connected_at = engine.now
    events.record(
        engine.session,
        "callback_dialled",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=row.offer_id,
        actor=row.offer.member_name,
        seconds_to_callback=round((engine.now - dispatch.created_at).total_seconds(), 3),
    )
    script.append(
        Dial(
            number=dispatch.callback_number,
            caller_id=dispatch.answering_number,
            action=f"/twilio/offer/{row.id}/dial-status",
        )
    )
    return script


def machine_detected(engine: DispatchEngine, channel_id: int, answered_by: str) -> str:
    """Record machine detection; a machine ends the offer on this channel, but a later
    keypress still wins because only a human can press a key."""
    loaded = _load(engine, channel_id)
    if loaded is None:
        return "orphan"
    row, dispatch = loaded
    row.answered_by = answered_by
    events.record(
        engine.session,
        "answered_by",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=row.offer_id,
        answered_by=answered_by,
    )
    if not answered_by.startswith("machine") and answered_by != "fax":
        return "human"
    if row.state in (ChannelState.QUEUED, ChannelState.RINGING, ChannelState.IN_PROGRESS):
        if row.provider_sid:
            engine.queue_call_update(row, purpose="machine_message", twiml=_machine_twiml())
        end_channel(engine, row, ChannelState.MACHINE, detail=f"AnsweredBy={answered_by}")
        return "machine"
    return f"ignored: channel {row.state}"


def _machine_twiml() -> str:
    return taken_twiml().replace(messages.VOICE_TAKEN, messages.VOICE_MACHINE)


def dial_finished(engine: DispatchEngine, channel_id: int, status: str) -> Script:
    loaded = _load(engine, channel_id)
    if loaded is not None:
        row, dispatch = loaded
        events.record(
            engine.session,
            "bridge_ended",
            at=engine.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            offer_id=row.offer_id,
            dial_status=status,
        )
    return [Hangup()]
