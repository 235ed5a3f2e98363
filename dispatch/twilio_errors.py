"""Kinds of Twilio errors, which decide what a failed call or text does next.

A code is seen either at REST time, when creating the call or message fails, or in a status
callback after Twilio accepted it. The kind depends on the code first, then on the HTTP status:

- ``number``: flag this member's number for this channel, once, for the admin.
- ``channel``: the number cannot take SMS (a landline, not a mobile). Flag it for SMS only.
- ``opt_out``: the member sent STOP to this sender. Record the opt-out and flag nothing else.
- ``config``: the account or its configuration is at fault. Do not count the attempt, and pause
  the channel for the account until an admin clears it or a test page succeeds.
- ``transient_rest``: rate limit, HTTP 5xx or no response at all. Retry with backoff.
- ``transient_callback``: the delivery failed for now. Roll over without re-sending.
- ``unknown``: a read timeout at REST time, so Twilio may or may not have created the call or
  message. Settle it from the status callback or by listing calls or messages.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    NUMBER = "number"
    CHANNEL = "channel"
    OPT_OUT = "opt_out"
    CONFIG = "config"
    TRANSIENT_REST = "transient_rest"
    TRANSIENT_CALLBACK = "transient_callback"
    UNKNOWN = "unknown"


REST = "rest"
CALLBACK = "callback"
VOICE = "voice"
SMS = "sms"

# Meanings paraphrase Twilio's error dictionary at https://www.twilio.com/docs/api/errors.
CLASSIFIED_ERRORS: dict[int, tuple[ErrorKind, str]] = {
    21211: (ErrorKind.NUMBER, "invalid 'To' phone number"),
    21214: (ErrorKind.NUMBER, "'To' phone number cannot be reached"),
    21217: (ErrorKind.NUMBER, "phone number does not appear to be valid"),
    13224: (ErrorKind.NUMBER, "Twilio cannot call this number or the number is invalid"),
    30005: (ErrorKind.NUMBER, "unknown destination handset (the number may be disconnected)"),
    21614: (ErrorKind.CHANNEL, "'To' number is not a valid mobile number"),
    21635: (ErrorKind.CHANNEL, "'To' number is a landline and cannot receive SMS"),
    30006: (ErrorKind.CHANNEL, "landline or unreachable carrier"),
    21610: (ErrorKind.OPT_OUT, "recipient has opted out (STOP)"),
    20003: (ErrorKind.CONFIG, "authentication failed: check the account SID and auth token"),
    30002: (ErrorKind.CONFIG, "Twilio account suspended"),
    21606: (ErrorKind.CONFIG, "'From' number cannot send SMS to this destination"),
    21608: (ErrorKind.CONFIG, "'To' number is not verified on this trial account"),
    21215: (ErrorKind.CONFIG, "voice geographic permissions block this destination"),
    21216: (ErrorKind.CONFIG, "call blocked by Twilio (fraud risk or missing customer profile)"),
    21408: (ErrorKind.CONFIG, "SMS geographic permissions block this destination region"),
    30032: (ErrorKind.CONFIG, "toll-free sending number is not verified"),
    30034: (ErrorKind.CONFIG, "sending number is not registered for US A2P 10DLC"),
    20429: (ErrorKind.TRANSIENT_REST, "too many requests (rate limited)"),
    30001: (ErrorKind.TRANSIENT_CALLBACK, "message queue overflow"),
    30003: (ErrorKind.TRANSIENT_CALLBACK, "unreachable handset (phone off or out of coverage)"),
    30008: (ErrorKind.TRANSIENT_CALLBACK, "unknown delivery error"),
}

# Codes that admins see often but whose kind follows from where they were seen.
OTHER_MEANINGS: dict[int, str] = {
    20404: "resource not found: check the account SID and the API base URL",
    20500: "Twilio internal server error",
    30004: "message blocked by the recipient or the carrier",
    30007: "message filtered by the carrier as spam or unregistered traffic",
}

# Without a listed code, these statuses mean the credentials or the account SID are wrong, and
# flagging the member's number would hide that.
_CONFIG_STATUSES = frozenset({401, 403, 404})


def classify_error(
    code: int | None,
    *,
    at: str,
    http_status: int | None = None,
    channel: str,
    read_timeout: bool = False,
) -> ErrorKind:
    """Classify a Twilio error seen at REST time or in a status callback.

    ``at`` is ``"rest"`` or ``"callback"`` and ``channel`` is ``"voice"`` or ``"sms"``.
    At REST time, ``http_status`` is None when no response arrived. Set ``read_timeout`` when
    the request was sent but the response timed out, because Twilio may have processed it. A
    connection error leaves it False.
    Raise ValueError for any other ``at`` or ``channel``.
    """
    _check_where(at, channel)

    known = CLASSIFIED_ERRORS.get(code) if code is not None else None
    kind = known[0] if known is not None else None

    if kind is ErrorKind.CHANNEL and channel == VOICE:
        # These codes describe SMS delivery only. A call that fails with one failed on the
        # number itself, so the number is flagged for voice.
        kind = ErrorKind.NUMBER

    if at == CALLBACK:
        return _callback_kind(kind)
    return _rest_kind(kind, http_status, read_timeout)


def describe_error(code: int | None) -> str:
    """Return a short meaning of a Twilio error code for admins."""
    if code is None:
        return "no Twilio error code"

    known = CLASSIFIED_ERRORS.get(code)
    if known is not None:
        return known[1]
    return OTHER_MEANINGS.get(code, f"Twilio error {code}")


def _callback_kind(kind: ErrorKind | None) -> ErrorKind:
    # A callback reports a delivery that already failed, so nothing is retried there.
    if kind is None or kind is ErrorKind.TRANSIENT_REST:
        return ErrorKind.TRANSIENT_CALLBACK
    return kind


def _rest_kind(kind: ErrorKind | None, http_status: int | None, read_timeout: bool) -> ErrorKind:
    if read_timeout:
        return ErrorKind.UNKNOWN
    if kind is not None:
        return kind

    if http_status is None or http_status == 429 or http_status >= 500:
        return ErrorKind.TRANSIENT_REST
    if http_status in _CONFIG_STATUSES:
        return ErrorKind.CONFIG
    if 400 <= http_status < 500:
        return ErrorKind.NUMBER
    return ErrorKind.UNKNOWN


def _check_where(at: str, channel: str) -> None:
    if at not in (REST, CALLBACK):
        raise ValueError(f"invalid at={at!r}: expected {REST!r} or {CALLBACK!r}")
    if channel not in (VOICE, SMS):
        raise ValueError(f"invalid channel={channel!r}: expected {VOICE!r} or {SMS!r}")
