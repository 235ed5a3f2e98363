"""STOP, START and Twilio's opt-out error 21610 in the middle of a dispatch."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dispatch.models import ChannelState, DispatchState, OptOut
from tests.harness import ANS, BASE_PROFILE, A, B, Harness
from tests.scenarios.case_support import (
    SMS_ROUTE,
    fast_loopback,
    inbound_sms_form,
    send_webhook,
    sid,
    start_sms_offer,
    texts_to,
)

__all__ = ["fast_loopback"]

OPTED_OUT_NUMBER = "+15005550004"  # fake_twilio fails texts to it with 21610


def _opt_outs(harness: Harness) -> list[tuple[str, str, bool]]:
    with harness.session() as session:
        rows = session.execute(select(OptOut).order_by(OptOut.id)).scalars()
        return [(row.number, row.sender, row.active) for row in rows]


@pytest.mark.parametrize("extra", [{}, {"OptOutType": "STOP"}])
def test_stop_rolls_over_at_once(harness: Harness, extra: dict[str, str]) -> None:
    start_sms_offer(harness)
    harness.advance(20)

    form = inbound_sms_form(A, "STOP", sid("SM", 71), **extra)
    assert send_webhook(harness, "/twilio/sms", form).status_code == 200
    harness.run_jobs()

    first, second = harness.offers()
    assert first.close_reason == "opted_out"
    assert first.channels[0].state == ChannelState.OPTED_OUT
    assert second.member_key == "b"
    assert second.created_at == first.created_at.replace(second=20)
    harness.fake.phone(B).expect_sms("Reply 1")
    harness.fake.phone(A).assert_no_new_sms()
    assert _opt_outs(harness) == [(A, ANS, True)]
    assert len(harness.events("opt_out")) == 1


def test_opted_out_member_skipped(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.fake.phone(A).send_sms(ANS, "STOP")
    harness.fake.phone(A).send_sms(ANS, "STOP")
    harness.run_jobs()
    harness.fake.phone(B).expect_sms("Reply 1")
    harness.fake.phone(B).send_sms(ANS, "1")
    harness.run_jobs()

    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Second job", sender="+13125550151")

    assert harness.offered_members() == ["b"]
    skips = [e.detail for e in harness.events("member_skipped") if e.detail["member"] == "a"]
    assert skips[-1]["reason"] == "unreachable: opted out of SMS"
    assert len(harness.events("opt_out")) == 1


def test_opt_out_keeps_voice(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.fake.phone(A).send_sms(ANS, "STOP")
    harness.fake.phone(B).send_sms(ANS, "1")
    harness.run_jobs()
    harness.load_profile(route={**SMS_ROUTE, "channels": ["sms", "voice"]})
    harness.set_pointer("techs", "c", 2)

    harness.customer_texts("Second job", sender="+13125550151")

    offer = harness.offers()[0]
    assert offer.member_key == "a"
    assert [str(c.channel) for c in offer.channels] == ["voice"]
    harness.fake.phone(A).expect_call()


def test_stop_please_is_not_opt_out(harness: Harness) -> None:
    start_sms_offer(harness)

    harness.fake.phone(A).send_sms(ANS, "stop please")
    harness.run_jobs()

    assert _opt_outs(harness) == []
    assert harness.dispatch().state == DispatchState.OFFERING
    assert harness.offers()[0].state == "live"
    harness.fake.phone(A).expect_sms("Reply 1 to accept or 2 to pass")
    assert len(harness.events("unrecognised_reply")) == 1


def test_start_clears_opt_out(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.fake.phone(A).send_sms(ANS, "STOP")
    harness.fake.phone(B).send_sms(ANS, "1")
    harness.fake.phone(A).send_sms(ANS, "START")
    harness.run_jobs()

    assert _opt_outs(harness) == [(A, ANS, False)]
    assert len(harness.events("opt_in")) == 1
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Second job", sender="+13125550151")
    assert harness.offered_members() == ["a"]
    harness.fake.phone(A).expect_sms("Reply 1")


def _profile_with_opted_out_a(harness: Harness) -> None:
    members = [dict(m) for m in BASE_PROFILE["members"]]
    members[0] = {"key": "a", "name": "Alice", "phones": {"sms": OPTED_OUT_NUMBER}}
    harness.load_profile(members=members, route=SMS_ROUTE)
    harness.set_pointer("techs", "c", 2)


def test_21610_at_send_rolls_over(harness: Harness) -> None:
    _profile_with_opted_out_a(harness)

    harness.customer_texts("Leak")

    first, second = harness.offers()
    assert first.channels[0].state == ChannelState.FAILED
    assert first.channels[0].error_code == 21610
    assert first.channels[0].send_attempts == 1
    assert second.member_key == "b"
    assert second.created_at == first.created_at
    harness.fake.phone(B).expect_sms("Reply 1")
    assert len(harness.events("send_failed")) == 1
    assert [n for n, _, active in _opt_outs(harness) if active] == [OPTED_OUT_NUMBER]
    assert harness.events("number_flagged") == []

    harness.advance(300)
    assert len(harness.events("send_failed")) == 1


def test_21610_callback_rolls_over(harness: Harness) -> None:
    offer_text = start_sms_offer(harness)
    harness.advance(3)

    offer_text.fail(21610, status="failed")
    harness.run_jobs()

    first, second = harness.offers()
    assert first.channels[0].state == ChannelState.FAILED
    assert first.channels[0].error_code == 21610
    assert second.member_key == "b"
    harness.fake.phone(B).expect_sms("Reply 1")
    assert _opt_outs(harness)[0][0] == A
    assert len(texts_to(harness, A, "Reply 1")) == 1
