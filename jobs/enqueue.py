"""Hand committed work to RQ. Called only after the transaction that recorded it commits.

A failure to reach Redis is logged and otherwise ignored: the reconciler finds pending channels,
pending outbox rows and overdue offers in the database and enqueues them again.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from dispatch.engine import Effects
from jobs.runtime import Runtime

logger = logging.getLogger(__name__)

JOB_TIMEOUT_SECONDS = 60  # longer than the 10 s REST timeout plus retries


def apply_effects(runtime: Runtime, effects: Effects) -> None:
    try:
        for channel_id in effects.send_channels:
            runtime.queue.enqueue(
                "jobs.tasks.send_channel",
                channel_id,
                job_timeout=JOB_TIMEOUT_SECONDS,
                description=f"send channel {channel_id}",
            )
        for outbox_id in effects.outbox:
            runtime.queue.enqueue(
                "jobs.tasks.deliver_outbox",
                outbox_id,
                job_timeout=JOB_TIMEOUT_SECONDS,
                description=f"deliver outbox {outbox_id}",
            )
        for offer_id, deadline in effects.rollovers:
            runtime.queue.enqueue_at(
                runtime.real_time_for(deadline),
                "jobs.tasks.rollover",
                offer_id,
                job_timeout=JOB_TIMEOUT_SECONDS,
                job_id=rollover_job_id(offer_id, deadline),
                description=f"rollover offer {offer_id} at {deadline.isoformat()}",
            )
        delete_rollover_jobs(runtime, effects.cancelled_rollovers)
    except redis.RedisError:
        logger.exception(
            "enqueue failed for channels %s outbox %s rollovers %s; the reconciler will retry",
            effects.send_channels,
            effects.outbox,
            [o for o, _ in effects.rollovers],
        )


def rollover_job_id(offer_id: int, deadline: datetime) -> str:
    """Return the RQ job id of an offer's rollover at one deadline, so it can be deleted."""
    return f"rollover-{offer_id}-{math.ceil(deadline.timestamp())}"


def delete_rollover_jobs(runtime: Runtime, jobs: list[tuple[int, datetime]]) -> None:
    """Delete scheduled rollover jobs that have nothing left to do; missing ones are skipped."""
    for offer_id, deadline in jobs:
        job_id = rollover_job_id(offer_id, deadline)
        try:
            job = Job.fetch(job_id, connection=runtime.redis, serializer=runtime.queue.serializer)
        except NoSuchJobError:
            continue
        job.delete()
        logger.info("offer %d: rollover job %s deleted", offer_id, job_id)
