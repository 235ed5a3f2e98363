"""RQ jobs: send offer channels and outbox messages through Twilio, and roll offers over.

Every job takes ids only, re-reads the rows under a lock, and acts only when the row is still in
the state that called for the job, so a job that runs twice, late, or after an acknowledgement
does nothing harmful. No job calls Twilio inside a database transaction.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException

from dispatch import events
from dispatch.delivery import record_send_error, record_sent, uncertain_settled
from dispatch.engine import DispatchEngine
from dispatch.models import (
    Account,
    Channel,
    ChannelState,
    Dispatch,
    Offer,
    OfferChannel,
    OfferState,
    OutboxMessage,
    OutboxState,
)
from dispatch.outcomes import rollover_due
from dispatch.phones import mask
from dispatch.twilio_errors import ErrorKind, classify_error
from jobs.enqueue import JOB_TIMEOUT_SECONDS, apply_effects
from jobs.runtime import Runtime, get_runtime

logger = logging.getLogger(__name__)

ORPHAN_RETRIES = 3
ORPHAN_RETRY_SECONDS = 1.0
MAX_SMS_VALIDITY_SECONDS = 300
PACING_MAX_WAIT_SECONDS = 5


@dataclass(frozen=True)
class SendRequest:
    channel_id: int
    offer_id: int
    dispatch_id: int
    channel: Channel
    to: str
    sender: str
    body: str | None
    ring_timeout: int
    window_seconds: int
    account_id: int


@dataclass(frozen=True)
class SendOutcome:
    sid: str | None = None
    kind: ErrorKind | None = None
    code: int | None = None
    detail: str = ""


def send_channel(channel_id: int) -> str:
    """Send one offer channel (a call or a text) unless it was stood down or already sent."""
    runtime = get_runtime()
    request = _claim_channel(runtime, channel_id)
    if isinstance(request, str):
        return request
    if request.channel == Channel.VOICE and not _pace_call(runtime, request):
        return "paced"
    outcome = _call_twilio(runtime, request)
    return _store_outcome(runtime, request, outcome)


def _lock_dispatch_then(session: Session, row: OfferChannel) -> None:
    """Lock the channel's dispatch, then the channel: the order every writer uses."""
    dispatch = session.get(Dispatch, row.offer.dispatch_id)
    assert dispatch is not None
    session.refresh(dispatch, with_for_update=True)
    session.refresh(row, with_for_update=True)


def _claim_channel(runtime: Runtime, channel_id: int) -> SendRequest | str:
    now = runtime.clock.now()
    with runtime.db.write("send_channel claim") as session:
        row = session.get(OfferChannel, channel_id)
        if row is None:
            logger.warning("channel %d: not found; send skipped (orphan_send_dropped)", channel_id)
            return "orphan"
        _lock_dispatch_then(session, row)
        lease_expired = row.state == ChannelState.SENDING and (
            row.lease_until is None or row.lease_until <= now
        )
        if row.state != ChannelState.PENDING and not lease_expired:
            logger.info(
                "dispatch %d offer %d channel %d: already %s, not sent again",
                row.offer.dispatch_id,
                row.offer_id,
                row.id,
                row.state,
            )
            return f"skipped: {row.state}"
        offer = row.offer
        dispatch = session.get(Dispatch, offer.dispatch_id)
        assert dispatch is not None
        if offer.state != OfferState.LIVE or not dispatch.is_open:
            row.state = ChannelState.STOOD_DOWN
            logger.info(
                "dispatch %d offer %d: channel %d not sent, offer %s",
                dispatch.id,
                offer.id,
                row.id,
                offer.state,
            )
            return "skipped: offer closed"
        engine = DispatchEngine(session, now, runtime.engine_config())
        profile = engine.profile_for(engine.account(dispatch.account_id))
        route = engine.route_for(dispatch, profile)
        row.state = ChannelState.SENDING
        row.send_attempts += 1
        row.lease_until = now + timedelta(seconds=runtime.settings.SENDING_LEASE_SECONDS)
        return SendRequest(
            channel_id=row.id,
            offer_id=offer.id,
            dispatch_id=dispatch.id,
            channel=row.channel,
            to=row.to_number,
            sender=row.from_number or dispatch.answering_number,
            body=row.body,
            ring_timeout=route.ring_timeout_seconds if route else 25,
            window_seconds=offer.window_seconds,
            account_id=dispatch.account_id,
        )


