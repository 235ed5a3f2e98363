"""The watchdog: a small separate process that pages the operator desk when the machinery fails.

It checks the reconciler's heartbeat, offers left overdue, and recent Twilio failures, and texts
``OPERATOR_DESK_NUMBER`` straight through Twilio's REST API, not through the queue, because the
queue and the worker are what it watches. A problem is paged again only after the repeat
interval, so a long outage does not flood the desk.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType

import requests
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from twilio.base.exceptions import TwilioRestException

from dispatch.models import AccountNumber, Event, Heartbeat, Offer, OfferState
from dispatch.phones import mask
from jobs.reconciler import HEARTBEAT_NAME
from jobs.runtime import Runtime, get_runtime

logger = logging.getLogger(__name__)

HEARTBEAT_STALE_SECONDS = 30
OVERDUE_GRACE_SECONDS = 30
FAILURE_WINDOW_SECONDS = 300
FAILURES_TO_ALERT = 5
REPEAT_SECONDS = 900
CHECK_INTERVAL_SECONDS = 15.0


@dataclass
class WatchdogState:
    """When each problem was last paged, so it is paged again only after ``REPEAT_SECONDS``."""

    last_paged: dict[str, datetime] = field(default_factory=dict)


def find_problems(runtime: Runtime, now: datetime) -> dict[str, str]:
    """Return each current problem by key, with the sentence the desk will read."""
    problems: dict[str, str] = {}
    try:
        with runtime.db.read() as session:
            beat = session.get(Heartbeat, HEARTBEAT_NAME)
            overdue = session.execute(
                select(func.count(Offer.id)).where(
                    Offer.state == OfferState.LIVE,
                    Offer.deadline <= now - timedelta(seconds=OVERDUE_GRACE_SECONDS),
                )
            ).scalar_one()
            failures = session.execute(
                select(func.count(Event.id)).where(
                    Event.kind.in_(("send_failed", "outbox_failed")),
                    Event.at >= now - timedelta(seconds=FAILURE_WINDOW_SECONDS),
                )
            ).scalar_one()
    except SQLAlchemyError as exc:
        return {"database": f"the dispatch database is unreachable ({type(exc).__name__})"}
    if beat is None or (now - beat.at).total_seconds() > HEARTBEAT_STALE_SECONDS:
        age = (
            "never ran" if beat is None else f"silent for {int((now - beat.at).total_seconds())} s"
        )
        problems["reconciler"] = f"the reconciler {age}; rollovers may not happen"
    if overdue:
        problems["overdue"] = f"{overdue} offers are past their deadline and not rolled over"
    if failures >= FAILURES_TO_ALERT:
        problems["twilio"] = f"{failures} Twilio requests failed in the last 5 minutes"
    return problems


def check_once(runtime: Runtime, state: WatchdogState) -> list[str]:
    """Page the desk for every problem not paged within the repeat interval; return those."""
    now = runtime.clock.now()
    problems = find_problems(runtime, now)
    due = [
        key
        for key in problems
        if key not in state.last_paged
        or (now - state.last_paged[key]).total_seconds() >= REPEAT_SECONDS
    ]
    for key in set(state.last_paged) - set(problems):
        logger.info("watchdog: %s recovered", key)
        del state.last_paged[key]
    if not due:
        return []
    text = "DISPATCH WATCHDOG: " + "; ".join(problems[key] for key in due) + "."
    if _page(runtime, text):
        for key in due:
            state.last_paged[key] = now
    return due


def _page(runtime: Runtime, text: str) -> bool:
    desk = runtime.settings.OPERATOR_DESK_NUMBER
    if not desk:
        logger.error("watchdog: problem found but OPERATOR_DESK_NUMBER is not set: %s", text)
        return False
    sender = _sender(runtime)
    if sender is None:
        logger.error("watchdog: no answering number to send the page from: %s", text)
        return False
    try:
        runtime.twilio_client(None).messages.create(to=desk, from_=sender, body=text[:300])
    except (TwilioRestException, requests.exceptions.RequestException):
        logger.exception("watchdog: paging the desk at %s failed", mask(desk))
        return False
    logger.warning("watchdog: paged the desk at %s: %s", mask(desk), text)
    return True


def _sender(runtime: Runtime) -> str | None:
    try:
        with runtime.db.read() as session:
            return session.execute(
                select(AccountNumber.number).order_by(AccountNumber.id).limit(1)
            ).scalar_one_or_none()
    except SQLAlchemyError:
        return None


def run_forever(interval: float = CHECK_INTERVAL_SECONDS) -> None:
    runtime = get_runtime()
    state = WatchdogState()
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("watchdog: started, checking every %.0f s", interval)
    while not stopping:
        try:
            check_once(runtime, state)
        except Exception:
            logger.exception("watchdog: check failed; retrying next interval")
        time.sleep(interval)
    logger.info("watchdog: stopped")
