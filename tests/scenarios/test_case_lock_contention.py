"""Webhooks arriving while a job waits on Twilio: no lock is held, so every write lands."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import pytest
import requests

import jobs.tasks
from dispatch.models import DispatchState, Heartbeat, OfferState
from jobs.reconciler import reconcile_once
from jobs.runtime import get_runtime
from tests.harness import ACCOUNT_SID, ANS, A, B, Harness
from tests.scenarios.case_support import (
    fast_loopback,
    inbound_sms_form,
    receipts,
    send_webhook,
    sid,
    start_sms_offer,
    texts_to,
)

__all__ = ["fast_loopback"]

SLOW_TWILIO_SECONDS = 3.0
CALLBACKS = 20


def _slow_twilio_for(monkeypatch: pytest.MonkeyPatch, number: str,
                     started: threading.Event) -> None:
    original = jobs.tasks._call_twilio

    def slow(runtime: Any, request: jobs.tasks.SendRequest) -> Any:
        if request.to == number:
            started.set()
            time.sleep(SLOW_TWILIO_SECONDS)
        return original(runtime, request)

    monkeypatch.setattr(jobs.tasks, "_call_twilio", slow)


def test_webhooks_during_slow_send(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    offer_to_a = start_sms_offer(harness)
    started = threading.Event()
    _slow_twilio_for(monkeypatch, B, started)
    harness.clock.advance(120)
    reconcile_once(harness.runtime)
    harness.runtime.queue.empty()
    channel_b = harness.offers()[1].channels[0].id

    job = threading.Thread(target=jobs.tasks.send_channel, args=(channel_b,))
    job.start()
    assert started.wait(10), "the send job never reached Twilio"
    harness.clock.advance(1)

    status_path = f"/twilio/status/sms/{harness.offers()[0].channels[0].id}"
    status_form = [("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"),
                   ("From", ANS), ("MessageSid", offer_to_a.sid),
                   ("MessageStatus", "delivered"), ("To", A)]
    ack_form = inbound_sms_form(A, "YES", sid("SM", 25))
    senders = [lambda: send_webhook(harness, "/twilio/sms", ack_form)]
    senders += [lambda: send_webhook(harness, status_path, status_form)] * CALLBACKS
    responses, slowest = _post_all(senders)
    job_still_running = job.is_alive()
    job.join(30)
    harness.run_jobs()

    assert [r.status_code for r in responses] == [200] * (CALLBACKS + 1)
    assert job_still_running, "the webhooks waited for the send job to finish"
    assert slowest < SLOW_TWILIO_SECONDS
    assert len(receipts(harness, "sms_status")) == CALLBACKS
    assert [r.outcome for r in receipts(harness, "sms")][-1] == "accepted"

    dispatch = harness.dispatch()
    first, second = harness.offers()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert dispatch.acknowledged_offer_id == first.id
    assert second.state == OfferState.STOOD_DOWN
    assert second.close_reason == "superseded"
    assert len(texts_to(harness, B, "Reply 1")) == 1
    assert len(texts_to(harness, B, "no longer needed")) == 1


def _post_all(senders: list[Any]) -> tuple[list[requests.Response], float]:
    results: list[requests.Response | None] = [None] * len(senders)
    durations = [0.0] * len(senders)

    def run(index: int) -> None:
        began = time.monotonic()
        results[index] = senders[index]()
        durations[index] = time.monotonic() - began

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done = [r for r in results if r is not None]
    assert len(done) == len(senders), "a webhook did not finish"
    return done, max(durations)


def _child_writes_heartbeat(parent_engine_id: int, results: Any) -> None:
    runtime = get_runtime()
    with runtime.db.write("forked child") as session:
        session.merge(Heartbeat(name="forked-child", at=runtime.clock.now(), detail={}))
    results.put((runtime.pid == os.getpid(), id(runtime.db.engine) != parent_engine_id))


def test_forked_worker_opens_own_connections(harness: Harness) -> None:
    """A forked work horse builds its own engine instead of sharing its parent's sockets."""
    harness.load_profile()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child_writes_heartbeat,
                            args=(id(harness.runtime.db.engine), results))
    child.start()
    child.join(30)

    assert child.exitcode == 0
    assert results.get(timeout=5) == (True, True)
    with harness.session() as session:
        assert session.get(Heartbeat, "forked-child") is not None
