"""The dispatch log: append-only events, chained by SHA-256 per account.

Each event's hash covers the previous hash and the event's own fields, so editing or deleting a
row breaks every later link. Events are chained when their transaction commits, under a lock on
the chain head row, so chain order is commit order.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dispatch.models import ChainHead, Event

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
SERVICE_CHAIN = 0


def event_hash(prev_hash: str, event: Event) -> str:
    """Hash the fields that make up an event's evidence, in a stable JSON form."""
    body = {
        "prev": prev_hash,
        "chain": event.chain,
        "seq": event.seq,
        "account_id": event.account_id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "dispatch_id": event.dispatch_id,
        "offer_id": event.offer_id,
        "actor": event.actor,
        "detail": event.detail,
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def record(
    session: Session,
    kind: str,
    /,
    *,
    at: datetime,
    account_id: int | None,
    dispatch_id: int | None = None,
    offer_id: int | None = None,
    actor: str | None = None,
    **detail: Any,
) -> Event:
    """Add one event to the caller's transaction; it is chained when the transaction commits.

    Chaining at commit keeps the lock on the account's chain head for the last moments of the
    transaction only, so webhooks of one account do not queue behind each other.
    """
    event = Event(
        chain=account_id if account_id is not None else SERVICE_CHAIN,
        account_id=account_id,
        at=at,
        kind=kind,
        dispatch_id=dispatch_id,
        offer_id=offer_id,
        actor=actor,
        detail=_jsonable(detail),
    )
    session.info.setdefault(PENDING_KEY, []).append(event)
    return event


PENDING_KEY = "rrd_pending_events"


@sa_event.listens_for(Session, "before_commit")
def _chain_pending_events(session: Session) -> None:
    """Give each pending event its sequence number and hash, chain by chain, then insert."""
    pending: list[Event] = session.info.pop(PENDING_KEY, [])
    if not pending:
        return
    by_chain: dict[int, list[Event]] = {}
    for event in pending:
        by_chain.setdefault(event.chain, []).append(event)
    # Chains are locked in ascending order so two committing transactions cannot deadlock.
    for chain in sorted(by_chain):
        head = _locked_head(session, chain)
        for event in by_chain[chain]:
            event.seq = head.seq + 1
            event.prev_hash = head.hash
            event.hash = event_hash(head.hash, event)
            head.seq = event.seq
            head.hash = event.hash
            session.add(event)
    session.flush()


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending_events(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(PENDING_KEY, None)


def _locked_head(session: Session, chain: int) -> ChainHead:
    statement = select(ChainHead).where(ChainHead.chain == chain).with_for_update()
    head = session.execute(statement).scalar_one_or_none()
    if head is not None:
        return head
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(ChainHead).values(chain=chain, seq=0, hash=GENESIS_HASH).on_conflict_do_nothing()
    )
    return session.execute(statement).scalar_one()


@dataclass(frozen=True)
class ChainBreak:
    chain: int
    seq: int
    event_id: int
    problem: str


def verify_chain(session: Session, chain: int) -> ChainBreak | None:
    """Return the first broken link of one chain, or None when every hash matches."""
    prev = GENESIS_HASH
    expected_seq = 1
    rows = session.execute(select(Event).where(Event.chain == chain).order_by(Event.seq)).scalars()
    for event in rows:
        if event.seq != expected_seq:
            return ChainBreak(chain, expected_seq, event.id, f"event seq {expected_seq} missing")
        if event.prev_hash != prev:
            return ChainBreak(chain, event.seq, event.id, "prev_hash does not match")
        if event_hash(prev, event) != event.hash:
            return ChainBreak(chain, event.seq, event.id, "hash does not match the row")
        prev = event.hash
        expected_seq += 1
    head = session.get(ChainHead, chain)
    if head is not None and head.seq != expected_seq - 1:
        return ChainBreak(
            chain, head.seq, 0, f"chain head says {head.seq} events, found {expected_seq - 1}"
        )
    return None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
