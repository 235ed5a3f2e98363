"""The round-robin pointer: concurrent dispatches, restarts, skips and roster changes."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
import requests
from sqlalchemy import select

from dispatch.models import Offer, PoolState
from tests.harness import ANS, BASE_PROFILE, CUSTOMER, CUSTOMER2, Harness
from tests.scenarios.case_support import (
    SMS_ROUTE,
    fast_loopback,
    inbound_sms_form,
    send_webhook,
    sid,
)

__all__ = ["fast_loopback"]

FOUR = [{"key": "techs", "members": ["a", "b", "c", "d"]}]


def _pointer(harness: Harness) -> str | None:
    with harness.session() as session:
        state = session.execute(select(PoolState).where(PoolState.pool_key == "techs")).scalar_one()
        return state.last_member_key


def _all_at_once(senders: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    barrier = threading.Barrier(len(senders))
    results: list[requests.Response | None] = [None] * len(senders)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = senders[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done = [r for r in results if r is not None]
    assert len(done) == len(senders), "a request did not finish"
    return done


def _customer_text(harness: Harness, index: int, sender: str) -> Callable[[], requests.Response]:
    form = inbound_sms_form(sender, "Need a technician", sid("SM", index))
    return lambda: send_webhook(harness, "/twilio/sms", form)


def _first_offers(harness: Harness) -> list[Offer]:
    with harness.session() as session:
        return list(session.execute(
            select(Offer).where(Offer.seq == 1).order_by(Offer.id)).scalars())


def test_two_texts_race_pointer(harness: Harness) -> None:
    harness.load_profile(route=SMS_ROUTE)
    harness.set_pointer("techs", "c", 2)

    responses = _all_at_once([_customer_text(harness, 91, CUSTOMER),
                              _customer_text(harness, 92, CUSTOMER2)])

    assert [r.status_code for r in responses] == [200, 200]
    offers = _first_offers(harness)
    assert sorted(o.member_key or "" for o in offers) == ["a", "b"]
    assert [o.pointer_before for o in offers] == ["c", offers[0].member_key]
    assert _pointer(harness) == "b"


def test_two_calls_race_pointer(harness: Harness) -> None:
    harness.load_profile(route={**SMS_ROUTE, "channels": ["voice"]})
    harness.set_pointer("techs", "c", 2)
    dispatch_ids = []
    for index, caller in ((91, CUSTOMER), (92, CUSTOMER2)):
        form = [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"),
                ("CallSid", sid("CA", index)), ("CallStatus", "ringing"),
                ("Direction", "inbound"), ("From", caller), ("To", ANS)]
        assert send_webhook(harness, "/twilio/voice", form).status_code == 200
        dispatch_ids.append(harness.dispatch().id)

    def reason(index: int, dispatch_id: int) -> Callable[[], requests.Response]:
        form = [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"),
                ("CallSid", sid("CA", index)), ("SpeechResult", "No heat"), ("To", ANS)]
        return lambda: send_webhook(harness, f"/twilio/voice/reason?dispatch={dispatch_id}",
                                    form)

    responses = _all_at_once([reason(91, dispatch_ids[0]), reason(92, dispatch_ids[1])])

    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(o.member_key or "" for o in _first_offers(harness)) == ["a", "b"]
    assert _pointer(harness) == "b"


def test_thirty_texts_split_evenly(harness: Harness) -> None:
    harness.load_profile(route=SMS_ROUTE)
    harness.set_pointer("techs", "c", 2)
    senders = [_customer_text(harness, i, f"+1312555{200 + i:04d}") for i in range(30)]

    responses = _all_at_once(senders)

    assert [r.status_code for r in responses] == [200] * 30
    offers = _first_offers(harness)
    members = [o.member_key for o in offers]
    assert Counter(members) == {"a": 10, "b": 10, "c": 10}
    for start in range(len(members) - 2):
        assert len(set(members[start:start + 3])) == 3, members
    pointers = [o.pointer_before for o in offers]
    assert pointers == ["c", *members[:-1]]


# -- where the pointer lives -------------------------------------------------------------------


def _dispatch_from(harness: Harness, sender: str) -> str | None:
    harness.customer_texts("Leak", sender=sender)
    return harness.offered_members()[0]


def test_pointer_survives_restart(db_url: str, redis_client: redis.Redis,
                                  redis_prefix: str) -> None:
    first = Harness(db_url, redis_client, redis_prefix + ":1")
    try:
        first.load_profile(pools=FOUR, route=SMS_ROUTE)
        first.set_pointer("techs", "b", 1)
    finally:
        first.close()
    second = Harness(db_url, redis_client, redis_prefix + ":2")
    try:
        assert _dispatch_from(second, CUSTOMER) == "c"
    finally:
        second.close()


def test_two_processes_share_pointer(db_url: str, redis_client: redis.Redis,
                                     redis_prefix: str) -> None:
    one = Harness(db_url, redis_client, redis_prefix + ":1")
    two = Harness(db_url, redis_client, redis_prefix + ":2")
    try:
        one.load_profile(pools=FOUR, route=SMS_ROUTE)
        one.set_pointer("techs", "b", 1)
        assert _dispatch_from(one, CUSTOMER) == "c"
        assert _dispatch_from(two, CUSTOMER2) == "d"
    finally:
        one.close()
        two.close()


def _members(**changes: Any) -> list[dict[str, Any]]:
    members = [dict(m) for m in BASE_PROFILE["members"]]
    for member in members:
        member.update(changes.get(member["key"], {}))
    return members


def test_inactive_member_skipped(harness: Harness) -> None:
    harness.load_profile(pools=FOUR, route=SMS_ROUTE, members=_members(c={"active": False}))
    harness.set_pointer("techs", "b", 1)

    assert _dispatch_from(harness, CUSTOMER) == "d"
    assert _pointer(harness) == "d"
    skips = [(e.detail["member"], e.detail["reason"]) for e in harness.events("member_skipped")]
    assert skips == [("c", "inactive")]

    harness.load_profile(pools=FOUR, route=SMS_ROUTE, members=_members())
    assert _dispatch_from(harness, CUSTOMER2) == "a"


def test_removed_pointer_member(harness: Harness) -> None:
    harness.load_profile(pools=FOUR, route=SMS_ROUTE)
    harness.set_pointer("techs", "b", 1)

    harness.load_profile(pools=[{"key": "techs", "members": ["a", "c", "d"]}], route=SMS_ROUTE)

    assert _dispatch_from(harness, CUSTOMER) == "c"


def test_removed_last_member_wraps(harness: Harness) -> None:
    harness.load_profile(pools=FOUR, route=SMS_ROUTE)
    harness.set_pointer("techs", "d", 3)

    harness.load_profile(pools=[{"key": "techs", "members": ["a", "b", "c"]}], route=SMS_ROUTE)

    assert _dispatch_from(harness, CUSTOMER) == "a"
