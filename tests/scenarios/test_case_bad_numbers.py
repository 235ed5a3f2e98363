"""Numbers that cannot be reached, and a chain that runs out with no desk line configured."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dispatch.models import ChannelState, DispatchState
from tests.harness import CUSTOMER, D, Harness
from tests.scenarios.case_support import fast_loopback, texts_to

__all__ = ["fast_loopback"]

INVALID_FOR_CALLS = "+15005550001"  # fake_twilio: 21211 on create
LANDLINE = "+15005550009"  # fake_twilio: 21614 on message create
LANDLINE_BY_CALLBACK = "+15005550109"  # fake_twilio: undelivered 30006 one second after create
RINGS = "+13125550103"

BAD_ROSTER: list[dict[str, Any]] = [
    {"key": "a", "name": "Alice", "phones": {"voice": INVALID_FOR_CALLS}},
    {"key": "b", "name": "Bob", "phones": {"sms": LANDLINE}},
    {"key": "c", "name": "Carol", "phones": {"voice": RINGS}},
    {"key": "d", "name": "Dave", "phones": {"voice": D}},
]
FOUR = [{"key": "techs", "members": ["a", "b", "c", "d"]}]
BOTH = {"channels": ["voice", "sms"], "ack_window_voice_seconds": 120,
        "ack_window_sms_seconds": 120}


def _flags(harness: Harness) -> list[tuple[str, str]]:
    return [(e.detail["number"], e.detail["channel"]) for e in harness.events("number_flagged")]


def _start(harness: Harness, roster: list[dict[str, Any]]) -> None:
    harness.load_profile(members=roster, pools=FOUR, route=BOTH)
    harness.set_pointer("techs", "d", 3)
    harness.customer_texts("No water")


@pytest.mark.parametrize(("ending", "state"), [("failed", ChannelState.FAILED),
                                                ("busy", ChannelState.BUSY)])
def test_bad_numbers_roll_over(harness: Harness, ending: str, state: ChannelState) -> None:
    _start(harness, BAD_ROSTER)
    call_c = harness.fake.phone(RINGS).expect_call()
    harness.advance(4)
    call_c.fail() if ending == "failed" else call_c.busy()
    harness.run_jobs()
    call_d = harness.fake.phone(D).expect_call("Press 1")
    harness.advance(20)
    call_d.press("1")
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    offers = harness.offers()
    assert [o.member_key for o in offers] == ["a", "b", "c", "d"]
    a, b, c, d = (o.channels[0] for o in offers)
    assert (a.state, a.error_code) == (ChannelState.FAILED, 21211)
    assert (b.state, b.error_code) == (ChannelState.FAILED, 21614)
    assert c.state == state
    assert a.send_attempts == 1
    assert b.send_attempts == 1
    assert offers[1].created_at == offers[0].created_at
    assert dispatch.acknowledged_at is not None
    assert (dispatch.acknowledged_at - offers[3].created_at).total_seconds() == 20
    assert _flags(harness) == [(INVALID_FOR_CALLS, "voice"), (LANDLINE, "sms")]


def test_flags_raised_once(harness: Harness) -> None:
    _start(harness, BAD_ROSTER)
    harness.fake.phone(RINGS).expect_call().busy()
    harness.run_jobs()
    harness.fake.phone(D).expect_call().busy()
    harness.run_jobs()

    harness.customer_texts("Second job", sender="+13125550151")

    assert len(_flags(harness)) == 2
    assert "a" not in harness.offered_members()
    assert "b" not in harness.offered_members()


def test_landline_callback_flags_sms(harness: Harness) -> None:
    roster = [dict(m) for m in BAD_ROSTER]
    roster[1] = {"key": "b", "name": "Bob",
                 "phones": {"sms": LANDLINE_BY_CALLBACK, "voice": "+13125550102"}}
    _start(harness, roster)
    harness.advance(3)

    offers = harness.offers()
    b = offers[1].channels
    sms_b = next(c for c in b if str(c.channel) == "sms")
    assert (sms_b.state, sms_b.error_code) == (ChannelState.FAILED, 30006)
    assert (LANDLINE_BY_CALLBACK, "sms") in _flags(harness)
    assert offers[1].state == "live"


# -- nobody answers and there is no desk line ---------------------------------------------------


@pytest.fixture
def deskless(db_url: str, redis_client: redis.Redis, redis_prefix: str) -> Iterator[Harness]:
    harness = Harness(db_url, redis_client, redis_prefix, desk=None)
    yield harness
    harness.close()


def test_chain_ends_without_desk(deskless: Harness) -> None:
    harness = deskless
    harness.load_profile(pools=[{"key": "techs", "members": ["a", "b"]}])
    harness.set_pointer("techs", "b", 1)
    harness.customer_texts("Flood")

    for _ in range(4):
        harness.advance(120)

    dispatch = harness.dispatch()
    assert harness.offered_members() == ["a", "b", "a", "b"]
    assert dispatch.state == DispatchState.UNACKNOWLEDGED
    assert len(harness.events("offer_made")) == 4
    assert len(harness.events("no_escalation_line")) == 1
    assert len(texts_to(harness, CUSTOMER, "has not answered yet")) == 1
    harness.advance(600)
    assert len(harness.events("offer_made")) == 4