def _pace_call(runtime: Runtime, request: SendRequest) -> bool:
    """Keep outbound calls within a per-Twilio-account rate, so one burst cannot starve others.

    Waits for a free slot in the next few seconds; returns False (leaving the channel to the
    reconciler) only when none frees up, which means far more calls than the rate allows.
    """
    with runtime.db.read() as session:
        account = session.get(Account, request.account_id)
        sid, _token = runtime.credentials_for(account)
    limit = runtime.settings.CALLS_PER_SECOND
    for _ in range(PACING_MAX_WAIT_SECONDS):
        now = time.time()
        key = f"rrd:pace:{sid}:{int(now)}"
        used = int(runtime.redis.incr(key))
        runtime.redis.expire(key, 5)
        if used <= limit:
            return True
        time.sleep(1.0 - (now % 1.0))
    with runtime.db.write("pace release") as session:
        row = session.get(OfferChannel, request.channel_id)
        if row is not None and row.state == ChannelState.SENDING:
            row.state = ChannelState.PENDING
            row.send_attempts -= 1
            row.lease_until = None
    logger.warning(
        "dispatch %d offer %d: no call slot for account %s within %ds; left pending",
        request.dispatch_id,
        request.offer_id,
        sid,
        PACING_MAX_WAIT_SECONDS,
    )
    return False


def _call_twilio(runtime: Runtime, request: SendRequest) -> SendOutcome:
    with runtime.db.read() as session:
        account = session.get(Account, request.account_id)
    client = runtime.twilio_client(account)
    try:
        if request.channel == Channel.VOICE:
            call = client.calls.create(
                to=request.to,
                from_=request.sender,
                url=runtime.public_url(f"/twilio/offer/{request.channel_id}/twiml"),
                status_callback=runtime.public_url(f"/twilio/status/call/{request.channel_id}"),
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                timeout=request.ring_timeout,
                machine_detection="Enable",
                async_amd="true",
                async_amd_status_callback=runtime.public_url(f"/twilio/amd/{request.channel_id}"),
            )
            return SendOutcome(sid=call.sid)
        sender: dict[str, Any] = (
            {"messaging_service_sid": request.sender}
            if request.sender.startswith("MG")
            else {"from_": request.sender}
        )
        message = client.messages.create(
            to=request.to,
            body=request.body or "",
            status_callback=runtime.public_url(f"/twilio/status/sms/{request.channel_id}"),
            validity_period=min(request.window_seconds, MAX_SMS_VALIDITY_SECONDS),
            smart_encoded=True,
            **sender,
        )
        return SendOutcome(sid=message.sid)
    except TwilioRestException as exc:
        kind = classify_error(
            exc.code, at="rest", http_status=exc.status, channel=str(request.channel)
        )
        return SendOutcome(kind=kind, code=exc.code, detail=f"HTTP {exc.status}")
    except requests.exceptions.ReadTimeout:
        return SendOutcome(kind=ErrorKind.UNKNOWN, detail="read timeout: outcome unknown")
    except requests.exceptions.RequestException as exc:
        return SendOutcome(kind=ErrorKind.TRANSIENT_REST, detail=type(exc).__name__)


