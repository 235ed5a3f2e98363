"""The common path of every Twilio webhook: verify, store the receipt, claim, act, commit.

Each delivery is stored as a receipt (duplicates included). Its effect is claimed once by
inserting a claim key; a copy that loses the claim returns the first copy's stored reply, so a
reply Twilio discarded after a timeout is not lost and nothing happens twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Request, Response, current_app, request
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dispatch import events
from dispatch.engine import DispatchEngine
from dispatch.models import Account, Claim, Receipt
from jobs.enqueue import apply_effects
from jobs.runtime import Runtime
from webhooks.signature import verify_twilio_request

logger = logging.getLogger(__name__)

REJECTION_EVENTS_PER_MINUTE = 20
TWIML = "application/xml"


@dataclass
class Delivery:
    """One webhook delivery inside its write transaction."""

    runtime: Runtime
    session: Session
    engine: DispatchEngine
    receipt: Receipt
    form: dict[str, str]

    def field(self, name: str) -> str:
        return self.form.get(name, "")


def runtime() -> Runtime:
    value: Runtime = current_app.extensions["rrd"]
    return value


def tokens_for(rt: Runtime, account_sid: str) -> list[str]:
    """Return the auth tokens that may have signed a request from ``account_sid``.

    Subaccounts sign with their own token, kept in the environment variable their profile
    names; the service-wide token and its rotation secondary cover everything else.
    """
    settings = rt.settings
    if account_sid and account_sid != settings.TWILIO_ACCOUNT_SID:
        with rt.db.read() as session:
            env_names = (
                session.execute(
                    select(Account.auth_token_env).where(Account.twilio_account_sid == account_sid)
                )
                .scalars()
                .all()
            )
        subaccount_tokens = [os.environ.get(name or "", "") for name in env_names if name]
        subaccount_tokens = [t for t in subaccount_tokens if t]
        if subaccount_tokens:
            return subaccount_tokens
    return [t for t in (settings.TWILIO_AUTH_TOKEN, settings.TWILIO_AUTH_TOKEN_SECONDARY) if t]


def form_dict(req: Request) -> dict[str, Any]:
    """Return the full form, keeping every value of a repeated key."""
    result: dict[str, Any] = {}
    for key in req.form:
        values = req.form.getlist(key)
        result[key] = values[0] if len(values) == 1 else values
    return result


def handle(
    route_name: str,
    *,
    required: tuple[str, ...],
    sid_field: str | None,
    claim_key: Callable[[dict[str, str]], str | None],
    act: Callable[[Delivery], str],
    fallback: Callable[[], str],
    mimetype: str = TWIML,
) -> Response:
    """Run one webhook end to end and return its response; never raises to Twilio."""
    rt = runtime()
    form_all = form_dict(request)
    form = {k: (v if isinstance(v, str) else v[0]) for k, v in form_all.items()}
    check = verify_twilio_request(
        request,
        tokens_for(rt, form.get("AccountSid", "")),
        rt.settings.PUBLIC_BASE_URL or None,
        rt.settings.TRUSTED_PROXY_HOPS,
    )
    if not check.ok:
        _reject(
            rt,
            route_name,
            form_all,
            form.get(sid_field or ""),
            check.url,
            check.reason or "signature_mismatch",
        )
        return Response("Forbidden: invalid Twilio signature\n", status=403, mimetype="text/plain")

    missing = [name for name in required if not form.get(name)]
    if missing:
        _store_receipt(
            rt,
            route_name,
            form_all,
            form.get(sid_field or ""),
            check.url,
            outcome="bad_request",
            detail={"missing": missing},
        )
        logger.warning("%s: missing form fields %s", route_name, ", ".join(missing))
        return Response(
            f"Bad request: missing form fields {', '.join(missing)}\n",
            status=400,
            mimetype="text/plain",
        )

    try:
        body, effects = _act_in_transaction(
            rt, route_name, form_all, form, sid_field, check.url, claim_key, act
        )
    except Exception:
        logger.exception(
            "%s: webhook failed for %s; fallback reply sent",
            route_name,
            form.get(sid_field or "", "?"),
        )
        _store_receipt(
            rt,
            route_name,
            form_all,
            form.get(sid_field or ""),
            check.url,
            outcome="error",
            detail={},
        )
        return Response(fallback(), status=200, mimetype=mimetype)
    if effects is not None:
        apply_effects(rt, effects)
    return Response(body, status=200, mimetype=mimetype)


def _act_in_transaction(
    rt: Runtime,
    route_name: str,
    form_all: dict[str, Any],
    form: dict[str, str],
    sid_field: str | None,
    url: str,
    claim_key: Callable[[dict[str, str]], str | None],
    act: Callable[[Delivery], str],
) -> tuple[str, Any]:
    now = rt.clock.now()
    with rt.db.write(route_name) as session:
        # The receipt is added last, with its final outcome, so it costs one INSERT.
        receipt = Receipt(
            received_at=now,
            route=route_name,
            provider_sid=form.get(sid_field or "") or None,
            form=form_all,
            signature_ok=True,
            signature_url=url,
            outcome="received",
        )
        key = claim_key(form)
        if key is not None:
            receipt.claim_key = key
            existing = _claim(session, key)
            if existing is not None:
                receipt.outcome = "duplicate"
                session.add(receipt)
                logger.info(
                    "%s: duplicate delivery %s (claim %s); stored reply returned",
                    route_name,
                    form.get(sid_field or "", "?"),
                    key,
                )
                return existing.response or "", None
        engine = DispatchEngine(session, now, rt.engine_config())
        delivery = Delivery(rt, session, engine, receipt, form)
        body = act(delivery)
        if receipt.outcome == "received":
            receipt.outcome = "processed"
        session.add(receipt)
        if key is not None:
            session.execute(update(Claim).where(Claim.key == key).values(response=body))
        return body, engine.effects


def _claim(session: Session, key: str) -> Claim | None:
    """Insert the claim key; return the existing claim when another delivery took it first."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Claim)
        .values(key=key, created_at=datetime.now(UTC))
        .on_conflict_do_nothing()
        .returning(Claim.key)
    )
    if session.execute(statement).scalar_one_or_none() is not None:
        return None
    return session.get(Claim, key)


