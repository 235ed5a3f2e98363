"""API bearer tokens: random secrets stored only as SHA-256 hashes, expiring and revocable."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin import audit
from admin.scope import Principal
from dispatch.models import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "rrd_"
DEFAULT_DAYS = 90
MAX_DAYS = 366


@dataclass(frozen=True)
class IssuedToken:
    """A new token; ``secret`` is shown once and never stored."""

    token: ApiToken
    secret: str


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    *,
    account_id: int | None,
    name: str,
    days: int,
    now: datetime,
    actor: str,
) -> IssuedToken:
    """Store a new token for an account (None: service-wide) and record who made it."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("token name must be 1 to 200 characters")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"token lifetime {days} days is invalid: use 1 to {MAX_DAYS} days")

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        token_sha256=token_digest(secret),
        prefix=secret[:12],
        account_id=account_id,
        name=name,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(token)
    session.flush()
    audit.record_admin(
        session, audit.TOKEN_CREATED, at=now, account_id=account_id, actor=actor,
        token_id=token.id, name=name, prefix=token.prefix, expires_at=token.expires_at.isoformat(),
    )
    return IssuedToken(token, secret)


def revoke_token(session: Session, token_id: int, *, now: datetime, actor: str) -> ApiToken:
    """Revoke a token; raise LookupError when there is no such token."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise LookupError(f"API token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record_admin(
            session, audit.TOKEN_REVOKED, at=now, account_id=token.account_id, actor=actor,
            token_id=token.id, name=token.name, prefix=token.prefix,
        )
    return token


def principal_for_token(session: Session, secret: str, now: datetime) -> Principal | None:
    """Return the principal of a valid bearer token, or None for an unknown, expired or revoked one.

    API tokens read only, so they carry the viewer role.
    """
    token = session.execute(
        select(ApiToken).where(ApiToken.token_sha256 == token_digest(secret))
    ).scalar_one_or_none()
    if token is None:
        return None
    if token.revoked_at is not None or token.expires_at <= now:
        logger.info("API token %d (%s) rejected: revoked or expired", token.id, token.prefix)
        return None
    return Principal(
        actor=f"token:{token.id}:{token.name}", role="viewer", account_id=token.account_id,
        token_id=token.id,
    )


def tokens_for(session: Session, account_id: int | None, *, service: bool) -> list[ApiToken]:
    """List tokens of one account, or every token for a service admin."""
    statement = select(ApiToken).order_by(ApiToken.id.desc())
    if not service:
        statement = statement.where(ApiToken.account_id == account_id)
    return list(session.execute(statement).scalars())