def _store_outcome(runtime: Runtime, request: SendRequest, outcome: SendOutcome) -> str:
    now = runtime.clock.now()
    with runtime.db.write("send_channel result") as session:
        row = session.get(OfferChannel, request.channel_id)
        assert row is not None
        _lock_dispatch_then(session, row)
        engine = DispatchEngine(session, now, runtime.engine_config())
        retry = False
        if outcome.sid is not None:
            record_sent(engine, row, outcome.sid)
            result = "sent"
        else:
            assert outcome.kind is not None
            retry = record_send_error(engine, row, outcome.kind, outcome.code, outcome.detail)
            result = f"failed: {outcome.kind}"
        effects = engine.effects
        attempts = row.send_attempts
    apply_effects(runtime, effects)
    if retry:
        delay = _backoff(attempts)
        runtime.queue.enqueue_in(
            timedelta(seconds=delay),
            "jobs.tasks.send_channel",
            request.channel_id,
            job_timeout=JOB_TIMEOUT_SECONDS,
        )
        logger.info(
            "dispatch %d offer %d: %s send retried in %.1fs",
            request.dispatch_id,
            request.offer_id,
            request.channel,
            delay,
        )
    logger.info(
        "dispatch %d offer %d: %s to %s %s",
        request.dispatch_id,
        request.offer_id,
        request.channel,
        mask(request.to),
        result,
    )
    return result


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped well inside an acknowledgement window."""
    return random.uniform(0.5, min(2.0**attempt, 10.0))


def rollover(offer_id: int) -> str:
    """Roll an offer over at its deadline; a no-op when it was settled meanwhile."""
    runtime = get_runtime()
    for attempt in range(ORPHAN_RETRIES + 1):
        now = runtime.clock.now()
        with runtime.db.write("rollover") as session:
            engine = DispatchEngine(session, now, runtime.engine_config())
            result, due = rollover_due(engine, offer_id)
            if result not in ("orphan", "not_due", "rolled_over"):
                _record_skip(engine, offer_id, result)
            effects = engine.effects
        apply_effects(runtime, effects)
        if result != "orphan":
            break
        if attempt < ORPHAN_RETRIES:
            time.sleep(ORPHAN_RETRY_SECONDS)
    if result == "orphan":
        logger.warning(
            "offer %d: not found after %d tries (orphan_rollover_dropped)",
            offer_id,
            ORPHAN_RETRIES + 1,
        )
    elif result == "not_due" and due is not None:
        runtime.queue.enqueue_at(
            runtime.real_time_for(due),
            "jobs.tasks.rollover",
            offer_id,
            job_timeout=JOB_TIMEOUT_SECONDS,
        )
        logger.info("offer %d: rollover not due until %s, rescheduled", offer_id, due.isoformat())
    return result


def _record_skip(engine: DispatchEngine, offer_id: int, result: str) -> None:
    offer = engine.session.get(Offer, offer_id)
    if offer is None:
        return
    dispatch = engine.session.get(Dispatch, offer.dispatch_id)
    assert dispatch is not None
    stale = dispatch.settled_at is not None and engine.now - dispatch.settled_at > timedelta(
        seconds=engine.config.late_accept_seconds
    )
    kind = "stale_rollover_ignored" if stale else "rollover_skipped"
    holder = None
    if dispatch.acknowledged_offer_id:
        for other in dispatch.offers:
            if other.id == dispatch.acknowledged_offer_id:
                holder = other.member_name
    events.record(
        engine.session,
        kind,
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        offer_id=offer_id,
        reason=result,
        dispatch_state=str(dispatch.state),
        acknowledged_by=holder,
        acknowledged_at=dispatch.acknowledged_at.isoformat() if dispatch.acknowledged_at else None,
    )
    logger.info(
        "dispatch %d offer %d: %s (%s%s)",
        dispatch.id,
        offer_id,
        kind,
        result,
        f", acknowledged by {holder}" if holder else "",
    )


def deliver_outbox(outbox_id: int) -> str:
    """Send one queued text or call update; never twice for the same row."""
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.db.write("outbox claim") as session:
        row = session.get(OutboxMessage, outbox_id, with_for_update=True)
        if row is None:
            logger.warning("outbox %d: not found (orphan_outbox_dropped)", outbox_id)
            return "orphan"
        lease_expired = row.state == OutboxState.SENDING and (
            row.lease_until is None or row.lease_until <= now
        )
        if row.state != OutboxState.PENDING and not lease_expired:
            return f"skipped: {row.state}"
        row.state = OutboxState.SENDING
        row.attempts += 1
        row.lease_until = now + timedelta(seconds=runtime.settings.SENDING_LEASE_SECONDS)
        account = session.get(Account, row.account_id) if row.account_id else None
        job = {
            "kind": row.kind,
            "to": row.to_number,
            "from": row.from_number,
            "body": row.body,
            "sid": row.target_sid,
            "payload": dict(row.payload or {}),
            "dispatch_id": row.dispatch_id,
            "purpose": row.purpose,
        }
    sid, code, error = _send_outbox(runtime, account, job)
    with runtime.db.write("outbox result") as session:
        row = session.get(OutboxMessage, outbox_id, with_for_update=True)
        assert row is not None
        row.lease_until = None
        row.provider_sid = sid
        row.error_code = code
        if error is None:
            row.state = OutboxState.SENT
            row.sent_at = runtime.clock.now()
        elif error == ErrorKind.TRANSIENT_REST and row.attempts <= 3:
            row.state = OutboxState.PENDING
        else:
            row.state = OutboxState.FAILED
        events.record(
            session,
            "outbox_" + ("sent" if error is None else "failed"),
            at=runtime.clock.now(),
            account_id=row.account_id,
            dispatch_id=row.dispatch_id,
            offer_id=row.offer_id,
            purpose=row.purpose,
            kind=row.kind,
            to=row.to_number,
            sid=sid,
            error_code=code,
        )
        state = row.state
    logger.info(
        "dispatch %s: outbox %d %s %s to %s: %s",
        job["dispatch_id"],
        outbox_id,
        job["kind"],
        job["purpose"],
        mask(str(job["to"] or "")),
        state,
    )
    if state == OutboxState.PENDING:
        runtime.queue.enqueue_in(
            timedelta(seconds=_backoff(2)),
            "jobs.tasks.deliver_outbox",
            outbox_id,
            job_timeout=JOB_TIMEOUT_SECONDS,
        )
    return str(state)


def _send_outbox(
    runtime: Runtime, account: Account | None, job: dict[str, Any]
) -> tuple[str | None, int | None, ErrorKind | None]:
    client = runtime.twilio_client(account)
    try:
        if job["kind"] == "sms":
            sender = job["from"] or ""
            params: dict[str, Any] = (
                {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
            )
            message = client.messages.create(to=job["to"], body=job["body"] or "", **params)
            return message.sid, None, None
        if job["kind"] == "call":
            twiml = (
                f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{_xml(job["body"])}'
                '</Say><Pause length="1"/><Say>' + _xml(job["body"]) + "</Say></Response>"
            )
            call = client.calls.create(to=job["to"], from_=job["from"], twiml=twiml)
            return call.sid, None, None
        if job["kind"] == "call_update":
            payload = job["payload"]
            if not job["sid"]:
                return None, None, None
            if payload.get("status"):
                client.calls(job["sid"]).update(status=payload["status"])
            elif payload.get("twiml"):
                client.calls(job["sid"]).update(twiml=payload["twiml"])
            return job["sid"], None, None
        raise ValueError(f"unknown outbox kind {job['kind']!r}")
    except TwilioRestException as exc:
        kind = classify_error(
            exc.code,
            at="rest",
            http_status=exc.status,
            channel="voice" if job["kind"] != "sms" else "sms",
        )
        return None, exc.code, kind
    except requests.exceptions.ReadTimeout:
        return None, None, ErrorKind.UNKNOWN
    except requests.exceptions.RequestException:
        return None, None, ErrorKind.TRANSIENT_REST


def _xml(text: str | None) -> str:
    return escape(text or "")


def settle_uncertain(channel_id: int) -> str:
    """Settle a send whose outcome is unknown by listing Twilio's calls or messages."""
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.db.read() as session:
        row = session.get(OfferChannel, channel_id)
        if row is None or row.state != ChannelState.UNCERTAIN:
            return "nothing to settle"
        account = session.get(Account, row.account_id)
        since = row.created_at - timedelta(seconds=5)
        to, channel = row.to_number, row.channel
        waited = row.lease_until is None or now >= row.lease_until
    client = runtime.twilio_client(account)
    try:
        if channel == Channel.VOICE:
            found = client.calls.list(to=to, start_time_after=since, limit=20)
        else:
            found = client.messages.list(to=to, date_sent_after=since, limit=20)
    except (TwilioRestException, requests.exceptions.RequestException):
        logger.warning(
            "channel %d: listing to settle an uncertain send failed", channel_id, exc_info=True
        )
        return "listing failed"
    sid = found[0].sid if found else None
    with runtime.db.write("settle uncertain") as session:
        fresh = session.get(OfferChannel, channel_id)
        if fresh is not None:
            _lock_dispatch_then(session, fresh)
        if fresh is None or fresh.state != ChannelState.UNCERTAIN:
            return "settled elsewhere"
        engine = DispatchEngine(session, now, runtime.engine_config())
        result = uncertain_settled(engine, fresh, sid, resend_sms=waited)
        effects = engine.effects
        if result == "resend":
            effects.send_channels.append(fresh.id)
    apply_effects(runtime, effects)
    logger.info("channel %d: uncertain send settled: %s", channel_id, result)
    return result


def unsettled_uncertain(runtime: Runtime) -> list[int]:
    with runtime.db.read() as session:
        return list(
            session.execute(
                select(OfferChannel.id).where(OfferChannel.state == ChannelState.UNCERTAIN)
            ).scalars()
        )
