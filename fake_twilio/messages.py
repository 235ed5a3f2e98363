"""One SMS in the fake: its status, delivery callbacks and JSON resource."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MultiDict

from fake_twilio.formats import API_VERSION, new_sid, rfc2822

if TYPE_CHECKING:
    from fake_twilio.server import FakeTwilio

# Characters of the GSM 03.38 basic set; any other character makes Twilio send UCS-2.
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Delivery errors that Twilio reports as "undelivered"; other codes end the message "failed".
UNDELIVERED_CODES = {21610, 30003, 30004, 30005, 30006, 30007, 30032}


def count_segments(body: str) -> int:
    """Return how many SMS segments ``body`` needs.

    GSM-7 fits 160 characters, or 153 per segment; UCS-2 fits 70, or 67 per segment.
    """
    single, part = (160, 153) if set(body) <= GSM_BASIC else (70, 67)
    if len(body) <= single:
        return 1
    return -(-len(body) // part)


class FakeMessage:
    """An SMS: sent through REST (``outbound-api``), as TwiML reply or inbound."""

    def __init__(
        self,
        fake: FakeTwilio,
        account_sid: str,
        to: str,
        from_: str,
        body: str,
        params: MultiDict[str, str],
    ) -> None:
        self._fake = fake
        self.sid = new_sid("SM")
        self.account_sid = account_sid
        self.to = to
        self.from_ = from_
        self.body = body
        self.params = params
        self.messaging_service_sid = params.get("MessagingServiceSid")
        self.direction = "outbound-api"
        self.status = (
            "accepted" if self.messaging_service_sid and not params.get("From") else "queued"
        )
        self.date_created: datetime = fake.now()
        self.date_updated: datetime = self.date_created
        self.date_sent: datetime | None = None
        self.error_code: int | None = None
        self.error_message: str | None = None
        self.claimed = False

    def __repr__(self) -> str:
        return f"<FakeMessage {self.sid} {self.from_}->{self.to} {self.status} {self.body!r}>"

    @property
    def ended(self) -> bool:
        return self.status in ("delivered", "undelivered", "failed", "received", "canceled")

    def deliver(self) -> FakeMessage:
        """Hand the message to the phone: status callbacks ``sent``, then ``delivered``."""
        self._fake.run_pending()
        self._require_pending("deliver")
        self._advance("sent")
        self._advance("delivered")
        return self

    def fail(self, code: int, status: str | None = None, message: str | None = None) -> FakeMessage:
        """End the message ``undelivered`` or ``failed`` with ``ErrorCode``.

        Without ``status``, codes that mean the handset could not take it end ``undelivered``
        after a ``sent`` callback, and other codes end ``failed``.
        """
        self._fake.run_pending()
        self._require_pending("fail")
        final = status or ("undelivered" if code in UNDELIVERED_CODES else "failed")
        if final == "undelivered":
            self._advance("sent")
        self.error_code = code
        self.error_message = message
        self._advance(final)
        return self

    def to_resource(self) -> dict[str, Any]:
        """Return the message as Twilio's JSON Message resource."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "date_sent": rfc2822(self.date_sent),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_ or None,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(count_segments(self.body)),
            "price": None,
            "price_unit": "USD",
            "status": self.status,
            "to": self.to,
            "uri": uri,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        }

    def _require_pending(self, action: str) -> None:
        if self.status not in ("accepted", "queued", "sending", "sent"):
            raise AssertionError(f"cannot {action} {self!r}: it is already {self.status}")

    def _advance(self, status: str) -> None:
        with self._fake.lock:
            self.status = status
            self.date_updated = self._fake.now()
            if status == "sent":
                self.date_sent = self.date_updated
        self._status_callback()

    def _status_callback(self) -> None:
        url = self.params.get("StatusCallback")
        if not url:
            return
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("From", self.from_),
            ("MessageSid", self.sid),
            ("MessageStatus", self.status),
            ("SmsSid", self.sid),
            ("SmsStatus", self.status),
            ("To", self.to),
        ]
        if self.messaging_service_sid:
            params.append(("MessagingServiceSid", self.messaging_service_sid))
        if self.error_code is not None and self.status in ("failed", "undelivered"):
            params.append(("ErrorCode", str(self.error_code)))
        self._fake.deliver_callback(url, params, self.account_sid, "POST")
