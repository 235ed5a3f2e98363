"""Scripted phone behaviour for the demo and for long scenarios, driven by the fake's clock.

Each behaviour schedules its steps with ``FakeTwilio.schedule``; the steps run when
``run_pending`` finds them due. Build them with the functions at the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fake_twilio.calls import FakeCall
    from fake_twilio.messages import FakeMessage
    from fake_twilio.phones import Phone
    from fake_twilio.server import FakeTwilio

# Seconds between a call starting and the phone ringing, and between a send and delivery.
RING_DELAY_SECONDS = 1.0
DELIVERY_DELAY_SECONDS = 1.0
# Ring timeout Twilio uses when the create request has no Timeout.
DEFAULT_RING_TIMEOUT_SECONDS = 60


@dataclass
class Behaviour:
    """A phone's handling of calls and texts; the base class rings out and never replies."""

    invalid_number = False

    def on_call(self, fake: FakeTwilio, call: FakeCall) -> None:
        """Schedule the phone's handling of a call that just started."""
        _ring_then(fake, call, _ring_timeout(call), lambda: _if_live(call, call.ring_out))

    def on_message(self, fake: FakeTwilio, phone: Phone, message: FakeMessage) -> None:
        """Schedule the phone's handling of a text it was sent."""
        fake.schedule(DELIVERY_DELAY_SECONDS, lambda: _deliver(message), f"deliver {message.sid}")


@dataclass
class AnswerAndPress(Behaviour):
    """Answer after ``after_seconds`` and key in ``digits`` at the first Gather."""

    digits: str = "1"
    after_seconds: float = 3.0

    def on_call(self, fake: FakeTwilio, call: FakeCall) -> None:
        def answer() -> None:
            if call.status != "ringing":
                return
            call.answer()
            if call.gathering:
                call.press(self.digits)

        _ring_then(fake, call, self.after_seconds, answer)


@dataclass
class RingOut(Behaviour):
    """Let every call ring until its timeout."""


@dataclass
class Busy(Behaviour):
    """Return busy to every call."""

    def on_call(self, fake: FakeTwilio, call: FakeCall) -> None:
        fake.schedule(RING_DELAY_SECONDS, lambda: _if_live(call, call.busy), f"busy {call.sid}")


@dataclass
class Voicemail(Behaviour):
    """Let voicemail pick up after ``after_seconds``."""

    after_seconds: float = 5.0

    def on_call(self, fake: FakeTwilio, call: FakeCall) -> None:
        _ring_then(fake, call, self.after_seconds, lambda: _if_live(call, call.voicemail))


@dataclass
class ReplySms(Behaviour):
    """Reply ``body`` to each text ``after_seconds`` after receiving it."""

    body: str = "1"
    after_seconds: float = 5.0

    def on_message(self, fake: FakeTwilio, phone: Phone, message: FakeMessage) -> None:
        super().on_message(fake, phone, message)
        reply_to = message.from_
        fake.schedule(
            self.after_seconds,
            lambda: phone.send_sms(reply_to, self.body),
            f"reply to {message.sid}",
        )


@dataclass
class Tapback(Behaviour):
    """React to each text the way iMessage does on SMS, e.g. ``Liked “<text>”``."""

    reaction: str = "Liked"
    after_seconds: float = 2.0

    def on_message(self, fake: FakeTwilio, phone: Phone, message: FakeMessage) -> None:
        super().on_message(fake, phone, message)
        body = f"{self.reaction} \u201c{message.body}\u201d"
        reply_to = message.from_
        fake.schedule(
            self.after_seconds, lambda: phone.send_sms(reply_to, body), f"tapback to {message.sid}"
        )


@dataclass
class InvalidNumber(Behaviour):
    """Make the number invalid: creating a call or text to it fails with 21211."""

    invalid_number = True


def answer_and_press(digits: str = "1", after_seconds: float = 3.0) -> Behaviour:
    """Answer calls after ``after_seconds`` and press ``digits``."""
    return AnswerAndPress(digits, after_seconds)


def ring_out() -> Behaviour:
    """Never answer calls."""
    return RingOut()


def busy() -> Behaviour:
    """Return busy to calls."""
    return Busy()


def voicemail(after_seconds: float = 5.0) -> Behaviour:
    """Send calls to an answering machine."""
    return Voicemail(after_seconds)


def reply_sms(body: str = "1", after_seconds: float = 5.0) -> Behaviour:
    """Reply to texts with ``body``."""
    return ReplySms(body, after_seconds)


def reply_late(body: str = "1", after_seconds: float = 600.0) -> Behaviour:
    """Reply to texts with ``body``, by default ten minutes later (past any window)."""
    return ReplySms(body, after_seconds)


def never_reply() -> Behaviour:
    """Receive texts and calls but never respond."""
    return Behaviour()


def tapback(reaction: str = "Liked", after_seconds: float = 2.0) -> Behaviour:
    """React to texts with a tapback such as ``Liked`` or ``Laughed at``."""
    return Tapback(reaction, after_seconds)


def invalid() -> Behaviour:
    """Make the number fail as invalid on create."""
    return InvalidNumber()


def _ring_timeout(call: FakeCall) -> float:
    timeout = call.params.get("Timeout")
    return float(timeout) if timeout else DEFAULT_RING_TIMEOUT_SECONDS


def _ring_then(
    fake: FakeTwilio, call: FakeCall, after_seconds: float, step: Callable[[], object]
) -> None:
    fake.schedule(
        RING_DELAY_SECONDS, lambda: _if_status(call, "queued", call.ring), f"ring {call.sid}"
    )
    fake.schedule(RING_DELAY_SECONDS + after_seconds, step, f"phone step {call.sid}")


def _if_status(call: FakeCall, status: str, action: Callable[[], object]) -> None:
    if call.status == status:
        action()


def _if_live(call: FakeCall, action: Callable[[], object]) -> None:
    if not call.ended:
        action()


def _deliver(message: FakeMessage) -> None:
    if message.status in ("accepted", "queued"):
        message.deliver()
