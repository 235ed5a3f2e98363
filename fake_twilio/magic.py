"""Phone numbers that make the fake fail in a fixed way, and the error type the REST layer returns.

Twilio's own test numbers are used where they exist (+1500555000x). The project range
+1500555010x covers the remaining error kinds that the dispatcher must handle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Stage(StrEnum):
    """When a magic number fails."""

    CREATE = "create"
    CALLBACK = "callback"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class MagicNumber:
    """A destination number with a scripted failure.

    ``codes`` maps a channel ("call" or "sms") to the Twilio error code, so a number
    fails only on the channels it lists. ``times`` limits a create failure to the first
    N requests to that number (``None`` fails every time). For a callback failure,
    ``callback_status`` is the final status the call or message reports.
    """

    codes: dict[str, int]
    stage: Stage
    http_status: int = 400
    message: str = ""
    times: int | None = None
    callback_status: dict[str, str] = field(default_factory=dict)


BOTH = ("call", "sms")


def _codes(code: int, channels: tuple[str, ...] = BOTH) -> dict[str, int]:
    return {channel: code for channel in channels}


MAGIC_NUMBERS: dict[str, MagicNumber] = {
    "+15005550001": MagicNumber(
        _codes(21211), Stage.CREATE, message="The 'To' number {to} is not a valid phone number."
    ),
    "+15005550002": MagicNumber(
        _codes(21217), Stage.CREATE, message="Phone number {to} does not appear to be valid."
    ),
    "+15005550004": MagicNumber(
        _codes(21610, ("sms",)),
        Stage.CREATE,
        message="Attempt to send to unsubscribed recipient {to}.",
    ),
    "+15005550009": MagicNumber(
        _codes(21614, ("sms",)),
        Stage.CREATE,
        message="'To' number {to} is not a valid mobile number.",
    ),
    "+15005550100": MagicNumber(
        _codes(21608),
        Stage.CREATE,
        message="The number {to} is unverified. Trial accounts may only send to verified numbers.",
    ),
    "+15005550101": MagicNumber(
        _codes(20003), Stage.CREATE, http_status=401, message="Authenticate"
    ),
    "+15005550102": MagicNumber(
        {"call": 21215, "sms": 21408},
        Stage.CREATE,
        message="Permission to reach {to} has not been enabled for the region (geo permissions).",
    ),
    "+15005550103": MagicNumber(
        _codes(30032, ("sms",)),
        Stage.CALLBACK,
        message="Toll-free number has not been verified.",
        callback_status={"sms": "undelivered"},
    ),
    "+15005550104": MagicNumber(
        _codes(20429), Stage.CREATE, http_status=429, message="Too Many Requests", times=2
    ),
    "+15005550105": MagicNumber(
        _codes(20500),
        Stage.CREATE,
        http_status=500,
        message="An internal server error has occurred",
        times=2,
    ),
    "+15005550106": MagicNumber(
        _codes(0), Stage.TIMEOUT, message="The response is delayed past the client timeout."
    ),
    "+15005550107": MagicNumber(
        _codes(13224),
        Stage.CREATE,
        message="Twilio does not support calling {to}: the number is invalid.",
    ),
    "+15005550108": MagicNumber(
        _codes(30005),
        Stage.CALLBACK,
        message="Unknown destination handset.",
        callback_status={"sms": "undelivered", "call": "failed"},
    ),
    "+15005550109": MagicNumber(
        _codes(30006, ("sms",)),
        Stage.CALLBACK,
        message="Landline or unreachable carrier.",
        callback_status={"sms": "undelivered"},
    ),
    "+15005550110": MagicNumber(
        _codes(30003),
        Stage.CALLBACK,
        message="Unreachable destination handset.",
        callback_status={"sms": "undelivered", "call": "failed"},
    ),
    "+15005550111": MagicNumber(
        _codes(30008),
        Stage.CALLBACK,
        message="Unknown error.",
        callback_status={"sms": "failed", "call": "failed"},
    ),
}


class TwilioError(Exception):
    """A Twilio-shaped REST error: HTTP status, error code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        """Return the JSON body Twilio sends for this error."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def magic_for(number: str, channel: str) -> MagicNumber | None:
    """Return the magic behaviour of ``number`` on ``channel``, or None for an ordinary number."""
    magic = MAGIC_NUMBERS.get(number)
    if magic is None or channel not in magic.codes:
        return None
    return magic
