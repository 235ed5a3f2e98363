"""Liveness and readiness endpoints for load balancers and monitoring."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Blueprint, Response, jsonify
from rq.scheduler import RQScheduler
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from dispatch.models import Account, ChannelPause, Heartbeat, Offer, OfferState, OutboxMessage
from jobs.reconciler import HEARTBEAT_NAME
from webhooks.receipts import runtime

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

HEARTBEAT_STALE_SECONDS = 10


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    rt = runtime()
    now = rt.clock.now()
    checks: dict[str, Any] = {}
    ok = True

    checks["twilio_auth_token"] = "configured" if rt.settings.TWILIO_AUTH_TOKEN else "missing"
    ok &= bool(rt.settings.TWILIO_AUTH_TOKEN)
    try:
        with rt.db.read() as session:
            session.execute(text("SELECT 1"))
            beat = session.get(Heartbeat, HEARTBEAT_NAME)
            overdue = session.execute(
                select(func.min(Offer.deadline)).where(
                    Offer.state == OfferState.LIVE, Offer.deadline <= now
                )
            ).scalar_one_or_none()
            pauses = session.execute(
                select(Account.key, ChannelPause.channel, ChannelPause.error_code)
                .join(Account, Account.id == ChannelPause.account_id)
                .where(ChannelPause.active)
            ).all()
            last_sent = session.execute(select(func.max(OutboxMessage.sent_at))).scalar()
        checks["database"] = "ok"
        age = (now - beat.at).total_seconds() if beat else None
        checks["reconciler_heartbeat_age_seconds"] = age
        reconciler_ok = age is not None and age < HEARTBEAT_STALE_SECONDS
        ok &= reconciler_ok
        checks["oldest_overdue_offer"] = overdue.isoformat() if overdue else None
        checks["paused_channels"] = [
            {"account": key, "channel": str(channel), "error_code": code}
            for key, channel, code in pauses
        ]
        checks["last_outbox_sent_at"] = last_sent.isoformat() if last_sent else None
    except SQLAlchemyError as exc:
        logger.warning("readyz: database check failed: %s", type(exc).__name__)
        checks["database"] = f"error: {type(exc).__name__}"
        ok = False
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
        lock_key = RQScheduler.get_locking_key(rt.queue.name)
        scheduler = bool(rt.redis.exists(lock_key))
        checks["scheduler"] = "running" if scheduler else "no active scheduler for queue"
    except redis.RedisError as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
        ok = False
    status = 200 if ok else 503
    return jsonify(status="ready" if ok else "not ready", checks=checks), status
