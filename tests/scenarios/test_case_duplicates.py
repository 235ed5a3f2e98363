"""Duplicate webhook deliveries: replays, overlapping copies, and repeated status callbacks."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
import requests

import webhooks.routes
from dispatch.models import ChannelState, DispatchState
from tests.harness import ACCOUNT_SID, A, B, Harness
from tests.scenarios.case_support import (
    fast_loopback,
    inbound_sms_form,
    receipts,
    send_webhook,
    sid,
    start_sms_offer,
    start_voice_offer,
    texts_to,
)

__all__ = ["fast_loopback"]


def _slow_first_call(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make the first inbound-text handler call take ``seconds``, as a slow database would."""
    original: Callable[..., Any] = webhooks.routes.handle_inbound_sms
    calls = {"n": 0}

    def slow(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(webhooks.routes, "handle_inbound_sms", slow)


def _in_threads(*senders: Callable[[], requests.Response], gap: float = 0.0,
                ) -> list[requests.Response]:
    results: list[requests.Response | None] = [None] * len(senders)

    def run(index: int) -> None:
        results[index] = senders[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
        time.sleep(gap)
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in results), "a request did not finish"
    return [r for r in results if r is not None]


def test_replayed_yes_acknowledges_once(harness: Harness,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    start_sms_offer(harness)
    harness.advance(30)
    _slow_first_call(monkeypatch, 1.5)
    form = inbound_sms_form(A, "YES", sid("SM", 31))

    def copy() -> requests.Response:
        return send_webhook(harness, "/twilio/sms", form, idempotency_token="token-31")

    first, second = _in_threads(copy, copy, gap=0.3)
    harness.run_jobs()

    assert first.status_code == 200
    assert second.status_code == 200
    assert first.text == second.text
    assert harness.dispatch().state == DispatchState.ACKNOWLEDGED
    assert len(harness.events("acknowledged")) == 1
    assert len(texts_to(harness, A, "you accepted")) == 1
    rows = [r for r in receipts(harness, "sms") if r.provider_sid == sid("SM", 31)]
    assert sorted(r.outcome for r in rows) == ["accepted", "duplicate"]

    send_webhook(harness, "/twilio/sms", form, idempotency_token="token-31")
    harness.run_jobs()
    assert len(texts_to(harness, A, "you accepted")) == 1
    assert len(harness.events("acknowledged")) == 1


def test_parallel_gathers_claim_once(harness: Harness) -> None:
    call = start_voice_offer(harness)
    channel_id = harness.offers()[0].channels[0].id
    path = f"/twilio/offer/{channel_id}/gather?prompt=1"
    form = [("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"),
            ("CallSid", call.sid), ("Digits", "1"), ("Direction", "outbound-api"),
            ("From", call.from_), ("To", A)]

    def copy() -> requests.Response:
        return send_webhook(harness, path, form, idempotency_token="token-32")

    responses = _in_threads(copy, copy, gap=0.02)
    harness.run_jobs()

    assert [r.status_code for r in responses] == [200, 200]
    for response in responses:
        root = ET.fromstring(response.text)
        assert root.tag == "Response"
        assert "accepted" in response.text
    assert responses[0].text == responses[1].text
    assert len(harness.events("acknowledged")) == 1
    assert harness.dispatch().state == DispatchState.ACKNOWLEDGED
    rows = [r for r in receipts(harness, "offer_gather") if r.provider_sid == call.sid]
    assert sorted(r.outcome for r in rows) == ["duplicate", "processed"]


def test_status_duplicates_keep_updates(harness: Harness) -> None:
    offer = start_sms_offer(harness)
    channel = harness.offers()[0].channels[0]
    path = f"/twilio/status/sms/{channel.id}"

    def status(value: str) -> list[tuple[str, str]]:
        return [("AccountSid", ACCOUNT_SID),
                ("ApiVersion", "2010-04-01"), ("From", offer.from_), ("MessageSid", offer.sid),
                ("MessageStatus", value), ("SmsSid", offer.sid), ("SmsStatus", value),
                ("To", A)]

    harness.advance(2)
    assert send_webhook(harness, path, status("sent")).status_code == 200
    harness.advance(2)
    assert send_webhook(harness, path, status("delivered")).status_code == 200
    harness.advance(1)
    assert send_webhook(harness, path, status("delivered")).status_code == 200
    assert send_webhook(harness, path, status("sent")).status_code == 200

    rows = [r for r in receipts(harness, "sms_status") if r.provider_sid == offer.sid]
    assert [r.outcome for r in rows] == ["progress", "progress", "duplicate", "duplicate"]
    assert harness.offers()[0].channels[0].state == ChannelState.DELIVERED
    assert [e.detail["status"] for e in harness.events("message_status")] == ["sent", "delivered"]
    harness.fake.phone(B).assert_no_new_sms()
