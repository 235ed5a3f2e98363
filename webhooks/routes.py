"""Twilio-facing routes. Each parses the form, calls one domain function, and returns TwiML."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Response, request

from dispatch import events
from dispatch.delivery import apply_call_status, apply_message_status
from dispatch.models import Account, OfferChannel
from dispatch.phones import mask
from dispatch.sms_inbound import InboundSms, handle_inbound_sms
from dispatch.store import account_for_number
from dispatch.voice import (
    Script,
    dial_finished,
    ended,
    gather_result,
    machine_detected,
    offer_script,
)
from dispatch.voice_inbound import (
    callback_entered,
    inbound_call,
    inbound_call_ended,
    menu_chosen,
    reason_captured,
)
from webhooks.receipts import Delivery, handle, runtime
from webhooks.twiml import empty_messaging_response, render

logger = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__, url_prefix="/twilio")

SORRY = "We are sorry, something went wrong. Please call again. Goodbye."


def _render(script: Script, language: str | None = None) -> str:
    return render(script, runtime().settings.PUBLIC_BASE_URL, language)


def _voice_fallback() -> str:
    """The reply when the database or the handler fails: connect the caller to the desk."""
    desk = runtime().settings.OPERATOR_DESK_NUMBER
    to = request.form.get("To", "")
    if desk:
        from dispatch.voice import Dial, Say

        return _render(
            [
                Say("Please hold while we connect you to our answering service."),
                Dial(number=desk, caller_id=to or desk),
            ]
        )
    return _render(ended(SORRY))


def _hangup_fallback() -> str:
    return _render(ended(SORRY))


def _empty() -> str:
    return empty_messaging_response()


def _int_arg(name: str, default: int = 0) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def _unknown_number(delivery: Delivery, kind: str) -> None:
    delivery.receipt.outcome = "unknown_number"
    events.record(
        delivery.session,
        "unknown_number",
        at=delivery.engine.now,
        account_id=None,
        to=delivery.field("To"),
        sid=delivery.receipt.provider_sid,
        kind=kind,
    )
    logger.warning(
        "%s %s: answering number %s belongs to no account",
        kind,
        delivery.receipt.provider_sid,
        mask(delivery.field("To")),
    )


def _account_for(delivery: Delivery) -> Account | None:
    account = account_for_number(delivery.session, delivery.field("To"))
    if account is not None:
        delivery.receipt.account_id = account.id
    return account


# -- inbound calls -----------------------------------------------------------------------------


@bp.post("/voice")
def voice() -> Response:
    def act(delivery: Delivery) -> str:
        account = _account_for(delivery)
        if account is None:
            _unknown_number(delivery, "call")
            return _render(ended("This number is not in service. Goodbye."))
        profile = delivery.engine.profile_for(account)
        script = inbound_call(
            delivery.engine,
            account,
            delivery.field("CallSid"),
            delivery.field("From"),
            delivery.field("To"),
        )
        return _render(script, profile.caller_script.language)

    return handle(
        "voice",
        required=("CallSid", "To"),
        sid_field="CallSid",
        claim_key=lambda f: f"call:{f['CallSid']}",
        act=act,
        fallback=_voice_fallback,
    )


def _dispatch_step(name: str, step: Callable[[Delivery, int], Script]) -> Response:
    dispatch_id = _int_arg("dispatch")

    def act(delivery: Delivery) -> str:
        account = _account_for(delivery)
        language = delivery.engine.profile_for(account).caller_script.language if account else None
        return _render(step(delivery, dispatch_id), language)

    return handle(
        name,
        required=("CallSid",),
        sid_field="CallSid",
        claim_key=lambda f: (
            f"{name}:{f['CallSid']}:{dispatch_id}:{request.args.get('attempt', '')}"
        ),
        act=act,
        fallback=_voice_fallback,
    )


@bp.post("/voice/callback")
def voice_callback() -> Response:
    return _dispatch_step(
        "voice_callback",
        lambda d, i: callback_entered(
            d.engine, i, "".join(ch for ch in d.field("Digits") if ch.isdigit())
        ),
    )


@bp.post("/voice/menu")
def voice_menu() -> Response:
    attempt = _int_arg("attempt", 1)
    return _dispatch_step(
        "voice_menu", lambda d, i: menu_chosen(d.engine, i, d.field("Digits").strip(), attempt)
    )


@bp.post("/voice/reason")
def voice_reason() -> Response:
    return _dispatch_step(
        "voice_reason",
        lambda d, i: reason_captured(
            d.engine, i, d.field("SpeechResult") or None, d.field("Digits") or None
        ),
    )


@bp.post("/voice/status")
def voice_status() -> Response:
    """Status callback of the inbound call: a hang-up during intake settles or pages."""

    def act(delivery: Delivery) -> str:
        status = delivery.field("CallStatus")
        if status not in ("completed", "busy", "no-answer", "failed", "canceled"):
            return ""
        account = _account_for(delivery)
        if account is None:
            return ""
        result = inbound_call_ended(delivery.engine, account, delivery.field("CallSid"))
        delivery.receipt.outcome = result
        return ""

    return handle(
        "voice_status",
        required=("CallSid", "CallStatus"),
        sid_field="CallSid",
        claim_key=lambda f: f"voicestatus:{f['CallSid']}:{f.get('CallStatus')}",
        act=act,
        fallback=lambda: "",
        mimetype="text/plain",
    )


# -- inbound texts ----------------------------------------------------------------------------


@bp.post("/sms")
def sms() -> Response:
    def act(delivery: Delivery) -> str:
        account = _account_for(delivery)
        if account is None:
            _unknown_number(delivery, "sms")
            return _empty()
        try:
            num_media = int(delivery.field("NumMedia") or 0)
        except ValueError:
            num_media = 0
        message = InboundSms(
            sid=delivery.field("MessageSid"),
            from_raw=delivery.field("From"),
            to=delivery.field("To"),
            body=delivery.field("Body"),
            opt_out_type=delivery.field("OptOutType") or None,
            num_media=num_media,
            messaging_service_sid=delivery.field("MessagingServiceSid") or None,
        )
        outcome = handle_inbound_sms(delivery.engine, account, message)
        delivery.receipt.outcome = outcome.outcome
        delivery.receipt.dispatch_id = outcome.dispatch_id
        logger.info(
            "sms %s from %s to %s (service %s): %s",
            message.sid,
            mask(message.from_raw),
            mask(message.to),
            message.messaging_service_sid or "-",
            outcome.outcome,
        )
        return _empty()

    return handle(
        "sms",
        required=("MessageSid", "From", "To"),
        sid_field="MessageSid",
        claim_key=lambda f: f"sms:{f['MessageSid']}",
        act=act,
        fallback=_empty,
    )


# -- offer calls ----------------------------------------------------------------------------


def _channel_account(delivery: Delivery, channel_id: int) -> OfferChannel | None:
    row = delivery.session.get(OfferChannel, channel_id)
    if row is None:
        delivery.receipt.outcome = "orphan"
        events.record(
            delivery.session,
            "orphan_callback",
            at=delivery.engine.now,
            account_id=None,
            route=delivery.receipt.route,
            sid=delivery.receipt.provider_sid,
            channel_id=channel_id,
        )
        logger.warning(
            "%s: orphan_callback for channel %d (%s)",
            delivery.receipt.route,
            channel_id,
            delivery.receipt.provider_sid,
        )
        return None
    delivery.receipt.account_id = row.account_id
    delivery.receipt.dispatch_id = row.offer.dispatch_id
    account = delivery.session.get(Account, row.account_id)
    expected_sid = (
        account.twilio_account_sid if account else None
    ) or runtime().settings.TWILIO_ACCOUNT_SID
    if delivery.field("AccountSid") and delivery.field("AccountSid") != expected_sid:
        # A callback signed by another Twilio account never touches this account's rows.
        delivery.receipt.outcome = "account_mismatch"
        events.record(
            delivery.session,
            "account_mismatch",
            at=delivery.engine.now,
            account_id=None,
            route=delivery.receipt.route,
            channel_id=channel_id,
            sid=delivery.receipt.provider_sid,
        )
        logger.warning(
            "%s: callback for channel %d from another Twilio account; ignored",
            delivery.receipt.route,
            channel_id,
        )
        return None
    # The dispatch is locked before the channel row, the order every writer uses.
    delivery.engine.lock_dispatch(row.offer.dispatch_id)
    delivery.session.refresh(row, with_for_update=True)
    if row.provider_sid is None and delivery.receipt.provider_sid:
        row.provider_sid = delivery.receipt.provider_sid
    return row


@bp.post("/offer/<int:channel_id>/twiml")
def offer_twiml(channel_id: int) -> Response:
    def act(delivery: Delivery) -> str:
        if _channel_account(delivery, channel_id) is None:
            return _render(ended("This call is no longer needed. Goodbye."))
        return _render(offer_script(delivery.engine, channel_id))

    return handle(
        "offer_twiml",
        required=("CallSid",),
        sid_field="CallSid",
        claim_key=lambda f: None,
        act=act,
        fallback=_hangup_fallback,
    )


@bp.post("/offer/<int:channel_id>/gather")
def offer_gather(channel_id: int) -> Response:
    prompt = _int_arg("prompt", 1)

    def act(delivery: Delivery) -> str:
        if _channel_account(delivery, channel_id) is None:
            return _render(ended("This call is no longer needed. Goodbye."))
        digits = delivery.field("Digits").strip()
        return _render(gather_result(delivery.engine, channel_id, prompt, digits))

    return handle(
        "offer_gather",
        required=("CallSid",),
        sid_field="CallSid",
        claim_key=lambda f: f"gather:{f['CallSid']}:{channel_id}:{prompt}",
        act=act,
        fallback=_hangup_fallback,
    )


@bp.post("/offer/<int:channel_id>/dial-status")
def offer_dial_status(channel_id: int) -> Response:
    def act(delivery: Delivery) -> str:
        if _channel_account(delivery, channel_id) is None:
            return _render(ended("Goodbye."))
        return _render(dial_finished(delivery.engine, channel_id, delivery.field("DialCallStatus")))

    return handle(
        "offer_dial_status",
        required=("CallSid",),
        sid_field="CallSid",
        claim_key=lambda f: f"dial:{f['CallSid']}:{channel_id}",
        act=act,
        fallback=_hangup_fallback,
    )


@bp.post("/amd/<int:channel_id>")
def offer_amd(channel_id: int) -> Response:
    def act(delivery: Delivery) -> str:
        if _channel_account(delivery, channel_id) is None:
            return ""
        delivery.receipt.outcome = machine_detected(
            delivery.engine, channel_id, delivery.field("AnsweredBy") or "unknown"
        )
        return ""

    return handle(
        "amd",
        required=("CallSid",),
        sid_field="CallSid",
        claim_key=lambda f: f"amd:{f['CallSid']}",
        act=act,
        fallback=lambda: "",
        mimetype="text/plain",
    )


# -- status callbacks -----------------------------------------------------------------------


def _error_code(delivery: Delivery) -> int | None:
    raw = delivery.field("ErrorCode")
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


@bp.post("/status/call/<int:channel_id>")
def call_status(channel_id: int) -> Response:
    def act(delivery: Delivery) -> str:
        row = _channel_account(delivery, channel_id)
        if row is None:
            return ""
        sequence_raw = delivery.field("SequenceNumber")
        sequence = int(sequence_raw) if sequence_raw.isdigit() else None
        result = apply_call_status(
            delivery.engine, row, delivery.field("CallStatus"), sequence, _error_code(delivery)
        )
        events.record(
            delivery.session,
            "call_status",
            at=delivery.engine.now,
            account_id=row.account_id,
            dispatch_id=row.offer.dispatch_id,
            offer_id=row.offer_id,
            sid=delivery.field("CallSid"),
            status=delivery.field("CallStatus"),
            sequence=sequence,
            error_code=_error_code(delivery),
            result=result,
        )
        delivery.receipt.outcome = result
        return ""

    return handle(
        "call_status",
        required=("CallSid", "CallStatus"),
        sid_field="CallSid",
        claim_key=lambda f: (
            f"callstatus:{f['CallSid']}:{f.get('SequenceNumber', '')}:{f.get('CallStatus')}"
        ),
        act=act,
        fallback=lambda: "",
        mimetype="text/plain",
    )


@bp.post("/status/sms/<int:channel_id>")
def sms_status(channel_id: int) -> Response:
    def act(delivery: Delivery) -> str:
        row = _channel_account(delivery, channel_id)
        if row is None:
            return ""
        status = delivery.field("MessageStatus") or delivery.field("SmsStatus")
        result = apply_message_status(delivery.engine, row, status, _error_code(delivery))
        events.record(
            delivery.session,
            "message_status",
            at=delivery.engine.now,
            account_id=row.account_id,
            dispatch_id=row.offer.dispatch_id,
            offer_id=row.offer_id,
            sid=delivery.field("MessageSid"),
            status=status,
            error_code=_error_code(delivery),
            result=result,
        )
        delivery.receipt.outcome = result
        return ""

    return handle(
        "sms_status",
        required=("MessageSid",),
        sid_field="MessageSid",
        claim_key=lambda f: (
            f"msgstatus:{f['MessageSid']}:{f.get('MessageStatus') or f.get('SmsStatus')}"
        ),
        act=act,
        fallback=lambda: "",
        mimetype="text/plain",
    )