def _store_receipt(
    rt: Runtime,
    route_name: str,
    form: dict[str, Any],
    sid: str | None,
    url: str | None,
    *,
    outcome: str,
    detail: dict[str, Any],
    signature_ok: bool = True,
) -> None:
    try:
        with rt.db.write("receipt " + outcome) as session:
            session.add(
                Receipt(
                    received_at=rt.clock.now(),
                    route=route_name,
                    provider_sid=sid,
                    form=form,
                    signature_ok=signature_ok,
                    signature_url=url,
                    outcome=outcome,
                )
            )
            if outcome != "rejected":
                events.record(
                    session,
                    f"receipt_{outcome}",
                    at=rt.clock.now(),
                    account_id=None,
                    route=route_name,
                    sid=sid,
                    **detail,
                )
    except SQLAlchemyError:
        logger.exception("%s: could not store the %s receipt for %s", route_name, outcome, sid)


def _reject(
    rt: Runtime, route_name: str, form: dict[str, Any], sid: str | None, url: str, reason: str
) -> None:
    """Record a request that failed the signature check; events are capped per minute."""
    logger.warning("%s: rejected request %s: %s (url %s)", route_name, sid or "?", reason, url)
    try:
        key = f"rrd:{rt.settings.QUEUE_NAME}:rejections:{rt.clock.now():%Y%m%d%H%M}"
        count = int(rt.redis.incr(key))
        rt.redis.expire(key, 120)
    except redis.RedisError:
        count = 0
    try:
        with rt.db.write("receipt rejected") as session:
            session.add(
                Receipt(
                    received_at=rt.clock.now(),
                    route=route_name,
                    provider_sid=sid,
                    form=form,
                    signature_ok=False,
                    signature_url=url,
                    outcome="rejected",
                )
            )
            if count <= REJECTION_EVENTS_PER_MINUTE:
                events.record(
                    session,
                    "receipt_rejected",
                    at=rt.clock.now(),
                    account_id=None,
                    route=route_name,
                    sid=sid,
                    reason=reason,
                    url=url,
                )
    except SQLAlchemyError:
        logger.exception("%s: could not store the rejected receipt", route_name)
