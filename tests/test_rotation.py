"""Round-robin arithmetic, and the pointer under concurrent picks on a real database."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import select

from dispatch.db import Database
from dispatch.engine import DispatchEngine
from dispatch.models import Account, Channel, Offer, PoolState
from dispatch.rotation import pick_next
from dispatch.store import import_profile
from tests.conftest import T0
from tests.harness import BASE_PROFILE

ALL_IN = {"a": None, "b": None, "c": None, "d": None}


@pytest.mark.parametrize(
    ("order", "pointer", "position", "reasons", "expected"),
    [
        (["a", "b", "c", "d"], "b", 1, ALL_IN, "c"),  # restart: continue after the pointer
        (["a", "b", "c", "d"], "b", 1, {**ALL_IN, "c": "inactive"}, "d"),
        (["a", "c", "d"], "b", 1, ALL_IN, "c"),  # pointer left the pool: its old position
        (["a", "b", "c"], "d", 3, ALL_IN, "a"),  # last member removed: wrap round
        (["a", "b", "c", "d"], None, None, ALL_IN, "a"),
        (["b", "a", "c"], "a", 0, ALL_IN, "c"),  # reorder keeps the turn: after the pointer
    ],
)
def test_pick_next_cases(order, pointer, position, reasons, expected) -> None:  # type: ignore[no-untyped-def]
    pick = pick_next(order, pointer, position, reasons)
    assert pick is not None
    assert pick.member_key == expected


def test_pick_next_records_skips() -> None:
    pick = pick_next(["a", "b", "c", "d"], "b", 1, {**ALL_IN, "c": "inactive"})
    assert pick is not None
    assert pick.skipped == (("c", "inactive"),)
    assert pick.position == 3


def test_pick_next_nobody_eligible() -> None:
    assert pick_next([], None, None, {}) is None
    assert pick_next(["a"], "a", 0, {"a": "inactive"}) is None


def seven_member_profile() -> str:
    document = dict(BASE_PROFILE)
    keys = [f"m{i}" for i in range(7)]
    document["members"] = [
        {"key": key, "name": key.upper(), "phones": {"sms": f"+1312555020{i}"}}
        for i, key in enumerate(keys)
    ]
    document["pools"] = [{"key": "techs", "members": keys}]
    return yaml.safe_dump(document, sort_keys=False)


@pytest.mark.postgres
def test_concurrent_picks_stay_fair(pg_url: str) -> None:
    """Sixteen workers make 200 picks over a pool of seven through a bounded pool."""
    from sqlalchemy import text

    from dispatch.models import Base

    database = Database(pg_url, pool_size=8, max_overflow=0)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    with database.write() as session:
        import_profile(session, seven_member_profile(), author="t", reason="t", now=T0)
    with database.read() as session:
        account_id = session.execute(select(Account.id)).scalar_one()

    def pick(n: int) -> None:
        with database.write("pick") as session:
            engine = DispatchEngine(session, T0 + timedelta(milliseconds=n))
            account = session.get(Account, account_id)
            assert account is not None
            dispatch = engine.create_dispatch(
                account=account,
                source=Channel.SMS,
                source_sid=f"SM{n:032d}",
                answering_number="+13125550100",
                caller_number=f"+1312555{n:04d}",
                caller_raw=None,
                caller_withheld=False,
                route_key="emergency",
            )
            engine.begin_offering(dispatch)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(pick, range(200)))

    with database.read() as session:
        offers = session.execute(select(Offer).order_by(Offer.id)).scalars().all()
        state = session.execute(select(PoolState)).scalar_one()
    database.dispose()

    members = [offer.member_key for offer in offers]
    assert len(members) == 200
    counts = Counter(members)
    assert set(counts.values()) <= {28, 29}
    assert all(first != second for first, second in zip(members, members[1:], strict=False))
    assert state.offers_made == 200
