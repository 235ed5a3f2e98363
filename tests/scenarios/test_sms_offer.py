"""An SMS dispatch offered by text, accepted, passed and rolled over."""

from __future__ import annotations

from dispatch.models import DispatchState
from tests.harness import CUSTOMER, A, B, C, Harness


def test_text_creates_offer_to_next(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)

    harness.customer_texts("Burst pipe in the basement")

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.OFFERING
    assert harness.offered_members() == ["a"]
    offer_text = harness.fake.phone(A).expect_sms("Reply 1 to accept")
    assert "Burst pipe" in offer_text.body
    assert dispatch.code in offer_text.body


def test_yes_reply_acknowledges(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("No heat")
    harness.fake.phone(A).expect_sms("Reply 1")

    harness.fake.phone(A).send_sms("+13125550100", "YES")
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    confirmation = harness.fake.phone(A).expect_sms("you accepted")
    assert dispatch.code in confirmation.body
    harness.advance(200)
    harness.fake.phone(B).assert_no_new_sms()


def test_window_expiry_rolls_over(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak")
    harness.fake.phone(A).expect_sms()

    harness.advance(119)
    harness.fake.phone(B).assert_no_new_sms()
    harness.advance(1)
    harness.fake.phone(B).expect_sms("Reply 1")
    assert harness.offered_members() == ["a", "b"]


def test_pass_rolls_over_at_once(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak")
    harness.fake.phone(A).expect_sms()

    harness.fake.phone(A).send_sms("+13125550100", "2")
    harness.run_jobs()

    harness.fake.phone(B).expect_sms("Reply 1")
    assert harness.offered_members() == ["a", "b"]


def test_chain_runs_out_to_desk(harness: Harness) -> None:
    harness.load_profile(pools=[{"key": "techs", "members": ["a", "b"]}])
    harness.set_pointer("techs", "b", 1)
    harness.customer_texts("Flood")
    for _ in range(4):
        harness.advance(120)
    dispatch = harness.dispatch()
    assert harness.offered_members()[:4] == ["a", "b", "a", "b"]
    assert dispatch.state == DispatchState.UNACKNOWLEDGED
    harness.fake.phone(CUSTOMER).expect_sms("has not answered yet")
    harness.fake.phone(C).assert_no_new_sms()


def test_texting_caller_told_of_accept(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("No hot water")
    harness.fake.phone(A).send_sms("+13125550100", "1")
    harness.run_jobs()

    text = harness.fake.phone(CUSTOMER).expect_sms("Alice has your request")
    assert A not in text.body
