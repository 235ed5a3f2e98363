"""The end of a chain: backups, the desk, late accepts, configuration errors, timeouts."""

from __future__ import annotations

from dispatch.models import ChannelState, DispatchState, OfferKind
from tests.harness import ANS, BASE_PROFILE, CUSTOMER, DESK, D, Harness


def members_with(key: str, number: str) -> list[dict[str, object]]:
    members = [dict(m) for m in BASE_PROFILE["members"]]
    for member in members:
        if member["key"] == key:
            member["phones"] = {"voice": number, "sms": number}
    return members


def test_backups_then_desk(harness: Harness) -> None:
    harness.load_profile(
        pools=[{"key": "techs", "members": ["a", "b"]}],
        route={"rounds": 1, "backups": ["d"]},
    )
    harness.set_pointer("techs", "b", 1)
    harness.customer_texts("Flooded basement")
    harness.advance(120)
    harness.advance(120)
    harness.fake.phone(D).expect_sms("Reply 1")

    harness.advance(120)

    offers = harness.offers()
    assert [o.member_key for o in offers] == ["a", "b", "d", None]
    assert [o.kind for o in offers] == [
        OfferKind.POOL,
        OfferKind.POOL,
        OfferKind.BACKUP,
        OfferKind.ESCALATION,
    ]
    assert harness.dispatch().state == DispatchState.UNACKNOWLEDGED
    harness.fake.phone(DESK).expect_sms("Reply 1")
    harness.fake.phone(CUSTOMER).expect_sms("has not answered yet")
    harness.advance(600)
    assert len(harness.offers()) == 4


def test_late_accept_beats_desk(harness: Harness) -> None:
    harness.load_profile(pools=[{"key": "techs", "members": ["a", "b"]}], route={"rounds": 1})
    harness.set_pointer("techs", "b", 1)
    harness.customer_texts("No heat")
    harness.advance(120)
    harness.advance(120)
    harness.fake.phone(DESK).expect_sms("Reply 1")

    harness.fake.phone("+13125550101").send_sms(ANS, "1")
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert harness.offers()[-1].state.value == "stood_down"
    harness.fake.phone(DESK).expect_sms("no longer needed")


def test_config_error_pauses_channel(harness: Harness) -> None:
    harness.load_profile(members=members_with("a", "+15005550100"))
    harness.set_pointer("techs", "c", 2)

    harness.customer_texts("Leak")

    sms_creates = [
        r
        for r in harness.fake.requests
        if r.method == "POST"
        and r.path.endswith("Messages.json")
        and r.form.get("To", [""])[0] in ("+15005550100", "+13125550102", "+13125550103")
    ]
    assert len(sms_creates) == 1
    assert harness.events("channel_paused")
    first = harness.offers()[0]
    assert first.channels[0].state == ChannelState.PAUSED
    assert harness.dispatch().state == DispatchState.UNACKNOWLEDGED
    harness.fake.phone(DESK).expect_call()


def test_read_timeout_never_calls_twice(
    harness: Harness,
) -> None:
    harness.runtime.settings.__dict__["REST_TIMEOUT_SECONDS"] = 0.5
    harness.runtime._clients.clear()
    harness.fake.slow_response_seconds = 1.0
    harness.load_profile(members=members_with("a", "+15005550106"), route={"channels": ["voice"]})
    harness.set_pointer("techs", "c", 2)

    harness.customer_texts("Leak")
    failures = harness.events("send_failed")
    assert [event.detail["kind"] for event in failures] == ["unknown"]
    harness.advance(1)
    harness.advance(1)

    calls = [
        r for r in harness.fake.requests if r.method == "POST" and r.path.endswith("Calls.json")
    ]
    assert len(calls) == 1
    channel = harness.offers()[0].channels[0]
    assert channel.provider_sid is not None
    assert channel.state != ChannelState.UNCERTAIN
