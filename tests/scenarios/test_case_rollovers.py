"""Rollover jobs that fire late, twice, after an acknowledgement, or never (the reconciler)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

import jobs.enqueue
import jobs.tasks
from dispatch.models import ChannelState, DispatchState
from jobs.reconciler import reconcile_once
from tests.harness import A, B, C, Harness
from tests.scenarios.case_support import (
    fast_loopback,
    start_sms_offer,
    texts_to,
)

__all__ = ["fast_loopback"]


def _release_scheduled_jobs(harness: Harness) -> list[str]:
    """Move every scheduled job to the queue now, as RQ's scheduler does at its due time."""
    queue = harness.runtime.queue
    registry = ScheduledJobRegistry(queue=queue, serializer=JSONSerializer)
    moved = []
    for job_id in registry.get_job_ids():
        job = Job.fetch(job_id, connection=harness.redis, serializer=JSONSerializer)
        registry.remove(job)
        queue.enqueue_job(job)
        moved.append(job.func_name or "")
    return moved


# -- a rollover job that runs after the acknowledgement ---------------------------------------


def test_ack_deletes_rollover_job(harness: Harness) -> None:
    start_sms_offer(harness)
    registry = ScheduledJobRegistry(queue=harness.runtime.queue, serializer=JSONSerializer)
    assert len(registry.get_job_ids()) == 1

    harness.fake.phone(A).send_sms("+13125550100", "YES")
    harness.run_jobs()

    assert registry.get_job_ids() == []


def test_rollover_after_ack_skipped(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job still runs when deleting it failed, and then does nothing."""
    monkeypatch.setattr(jobs.enqueue, "delete_rollover_jobs", lambda runtime, jobs: None)
    start_sms_offer(harness)
    harness.advance(60)
    harness.fake.phone(A).send_sms("+13125550100", "YES")
    harness.run_jobs()

    harness.clock.advance(61)
    moved = _release_scheduled_jobs(harness)
    harness.run_jobs()

    assert "jobs.tasks.rollover" in moved
    harness.fake.phone(B).assert_no_new_sms()
    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert harness.offered_members() == ["a"]
    skipped = harness.events("rollover_skipped")
    assert len(skipped) == 1
    assert skipped[0].detail["acknowledged_by"] == "Alice"
    assert skipped[0].detail["acknowledged_at"] == "2025-06-10T15:01:00+00:00"


def test_stale_rollover_ignored(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.fake.phone(A).send_sms("+13125550100", "YES")
    harness.run_jobs()
    offer_id = harness.offers()[0].id

    harness.clock.advance(timedelta(days=60).total_seconds())
    result = jobs.tasks.rollover(offer_id)
    harness.run_jobs()

    assert result.startswith("offer already")
    stale = harness.events("stale_rollover_ignored")
    assert len(stale) == 1
    assert stale[0].dispatch_id == harness.dispatch().id
    harness.fake.phone(B).assert_no_new_sms()


# -- the reconciler rolls over without RQ's scheduler -----------------------------------------


def test_reconciler_rolls_over_late(harness: Harness) -> None:
    start_sms_offer(harness)

    harness.advance(150)

    harness.fake.phone(B).expect_sms("Reply 1")
    reconciled = harness.events("rollover_reconciled")
    assert len(reconciled) == 1
    assert reconciled[0].detail["late_by_seconds"] == 30.0
    ready = harness.app.test_client().get("/readyz").get_json()
    assert ready["checks"]["scheduler"] == "no active scheduler for queue"


def test_stuck_scheduler_lock_ignored(harness: Harness) -> None:
    start_sms_offer(harness)
    lock_key = RQScheduler.get_locking_key(harness.runtime.queue.name)
    harness.redis.set(lock_key, "old-worker", ex=3600)
    try:
        harness.advance(60)
        harness.advance(120)
    finally:
        harness.redis.delete(lock_key)

    harness.fake.phone(B).expect_sms("Reply 1")
    assert [e.detail["late_by_seconds"] for e in harness.events("rollover_reconciled")] == [60.0]


def test_killed_send_resent_once(harness: Harness) -> None:
    """A worker killed after claiming a send leaves it ``sending``; its lease expiry resends."""
    start_sms_offer(harness)
    harness.clock.advance(121)
    reconcile_once(harness.runtime)
    harness.runtime.queue.empty()
    channel = harness.offers()[1].channels[0]
    claimed = jobs.tasks._claim_channel(harness.runtime, channel.id)
    assert isinstance(claimed, jobs.tasks.SendRequest)

    harness.advance(10)
    harness.fake.phone(B).assert_no_new_sms()
    harness.advance(6)
    harness.fake.phone(B).expect_sms("Reply 1")
    harness.advance(20)

    assert len(texts_to(harness, B, "Reply 1")) == 1
    assert harness.offers()[1].channels[0].state == ChannelState.SENT


def test_jobs_run_twice_send_once(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.advance(120)
    harness.fake.phone(B).expect_sms("Reply 1")
    first, second = harness.offers()

    assert jobs.tasks.send_channel(second.channels[0].id).startswith("skipped")
    assert jobs.tasks.send_channel(first.channels[0].id).startswith("skipped")
    assert jobs.tasks.rollover(first.id).startswith("offer already")
    harness.run_jobs()

    assert len(texts_to(harness, B, "Reply 1")) == 1
    assert len(texts_to(harness, A, "Reply 1")) == 1
    harness.fake.phone(C).assert_no_new_sms()
    assert len(harness.events("channel_sent")) == 2


# -- deadlines in UTC whatever the server's time zone -----------------------------------------


@pytest.fixture
def server_zone() -> Iterator[None]:
    saved = os.environ.get("TZ")
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize(("zone", "start"), [
    ("America/Chicago", datetime(2025, 1, 15, 15, 0, tzinfo=UTC)),
    ("America/Chicago", datetime(2025, 6, 10, 15, 0, tzinfo=UTC)),
    ("Australia/Sydney", datetime(2025, 6, 10, 15, 0, tzinfo=UTC)),
    ("UTC", datetime(2025, 6, 10, 15, 0, tzinfo=UTC)),
])
def test_deadline_in_utc(db_url: str, redis_client: redis.Redis, redis_prefix: str,
                         server_zone: None, zone: str, start: datetime) -> None:
    os.environ["TZ"] = zone
    time.tzset()
    harness = Harness(db_url, redis_client, redis_prefix, start=start)
    try:
        _check_deadline(harness, start)
    finally:
        harness.close()


def _check_deadline(harness: Harness, start: datetime) -> None:
    # A text offer, because a call ends at its ring timeout long before the window does.
    real_before = datetime.now(UTC)
    start_sms_offer(harness)

    offer = harness.offers()[0]
    assert offer.deadline == start + timedelta(seconds=120)
    made = harness.events("offer_made")[0]
    assert made.detail["deadline"] == (start + timedelta(seconds=120)).isoformat()
    assert made.detail["deadline"].endswith("+00:00")
    registry = ScheduledJobRegistry(queue=harness.runtime.queue, serializer=JSONSerializer)
    due_times = [registry.get_scheduled_time(job_id) for job_id in registry.get_job_ids()]
    assert due_times, "no rollover job was scheduled"
    for due in due_times:
        delay = (due - real_before).total_seconds()
        assert 119 <= delay <= 123, f"rollover scheduled {delay:.0f}s ahead, expected 120s"

    harness.advance(119)
    harness.fake.phone(B).assert_no_new_sms()
    harness.advance(1)
    harness.fake.phone(B).expect_sms("Reply 1")
    rollover = harness.events("rollover")[0]
    assert rollover.at == start + timedelta(seconds=120)
