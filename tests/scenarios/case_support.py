"""Helpers shared by the field-case scenario tests: signed webhooks, common setups, RQ speed-up."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests
from rq.worker import BaseWorker
from twilio.request_validator import RequestValidator
from werkzeug.serving import BaseWSGIServer

from dispatch.models import Receipt
from fake_twilio.calls import FakeCall
from fake_twilio.messages import FakeMessage
from tests.harness import ACCOUNT_SID, ANS, AUTH_TOKEN, PUBLIC_BASE, A, Harness

SMS_ROUTE = {"channels": ["sms"], "ack_window_sms_seconds": 120}
VOICE_ROUTE = {"channels": ["voice"], "ack_window_voice_seconds": 120}


SERVER_POLL_SECONDS = 0.02


@pytest.fixture(autouse=True)
def fast_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove two waits that make scenario tests slow but test nothing.

    RQ 3.0 starts the worker's pubsub thread, which listens only for kill commands, with a
    60 s poll, and the worker's teardown sometimes waits for that poll to end, so a burst run
    of a few milliseconds can take a whole minute. The thread is skipped. Werkzeug's
    ``serve_forever`` checks for shutdown every 0.5 s, which each test pays twice on teardown.
    """
    monkeypatch.setattr(BaseWorker, "subscribe", lambda self: None)
    serve_forever = BaseWSGIServer.serve_forever

    def serve_fast(self: BaseWSGIServer, poll_interval: float = SERVER_POLL_SECONDS) -> None:
        serve_forever(self, poll_interval=min(poll_interval, SERVER_POLL_SECONDS))

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", serve_fast)
    yield


def sid(prefix: str, digits: int) -> str:
    """Return a placeholder SID: the prefix, 30 zeros and two digits (``SM…31``)."""
    return f"{prefix}{'0' * 30}{digits:02d}"


def inbound_sms_form(sender: str, body: str, message_sid: str, to: str = ANS,
                     **extra: str) -> list[tuple[str, str]]:
    """Return the form Twilio posts for an inbound text."""
    fields = {
        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "Body": body, "From": sender,
        "MessageSid": message_sid, "NumMedia": "0", "NumSegments": "1",
        "SmsMessageSid": message_sid, "SmsSid": message_sid, "SmsStatus": "received", "To": to,
        **extra,
    }
    return sorted(fields.items())


def signature(url: str, params: Sequence[tuple[str, str]], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, dict(params))


def post_signed(harness: Harness, path: str, params: Sequence[tuple[str, str]], *,
                signed_url: str | None = None, headers: dict[str, str] | None = None,
                ) -> requests.Response:
    """POST a form straight to the app, signed over ``signed_url`` (the public URL by default)."""
    url = signed_url or PUBLIC_BASE + path
    all_headers = {"X-Twilio-Signature": signature(url, params), **(headers or {})}
    return requests.post(harness.app_url + path, data=list(params), headers=all_headers,
                         timeout=30)


def send_webhook(harness: Harness, path: str, params: Sequence[tuple[str, str]],
                 idempotency_token: str | None = None) -> requests.Response:
    """Send a webhook through fake_twilio, signed like Twilio's, and return the response."""
    response = harness.fake.send_webhook(PUBLIC_BASE + path, list(params), ACCOUNT_SID,
                                         raise_errors=True, idempotency_token=idempotency_token)
    assert response is not None
    return response


def start_sms_offer(harness: Harness, reason: str = "Burst pipe", **profile: Any) -> FakeMessage:
    """Load the profile with pool [A, B, C], start a dispatch at A by text; return A's offer."""
    route = {**SMS_ROUTE, **profile.pop("route", {})}
    harness.load_profile(route=route, **profile)
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts(reason)
    return harness.fake.phone(A).expect_sms("Reply 1")


def start_voice_offer(harness: Harness, reason: str = "Burst pipe", **profile: Any) -> FakeCall:
    """Start a dispatch offered to A by phone call and answer it; return A's call."""
    route = {**VOICE_ROUTE, **profile.pop("route", {})}
    harness.load_profile(route=route, **profile)
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts(reason)
    return harness.fake.phone(A).expect_call("Press 1")


def receipts(harness: Harness, route: str | None = None) -> list[Receipt]:
    from sqlalchemy import select

    with harness.session() as session:
        query = select(Receipt).order_by(Receipt.id)
        if route is not None:
            query = query.where(Receipt.route == route)
        return list(session.execute(query).scalars())


def texts_to(harness: Harness, number: str, contains: str = "") -> list[str]:
    """Return the bodies of every text the fake delivered to ``number`` containing ``contains``."""
    harness.fake.run_pending()
    return [m.body for m in harness.fake.phone(number).messages if contains in m.body]

