"""Admin actions as events in the dispatch log, and verification of the hash chains."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch import events
from dispatch.events import SERVICE_CHAIN, ChainBreak, verify_chain
from dispatch.models import Account, ChainHead, Event

logger = logging.getLogger(__name__)

# Event kinds written by the admin pages, the API and the admin commands.
LOGIN = "admin_login"
LOGIN_FAILED = "admin_login_failed"
LOGOUT = "admin_logout"
PROFILE_EDITED = "profile_edited"
EXPORTED = "dispatches_exported"
PHI_VIEWED = "phi_dispatch_viewed"
USER_CREATED = "user_created"
USER_DEACTIVATED = "user_deactivated"
TOKEN_CREATED = "api_token_created"
TOKEN_REVOKED = "api_token_revoked"


def record_admin(
    session: Session,
    kind: str,
    *,
    at: datetime,
    account_id: int | None,
    actor: str,
    dispatch_id: int | None = None,
    **detail: Any,
) -> Event:
    """Append an admin action to its account's chain, or to the service chain (0)."""
    event = events.record(
        session, kind, at=at, account_id=account_id, dispatch_id=dispatch_id, actor=actor,
        **detail,
    )
    logger.info("admin event %s by %s on chain %d", kind, actor, event.chain)
    return event


@dataclass(frozen=True)
class ChainReport:
    chain: int
    label: str
    events: int
    broken: ChainBreak | None

    def line(self) -> str:
        if self.broken is None:
            return f"{self.label}: OK ({self.events} events)"
        return (
            f"{self.label}: BROKEN at seq {self.broken.seq} (event id {self.broken.event_id}): "
            f"{self.broken.problem}"
        )


def verify_chains(session: Session, account_key: str | None = None) -> list[ChainReport]:
    """Verify one account's chain, or every account's chain and the service chain.

    Raise LookupError when ``account_key`` names no account.
    """
    targets = _targets(session, account_key)
    reports = []
    for chain, label in targets:
        broken = verify_chain(session, chain)
        head = session.get(ChainHead, chain)
        count = head.seq if head is not None else _count(session, chain)
        reports.append(ChainReport(chain, label, count, broken))
        if broken is not None:
            logger.error("%s: hash chain broken at seq %d: %s", label, broken.seq, broken.problem)
    return reports


def _targets(session: Session, account_key: str | None) -> list[tuple[int, str]]:
    if account_key is not None:
        account = session.execute(
            select(Account).where(Account.key == account_key)
        ).scalar_one_or_none()
        if account is None:
            raise LookupError(f"account {account_key!r} not found")
        return [(account.id, f"account {account.key}")]

    accounts = session.execute(select(Account).order_by(Account.id)).scalars()
    targets = [(account.id, f"account {account.key}") for account in accounts]
    return [*targets, (SERVICE_CHAIN, "service-wide events")]


def _count(session: Session, chain: int) -> int:
    return session.execute(select(func.count()).where(Event.chain == chain)).scalar_one()
