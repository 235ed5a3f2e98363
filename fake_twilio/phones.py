"""A staff member's or caller's handset: what it received, and what it sends."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import requests

from fake_twilio.calls import CallRecord, FakeCall
from fake_twilio.formats import API_VERSION, new_sid
from fake_twilio.messages import FakeMessage, count_segments

if TYPE_CHECKING:
    from fake_twilio.scripts import Behaviour
    from fake_twilio.server import FakeTwilio

logger = logging.getLogger(__name__)


class Phone:
    """The test's handle on one phone number.

    ``calls`` and ``messages`` contain what Twilio placed to this number, oldest first.
    The ``expect_*`` helpers claim the newest item that no earlier expectation claimed.
    """

    def __init__(self, fake: FakeTwilio, number: str) -> None:
        self._fake = fake
        self.number = number
        self.calls: list[FakeCall] = []
        self.messages: list[FakeMessage] = []
        self.sent_calls: list[FakeCall] = []
        self.behaviour: Behaviour | None = None
        self.invalid = False

    def __repr__(self) -> str:
        return f"<Phone {self.number}>"

    def expect_call(self, contains: str | None = None) -> FakeCall:
        """Claim the newest call to this phone that no expectation claimed yet.

        With ``contains``, the call is answered by a human (if it is still ringing) and
        its spoken text must contain that string. Raises AssertionError with a listing
        of the phone's calls when there is no such call.
        """
        self._fake.run_pending()
        fresh = [call for call in self.calls if not call.claimed]
        if not fresh:
            raise AssertionError(
                f"expected a call to {self.number}, got none new; all calls: {self.calls!r}"
            )

        call = fresh[-1]
        call.claimed = True
        if contains is None:
            return call
        if call.status in ("queued", "ringing"):
            call.answer()
        if contains not in call.said_text:
            raise AssertionError(
                f"expected the call to {self.number} to say {contains!r}; "
                f"it said {call.said_text!r}"
            )
        return call

    def expect_sms(self, contains: str | None = None) -> FakeMessage:
        """Claim the newest unclaimed message to this phone that contains ``contains``."""
        self._fake.run_pending()
        fresh = [message for message in self.messages if not message.claimed]
        matching = [message for message in fresh if contains is None or contains in message.body]
        if not matching:
            bodies = [message.body for message in self.messages]
            raise AssertionError(
                f"expected an SMS to {self.number} containing {contains!r}; "
                f"all messages: {bodies!r}"
            )
        message = matching[-1]
        message.claimed = True
        return message

    def assert_no_new_call(self) -> None:
        """Raise AssertionError if a call arrived that no expectation claimed."""
        self._fake.run_pending()
        fresh = [call for call in self.calls if not call.claimed]
        if fresh:
            raise AssertionError(f"expected no new call to {self.number}; got {fresh!r}")

    def assert_no_new_sms(self) -> None:
        """Raise AssertionError if a message arrived that no expectation claimed."""
        self._fake.run_pending()
        fresh = [message for message in self.messages if not message.claimed]
        if fresh:
            raise AssertionError(f"expected no new SMS to {self.number}; got {fresh!r}")

    def script(self, behaviour: Behaviour) -> Phone:
        """Let ``behaviour`` handle this phone's calls and messages from now on."""
        self.behaviour = behaviour
        self.invalid = behaviour.invalid_number
        return self

    def send_sms(self, to: str, body: str, **extra: str) -> requests.Response:
        """Text ``to`` (a number configured in the fake) and return the app's HTTP response.

        The webhook carries the fields of an inbound Twilio SMS plus ``extra``, such as
        ``OptOutType`` or ``MessagingServiceSid``. A ``<Message>`` in the reply TwiML is
        delivered back to this phone.
        """
        number = self._fake.number_config(to)
        if not number.get("sms_url"):
            raise AssertionError(
                f"{to} has no SmsUrl; configure it in FakeTwilio(numbers=...) "
                "or via IncomingPhoneNumbers"
            )

        sid = new_sid("SM")
        params = [
            ("AccountSid", number["account_sid"]),
            ("ApiVersion", API_VERSION),
            ("Body", body),
            ("From", self.number),
            ("MessageSid", sid),
            ("NumMedia", "0"),
            ("NumSegments", str(count_segments(body))),
            ("SmsMessageSid", sid),
            ("SmsSid", sid),
            ("SmsStatus", "received"),
            ("To", to),
        ]
        params += sorted(extra.items())
        self._fake.record_inbound_message(number["account_sid"], sid, self.number, to, body)
        response = self._fake.send_webhook(
            number["sms_url"],
            params,
            number["account_sid"],
            number.get("sms_method", "POST"),
            raise_errors=True,
        )
        assert response is not None
        self._fake.deliver_twiml_replies(
            response, number["account_sid"], sender=to, recipient=self.number
        )
        return response

    def dial(self, to: str) -> FakeCall:
        """Call ``to`` (a number configured in the fake) and follow the app's TwiML."""
        number = self._fake.number_config(to)
        if not number.get("voice_url"):
            raise AssertionError(
                f"{to} has no VoiceUrl; configure it in FakeTwilio(numbers=...) "
                "or via IncomingPhoneNumbers"
            )

        record = CallRecord(
            account_sid=number["account_sid"], to=to, from_=self.number, direction="inbound"
        )
        if number.get("status_callback"):
            record.params.add("StatusCallback", number["status_callback"])
        call = FakeCall(
            self._fake,
            record,
            url=number["voice_url"],
            twiml=None,
            method=number.get("voice_method", "POST"),
        )
        self._fake.add_call(call)
        self.sent_calls.append(call)
        call.claimed = True
        call.start_inbound(number["voice_url"], number.get("voice_method", "POST"))
        return call
