"""SMS replies from staff: wording, sender formats, and replies that match no open offer."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from dispatch.models import Dispatch, DispatchState, Member, Offer, OfferState
from dispatch.profile import ProfileError
from tests.harness import ANS, ANS2, SERVICE_SID, STRANGER, A, B, C, Harness, profile_yaml
from tests.scenarios.case_support import (
    SMS_ROUTE,
    fast_loopback,
    inbound_sms_form,
    send_webhook,
    sid,
    texts_to,
)

__all__ = ["fast_loopback"]

ACCEPTS = [" yes ", "Yes.", "y\n", "Yes\nSent from my iPhone", "ＹＥＳ", "OK👍",
           "👍🏽", "👍\ufe0f", "Yes, on my way"]
PASSES = ["no.", "2", "No, I\u2019m ill "]
NEITHER = ["yesterday was my day off", "sorry busy", "y not call B", "who is this?", ""]


def _fresh_offer_to_a(harness: Harness, customer_index: int) -> Dispatch:
    """Settle every open dispatch, then start a new one offered to A by a new customer."""
    with harness.runtime.db.write("test reset") as session:
        session.execute(update(Offer).where(Offer.state == OfferState.LIVE)
                        .values(state=OfferState.STOOD_DOWN))
        session.execute(update(Dispatch).where(Dispatch.state == DispatchState.OFFERING)
                        .values(state=DispatchState.CANCELLED))
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak", sender=f"+1312555{160 + customer_index:04d}")
    dispatch = harness.dispatch()
    assert [o.member_key for o in dispatch.offers] == ["a"]
    return dispatch


def _reply(harness: Harness, body: str, index: int, **extra: str) -> None:
    form = inbound_sms_form(A, body, sid("SM", index), **extra)
    assert send_webhook(harness, "/twilio/sms", form).status_code == 200
    harness.run_jobs()


def _reply_event(harness: Harness, message_sid: str) -> dict[str, object]:
    matches = [e.detail for e in harness.events("reply_received") if e.detail["sid"] == message_sid]
    assert len(matches) == 1, f"expected one reply_received event for {message_sid}"
    return matches[0]


def test_reply_table_through_http(harness: Harness) -> None:
    harness.load_profile(route=SMS_ROUTE)
    index = 0
    for body in ACCEPTS:
        index += 1
        dispatch = _fresh_offer_to_a(harness, index)
        _reply(harness, body, index)
        assert harness.dispatch(dispatch.id).state == DispatchState.ACKNOWLEDGED, body
        assert _reply_event(harness, sid("SM", index))["classification"] == "accept", body

    for body in PASSES:
        index += 1
        dispatch = _fresh_offer_to_a(harness, index)
        texts_before = len(texts_to(harness, B, "Reply 1"))
        _reply(harness, body, index)
        assert harness.offered_members(dispatch.id) == ["a", "b"], body
        assert len(texts_to(harness, B, "Reply 1")) == texts_before + 1, body
        assert _reply_event(harness, sid("SM", index))["classification"] == "pass", body

    for body in NEITHER:
        index += 1
        dispatch = _fresh_offer_to_a(harness, index)
        deadline = dispatch.offers[0].deadline
        helps_before = len(texts_to(harness, A, "Reply 1 to accept or 2 to pass"))
        extra = {"NumMedia": "1"} if body == "" else {}
        _reply(harness, body, index, **extra)
        after = harness.dispatch(dispatch.id)
        assert after.state == DispatchState.OFFERING, body
        assert after.offers[0].state == OfferState.LIVE, body
        assert after.offers[0].deadline == deadline, body
        helps = len(texts_to(harness, A, "Reply 1 to accept or 2 to pass"))
        assert helps == helps_before + 1, body
        event = _reply_event(harness, sid("SM", index))
        assert event["classification"] == "other", body
        assert event["body"] == body, body


def test_reply_event_keeps_raw_text(harness: Harness) -> None:
    harness.load_profile(route=SMS_ROUTE)
    _fresh_offer_to_a(harness, 1)

    _reply(harness, "Yes\nSent from my iPhone", 1)

    event = _reply_event(harness, sid("SM", 1))
    assert event["body"] == "Yes\nSent from my iPhone"
    assert event["normalized"] == "yes\nsent from my iphone"
    assert event["classification"] == "accept"


def test_help_reply_once_per_offer(harness: Harness) -> None:
    harness.load_profile(route=SMS_ROUTE)
    dispatch = _fresh_offer_to_a(harness, 1)

    _reply(harness, "who is this?", 1)
    _reply(harness, "sorry busy", 2)

    assert len(texts_to(harness, A, "Reply 1 to accept or 2 to pass")) == 1
    assert harness.dispatch(dispatch.id).state == DispatchState.OFFERING
    harness.advance(120)
    assert harness.offered_members(dispatch.id) == ["a", "b"]


# -- who sent the reply -----------------------------------------------------------------------


def test_roster_numbers_stored_e164(harness: Harness) -> None:
    members = [
        {"key": "a", "name": "Alice", "phones": {"sms": "(312) 555-0101"}},
        {"key": "b", "name": "Bob", "phones": {"sms": "312.555.0102"}},
        {"key": "c", "name": "Carol", "phones": {"sms": "13125550103"}},
        {"key": "d", "name": "Dave", "phones": {"sms": "+1 312 555 0104"}},
    ]
    harness.load_profile(members=members)

    with harness.session() as session:
        stored = dict(session.execute(select(Member.key, Member.sms_number)).all())
    assert stored == {"a": A, "b": B, "c": C, "d": "+13125550104"}


@pytest.mark.parametrize(("number", "problem"), [
    ("555-0105", "area code"),
    ("3125550101", "a"),
])
def test_roster_rejects_bad_numbers(harness: Harness, number: str, problem: str) -> None:
    members = [
        {"key": "a", "name": "Alice", "phones": {"sms": A}},
        {"key": "b", "name": "Bob", "phones": {"sms": B}},
        {"key": "c", "name": "Carol", "phones": {"sms": C}},
        {"key": "e", "name": "Erin", "phones": {"sms": number}},
    ]
    with pytest.raises(ProfileError) as raised:
        harness.load_profile(profile_yaml(members=members))
    assert problem in str(raised.value)


@pytest.mark.parametrize("sender", [C, " 13125550103"])
def test_reply_on_other_service_number(harness: Harness, sender: str) -> None:
    harness.load_profile(route=SMS_ROUTE)
    harness.set_pointer("techs", "b", 1)
    harness.customer_texts("Leak")
    harness.fake.phone(C).expect_sms("Reply 1")

    form = inbound_sms_form(sender, "yes", sid("SM", 20), to=ANS2,
                            MessagingServiceSid=SERVICE_SID)
    assert send_webhook(harness, "/twilio/sms", form).status_code == 200
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert dispatch.offers[0].member_key == "c"
    assert len(harness.dispatches()) == 1
    assert not harness.events("unparseable_sender")


# -- replies that belong to no open offer ------------------------------------------------------


def test_late_replies_full_timeline(harness: Harness) -> None:
    harness.load_profile(route=SMS_ROUTE)
    harness.set_pointer("techs", "c", 2)
    phone_a = harness.fake.phone(A)

    harness.customer_texts("Dispatch 41 leak")
    first = harness.dispatch()
    harness.advance(120)
    assert harness.offered_members(first.id) == ["a", "b"]

    harness.advance(30)
    phone_a.send_sms(ANS, "YES")
    harness.run_jobs()
    assert harness.dispatch(first.id).state == DispatchState.ACKNOWLEDGED
    assert harness.dispatch(first.id).acknowledged_offer_id == first.offers[0].id
    assert len(texts_to(harness, B, "no longer needed")) == 1
    assert len(harness.events("stand_down_text_queued")) == 1

    harness.advance(150)
    harness.customer_texts("Dispatch 42 no heat", sender="+13125550151")
    second = harness.dispatch()
    harness.advance(1)
    harness.customer_texts("Dispatch 43 flood", sender="+13125550152")
    third = harness.dispatch()
    assert harness.offered_members(second.id) == ["c"]
    assert harness.offered_members(third.id) == ["a"]

    harness.advance(1)
    phone_a.send_sms(ANS, "YES")
    harness.run_jobs()
    assert harness.dispatch(third.id).state == DispatchState.ACKNOWLEDGED
    confirmation = texts_to(harness, A, f"you accepted dispatch {third.code}")
    assert len(confirmation) == 1
    assert "5550152" in confirmation[0]

    harness.advance(8)
    phone_a.send_sms(ANS, f"YES {first.code}")
    harness.run_jobs()
    assert len(texts_to(harness, A, f"Dispatch {first.code} is already handled by you")) == 1
    late = [e for e in harness.events("late_reply") if e.dispatch_id == first.id]
    assert len(late) == 1
    assert late[0].detail["closed_dispatch"] == first.id

    harness.advance(10)
    harness.fake.phone(B).send_sms(ANS, "YES")
    harness.run_jobs()
    assert harness.dispatch(second.id).state == DispatchState.OFFERING
    assert len(texts_to(harness, B, "You have no open dispatch")) == 1
    assert [e.detail["member"] for e in harness.events("unsolicited_reply")] == ["b"]

    harness.advance(40)
    harness.fake.phone(STRANGER).send_sms(ANS, "yes")
    harness.run_jobs()
    newest = harness.dispatch()
    assert newest.caller_number == STRANGER
    assert newest.id not in (first.id, second.id, third.id)
    assert harness.offered_members(newest.id) == ["b"]

    harness.advance(30)
    acks_before = len(harness.events("acknowledged"))
    phone_a.send_sms(ANS, "YES")
    harness.run_jobs()
    assert len(harness.events("acknowledged")) == acks_before
    assert len(texts_to(harness, A, f"Dispatch {third.code} is already handled by you")) == 1
