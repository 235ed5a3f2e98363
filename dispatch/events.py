"""The dispatch log: append-only events, chained by SHA-256 per account.

Each event's hash covers the previous hash and the event's own fields, so editing or deleting a
row breaks every later link. The chain head row is locked while appending, which serialises
writers of one account's log.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
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
    """Append one event to its account's chain inside the caller's transaction."""
    chain = account_id if account_id is not None else SERVICE_CHAIN
    head = session.execute(
        select(ChainHead).where(ChainHead.chain == chain).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = ChainHead(chain=chain, seq=0, hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    event = Event(
        chain=chain,
        seq=head.seq + 1,
        account_id=account_id,
        at=at,
        kind=kind,
        dispatch_id=dispatch_id,
        offer_id=offer_id,
        actor=actor,
        detail=_jsonable(detail),
        prev_hash=head.hash,
        hash="",
    )
    event.hash = event_hash(head.hash, event)
    head.seq = event.seq
    head.hash = event.hash
    session.add(event)
    session.flush()
    return event


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
