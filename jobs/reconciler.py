"""The reconciler: the database-driven safety net under RQ's timers.

Every tick it rolls over offers past their deadline, starts dispatches whose intake time ran
out, and re-enqueues channels and outbox rows that were never picked up or whose sending lease
expired. It depends on nothing in Redis, so a lost job, a dead scheduler or a flushed Redis
delays a rollover by at most one tick. Several reconcilers may run at once: every action is a
conditional state change taken under a lock.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType

from sqlalchemy import Select, or_, select, update

from dispatch import events
from dispatch.engine import DispatchEngine
from dispatch.models import (
    ChannelState,
    Dispatch,
    DispatchState,
    Heartbeat,
    Offer,
    OfferChannel,
    OfferState,
    OutboxMessage,
    OutboxState,
)
from dispatch.outcomes import rollover_due
from dispatch.taken_messages import deliver_taken_messages
from jobs.enqueue import JOB_TIMEOUT_SECONDS, apply_effects
from jobs.runtime import Runtime, get_runtime

logger = logging.getLogger(__name__)

HEARTBEAT_NAME = "reconciler"
BATCH = 100
# A pending row younger than this is probably still in the queue; leave it to its job.
PICKUP_GRACE_SECONDS = 5
# A call whose caller never chose a route is abandoned after this long in intake.
INTAKE_GIVE_UP_SECONDS = 600


@dataclass
class TickReport:
    rolled_over: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    resent_channels: list[int] = field(default_factory=list)
    resent_outbox: list[int] = field(default_factory=list)
    uncertain: list[int] = field(default_factory=list)
    messages_delivered: list[int] = field(default_factory=list)


def reconcile_once(runtime: Runtime) -> TickReport:
    report = TickReport()
    _roll_over_overdue(runtime, report)
    _start_overdue_intake(runtime, report)
    _requeue_stalled(runtime, report)
    _deliver_messages(runtime, report)
    _write_heartbeat(runtime, report)
    return report


def _locked_ids(runtime: Runtime, statement: Select[int]) -> list[int]:
    with runtime.db.write("reconciler select") as session:
        if not runtime.db.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        return list(session.execute(statement.limit(BATCH)).scalars())


def _roll_over_overdue(runtime: Runtime, report: TickReport) -> None:
    now = runtime.clock.now()
    ids = _locked_ids(
        runtime,
        select(Offer.id)
        .where(Offer.state == OfferState.LIVE, Offer.deadline <= now)
        .order_by(Offer.deadline),
    )
    for offer_id in ids:
        with runtime.db.write("reconciler rollover") as session:
            engine = DispatchEngine(session, runtime.clock.now(), runtime.engine_config())
            offer = session.get(Offer, offer_id)
            late_by = (engine.now - offer.deadline).total_seconds() if offer else 0.0
            result, _ = rollover_due(engine, offer_id)
            if result == "rolled_over" and offer is not None:
                events.record(
                    session,
                    "rollover_reconciled",
                    at=engine.now,
                    account_id=offer.account_id,
                    dispatch_id=offer.dispatch_id,
                    offer_id=offer_id,
                    late_by_seconds=round(late_by, 3),
                )
                logger.info(
                    "dispatch %d offer %d: rollover_late_by=%.1fs (reconciled)",
                    offer.dispatch_id,
                    offer_id,
                    late_by,
                )
                report.rolled_over.append(offer_id)
            effects = engine.effects
        apply_effects(runtime, effects)


def _start_overdue_intake(runtime: Runtime, report: TickReport) -> None:
    now = runtime.clock.now()
    ids = _locked_ids(
        runtime,
        select(Dispatch.id).where(
            Dispatch.state == DispatchState.INTAKE, Dispatch.intake_deadline <= now
        ),
    )
    for dispatch_id in ids:
        with runtime.db.write("reconciler intake") as session:
            engine = DispatchEngine(session, runtime.clock.now(), runtime.engine_config())
            dispatch = engine.lock_dispatch(dispatch_id)
            if dispatch is None or dispatch.state != DispatchState.INTAKE:
                continue
            if dispatch.route_key is not None:
                engine.begin_offering(dispatch)
                report.started.append(dispatch_id)
            elif (engine.now - dispatch.created_at).total_seconds() > INTAKE_GIVE_UP_SECONDS:
                dispatch.state = DispatchState.ABANDONED
                dispatch.state_reason = "no route chosen"
                dispatch.settled_at = engine.now
                events.record(
                    session,
                    "abandoned",
                    at=engine.now,
                    account_id=dispatch.account_id,
                    dispatch_id=dispatch.id,
                    reason="no route chosen within the intake limit",
                )
                report.abandoned.append(dispatch_id)
            effects = engine.effects
        apply_effects(runtime, effects)


def _requeue_stalled(runtime: Runtime, report: TickReport) -> None:
    now = runtime.clock.now()
    grace = now - timedelta(seconds=PICKUP_GRACE_SECONDS)
    channel_ids = _locked_ids(
        runtime,
        select(OfferChannel.id).where(
            or_(
                (OfferChannel.state == ChannelState.PENDING) & (OfferChannel.updated_at <= grace),
                (OfferChannel.state == ChannelState.SENDING) & (OfferChannel.lease_until <= now),
            )
        ),
    )
    outbox_ids = _locked_ids(
        runtime,
        select(OutboxMessage.id).where(
            or_(
                (OutboxMessage.state == OutboxState.PENDING)
                & (OutboxMessage.created_at <= grace)
                & (OutboxMessage.lease_until.is_(None) | (OutboxMessage.lease_until <= now)),
                (OutboxMessage.state == OutboxState.SENDING) & (OutboxMessage.lease_until <= now),
            )
        ),
    )
    uncertain_ids = _locked_ids(
        runtime,
        select(OfferChannel.id).where(
            OfferChannel.state == ChannelState.UNCERTAIN, OfferChannel.updated_at <= grace
        ),
    )
    # Each row is enqueued again at most once per grace period, so a slow queue is not
    # flooded with copies of jobs that are still waiting their turn.
    with runtime.db.write("reconciler touch") as session:
        touched = channel_ids + uncertain_ids
        if touched:
            session.execute(
                update(OfferChannel).where(OfferChannel.id.in_(touched)).values(updated_at=now)
            )
        if outbox_ids:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(outbox_ids), OutboxMessage.state == OutboxState.PENDING)
                .values(lease_until=now + timedelta(seconds=PICKUP_GRACE_SECONDS))
            )
    for channel_id in channel_ids:
        runtime.queue.enqueue(
            "jobs.tasks.send_channel", channel_id, job_timeout=JOB_TIMEOUT_SECONDS
        )
    for outbox_id in outbox_ids:
        runtime.queue.enqueue(
            "jobs.tasks.deliver_outbox", outbox_id, job_timeout=JOB_TIMEOUT_SECONDS
        )
    for channel_id in uncertain_ids:
        runtime.queue.enqueue(
            "jobs.tasks.settle_uncertain", channel_id, job_timeout=JOB_TIMEOUT_SECONDS
        )
    report.resent_channels.extend(channel_ids)
    report.resent_outbox.extend(outbox_ids)
    report.uncertain.extend(uncertain_ids)


def _deliver_messages(runtime: Runtime, report: TickReport) -> None:
    with runtime.db.write("reconciler messages") as session:
        engine = DispatchEngine(session, runtime.clock.now(), runtime.engine_config())
        report.messages_delivered.extend(deliver_taken_messages(engine))
        effects = engine.effects
    apply_effects(runtime, effects)


def _write_heartbeat(runtime: Runtime, report: TickReport) -> None:
    now = runtime.clock.now()
    detail = {
        "pid": os.getpid(),
        "rolled_over": len(report.rolled_over),
        "started": len(report.started),
        "requeued": len(report.resent_channels),
    }
    with runtime.db.write("heartbeat") as session:
        row = session.get(Heartbeat, HEARTBEAT_NAME, with_for_update=True)
        if row is None:
            session.add(Heartbeat(name=HEARTBEAT_NAME, at=now, detail=detail))
        else:
            row.at = now
            row.detail = detail


def run_forever(interval: float | None = None) -> None:
    """Tick until SIGTERM or SIGINT; an error in one tick is logged and the loop goes on."""
    runtime = get_runtime()
    interval = interval or runtime.settings.RECONCILE_INTERVAL_SECONDS
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        logger.info("reconciler: signal %d received, stopping", signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("reconciler: started, pid %d, interval %.1fs", os.getpid(), interval)
    while not stopping:
        started = time.monotonic()
        try:
            report = reconcile_once(runtime)
            if report.rolled_over or report.started or report.resent_channels:
                logger.info(
                    "reconciler: rolled over %s, started %s, requeued %s",
                    report.rolled_over,
                    report.started,
                    report.resent_channels,
                )
        except Exception:
            logger.exception("reconciler: tick failed; retrying next tick")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    logger.info("reconciler: stopped")
