"""Callbacks and jobs that outrun the transaction which stored their rows."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select

import dispatch.engine
import jobs.tasks
from dispatch.models import ChannelState, Dispatch, Offer, OfferChannel, OutboxMessage
from tests.harness import ACCOUNT_SID, ANS, CUSTOMER, DESK, A, Harness
from tests.scenarios.case_support import (
    VOICE_ROUTE,
    fast_loopback,
    receipts,
    send_webhook,
    sid,
    start_sms_offer,
)

__all__ = ["fast_loopback"]


def _call_status_form(call_sid: str, status: str, sequence: int) -> list[tuple[str, str]]:
    return [("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"), ("CallSid", call_sid),
            ("CallStatus", status), ("Direction", "outbound-api"), ("From", ANS),
            ("SequenceNumber", str(sequence)), ("To", A)]


def test_callback_before_sid_stored(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twilio's first status callback may arrive before the job has stored the call SID."""
    harness.load_profile(route=VOICE_ROUTE)
    harness.set_pointer("techs", "c", 2)
    original = jobs.tasks._call_twilio
    seen: dict[str, Any] = {}

    def call_then_callback(runtime: Any, request: jobs.tasks.SendRequest) -> Any:
        with harness.session() as session:
            row = session.get(OfferChannel, request.channel_id)
            seen["state_before_rest"] = row.state if row else None
        outcome = original(runtime, request)
        assert outcome.sid is not None
        path = f"/twilio/status/call/{request.channel_id}"
        seen["callback"] = send_webhook(harness, path,
                                        _call_status_form(outcome.sid, "initiated", 0))
        seen["sid"] = outcome.sid
        return outcome

    monkeypatch.setattr(jobs.tasks, "_call_twilio", call_then_callback)
    harness.customer_texts("Burst pipe")

    assert seen["state_before_rest"] == ChannelState.SENDING
    assert seen["callback"].status_code == 200
    channel = harness.offers()[0].channels[0]
    assert channel.provider_sid == seen["sid"]
    assert channel.state in (ChannelState.QUEUED, ChannelState.RINGING)
    early = [r for r in receipts(harness, "call_status") if r.provider_sid == seen["sid"]]
    assert early[0].outcome == "progress"
    assert harness.events("call_status")[0].detail["sequence"] == 0
    harness.fake.phone(A).expect_call("Press 1")


@pytest.mark.parametrize("kind", ["call", "sms"])
def test_orphan_callback_answered(harness: Harness, kind: str) -> None:
    harness.load_profile()
    if kind == "call":
        form = _call_status_form(sid("CA", 52), "initiated", 0)
    else:
        form = [("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"),
                ("MessageSid", sid("SM", 52)), ("MessageStatus", "delivered"), ("To", A)]

    response = send_webhook(harness, f"/twilio/status/{kind}/9999", form)

    assert response.status_code == 200
    orphans = harness.events("orphan_callback")
    assert len(orphans) == 1
    assert orphans[0].detail["channel_id"] == 9999
    assert [r.outcome for r in receipts(harness)] == ["orphan"]


def test_rollover_job_runs_at_enqueue(harness: Harness,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue that runs the rollover job the moment it is enqueued still finds the offer."""
    results: list[str] = []
    started: list[int] = []
    queue = harness.runtime.queue
    original_enqueue_at = queue.enqueue_at

    def run_at_once(when: Any, func_name: Any, offer_id: int, **kwargs: Any) -> Any:
        if func_name == "jobs.tasks.rollover" and not started:
            started.append(offer_id)
            results.append(jobs.tasks.rollover(offer_id))
            return None
        return original_enqueue_at(when, func_name, offer_id, **kwargs)

    monkeypatch.setattr(queue, "enqueue_at", run_at_once)
    start_sms_offer(harness)

    assert results == ["not_due"]
    assert harness.offers()[0].state == "live"


def test_orphan_rollover_dropped(harness: Harness, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    harness.load_profile()
    monkeypatch.setattr(jobs.tasks, "ORPHAN_RETRY_SECONDS", 0.01)

    with caplog.at_level(logging.WARNING, logger="jobs.tasks"):
        result = jobs.tasks.rollover(4242)

    assert result == "orphan"
    dropped = [r for r in caplog.records if "orphan_rollover_dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert harness.runtime.queue.count == 0
    assert len(harness.runtime.queue.scheduled_job_registry) == 0


def test_rolled_back_dispatch_pages_nobody(harness: Harness,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    original = dispatch.engine.events.record

    def failing_record(session: Any, kind: str, **kwargs: Any) -> Any:
        if kind == "offer_made":
            raise RuntimeError("simulated constraint error on a log insert")
        return original(session, kind, **kwargs)

    monkeypatch.setattr(dispatch.engine.events, "record", failing_record)
    response = harness.customer_texts("Burst pipe")
    monkeypatch.undo()
    harness.advance(200)

    assert response.status_code == 200
    harness.fake.phone(A).assert_no_new_sms()
    with harness.session() as session:
        assert session.execute(select(func.count(Dispatch.id))).scalar_one() == 0
        assert session.execute(select(func.count(Offer.id))).scalar_one() == 0
        assert session.execute(select(func.count(OutboxMessage.id))).scalar_one() == 0
    assert [r.outcome for r in receipts(harness, "sms")] == ["error"]
    assert len(harness.events("receipt_error")) == 1


def test_failed_call_intake_dials_desk(harness: Harness,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    harness.load_profile(route=VOICE_ROUTE)
    original = dispatch.engine.events.record

    def failing_record(session: Any, kind: str, **kwargs: Any) -> Any:
        if kind == "dispatch_created":
            raise RuntimeError("simulated constraint error on a log insert")
        return original(session, kind, **kwargs)

    monkeypatch.setattr(dispatch.engine.events, "record", failing_record)
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    monkeypatch.undo()
    harness.advance(60)

    assert call.dialed == [DESK]
    assert harness.dispatches() == []
    harness.fake.phone(A).assert_no_new_call()
    assert len(harness.events("receipt_error")) == 1
