"""What callers hear and what their calls and texts turn into."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dispatch.models import DispatchState
from tests.harness import ANS, CUSTOMER, DESK, A, D, Harness

MENU_SCRIPT = {
    "greeting": "Thank you for calling Acme Plumbing.",
    "recording_notice": "This call may be recorded.",
    "emergency_notice": "If this is a life-threatening emergency, hang up and dial 911.",
    "menu": [
        {"digit": "1", "label": "a plumbing emergency"},
        {"digit": "2", "label": "anything else"},
    ],
    "reason_prompt": "Please tell us what is wrong.",
}
MENU_ROUTES: list[dict[str, Any]] = [
    {"key": "emergency", "menu": "1", "action": "page", "pool": "techs", "channels": ["sms"]},
    {"key": "other", "menu": "2", "action": "message"},
]


def test_caller_script_then_offer(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)

    call = harness.fake.phone(CUSTOMER).dial(ANS)
    assert "Thank you for calling Acme Plumbing" in call.said_text
    assert "Please tell us what is wrong" in call.said_text
    call.say_speech("water is pouring through the ceiling")
    harness.run_jobs()

    assert "Someone will call you back within about 15 minutes" in call.said_text
    assert call.ended
    text = harness.fake.phone(A).expect_sms("water is pouring")
    assert CUSTOMER in text.body
    assert harness.dispatch().reason == "water is pouring through the ceiling"


def test_menu_choice_picks_route(harness: Harness) -> None:
    harness.load_profile(caller_script=MENU_SCRIPT, routes=MENU_ROUTES)
    harness.set_pointer("techs", "c", 2)

    call = harness.fake.phone(CUSTOMER).dial(ANS)
    assert "This call may be recorded" in call.said_text
    assert "dial 911" in call.said_text
    assert "For a plumbing emergency, press 1" in call.said_text
    call.press("1")
    call.say_speech("no heat")
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.route_key == "emergency"
    assert dispatch.menu_choice == "1"
    harness.fake.phone(A).expect_sms("no heat")


def test_message_route_pages_nobody(harness: Harness) -> None:
    harness.load_profile(caller_script=MENU_SCRIPT, routes=MENU_ROUTES)
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    call.press("2")
    call.say_speech("please call about a quote")
    harness.run_jobs()

    assert "taken your message" in call.said_text
    assert harness.dispatch().state == DispatchState.MESSAGE_TAKEN
    harness.fake.phone(A).assert_no_new_sms()


def test_hangup_before_choice_abandons(harness: Harness) -> None:
    harness.load_profile(caller_script=MENU_SCRIPT, routes=MENU_ROUTES)
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    call.hangup()
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ABANDONED
    harness.advance(60)
    harness.fake.phone(A).assert_no_new_sms()


def test_hangup_after_choice_pages(harness: Harness) -> None:
    harness.load_profile(caller_script=MENU_SCRIPT, routes=MENU_ROUTES)
    harness.set_pointer("techs", "c", 2)
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    call.press("1")
    call.hangup()
    harness.run_jobs()

    assert harness.dispatch().state == DispatchState.OFFERING
    harness.fake.phone(A).expect_sms("Reply 1")


def test_intake_cap_starts_offer(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.fake.phone(CUSTOMER).dial(ANS)
    harness.advance(44)
    harness.fake.phone(A).assert_no_new_sms()
    harness.advance(1)
    harness.fake.phone(A).expect_sms("Reply 1")


def test_withheld_caller_keys_callback(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    call = harness.fake.phone("Anonymous").dial(ANS)
    assert "caller ID is hidden" in call.said_text
    call.press("3125550160#")
    call.say_speech("gas smell")
    harness.run_jobs()

    text = harness.fake.phone(A).expect_sms("gas smell")
    assert "+13125550160 (caller-supplied)" in text.body
    dispatch = harness.dispatch()
    assert dispatch.caller_withheld
    assert dispatch.caller_number is None
    assert dispatch.caller_raw == "Anonymous"


def test_withheld_caller_without_number(harness: Harness) -> None:
    harness.load_profile(route={"channels": ["voice", "sms"]})
    harness.set_pointer("techs", "c", 2)
    call = harness.fake.phone("+266696687").dial(ANS)
    call.silence()
    call.say_speech("leak")
    harness.run_jobs()

    text = harness.fake.phone(A).expect_sms("leak")
    assert "caller ID withheld, no callback number" in text.body
    assert "266696687" not in text.body
    offer_call = harness.fake.phone(A).expect_call("withheld")
    offer_call.press("1")
    assert offer_call.dialed == []
    assert "no callback number" in offer_call.said_text
    assert harness.dispatch().state == DispatchState.ACKNOWLEDGED


def test_nobody_available_connects_desk(harness: Harness) -> None:
    harness.load_profile(pools=[{"key": "techs", "members": []}])
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    call.say_speech("sewage backing up")
    harness.run_jobs()

    assert call.dialed == [DESK]
    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.NO_ONE_AVAILABLE
    assert dispatch.state_reason == "empty_pool"
    harness.fake.phone(DESK).expect_sms("nobody available")


def test_texted_followup_reaches_holder(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak under sink")
    harness.fake.phone(A).expect_sms("Reply 1")
    harness.fake.phone(A).send_sms(ANS, "1")
    harness.run_jobs()

    harness.customer_texts("It is getting worse")

    assert len(harness.dispatches()) == 1
    harness.fake.phone(A).expect_sms("It is getting worse")
    assert harness.events("caller_followup")


def test_member_calls_in_is_bridged(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak")
    harness.fake.phone(A).send_sms(ANS, "yes")
    harness.run_jobs()

    call = harness.fake.phone(A).dial(ANS)

    assert "Connecting you to the caller" in call.said_text
    assert call.dialed == [CUSTOMER]
    assert call.dial_caller_ids == [ANS]
    assert harness.events("bridge_started")


def test_phi_offer_text_has_no_details(harness: Harness) -> None:
    harness.load_profile(account={"phi": True})
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Chest pain after surgery")

    text = harness.fake.phone(A).expect_sms("Reply 1")
    assert "Chest pain" not in text.body
    assert CUSTOMER not in text.body
    assert f"Call {ANS}" in text.body


def test_forward_route_dials_number(harness: Harness) -> None:
    office = "+13125550188"
    harness.load_profile(routes=[{"key": "office", "action": "forward", "forward_to": office}])
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    assert call.dialed == [office]
    assert harness.dispatch().state == DispatchState.FORWARDED


def test_taken_message_delivered_at_opening(harness: Harness) -> None:
    routes = [
        {"key": "emergency", "menu": "1", "action": "page", "pool": "techs", "channels": ["sms"]},
        {"key": "other", "menu": "2", "action": "message", "message_pool": "office"},
    ]
    harness.load_profile(
        caller_script=MENU_SCRIPT, routes=routes,
        pools=[{"key": "techs", "members": ["a", "b", "c"]}, {"key": "office", "members": ["d"]}],
        business_hours={"wed": ["08:00-17:00"]},
    )
    harness.clock.freeze(datetime(2025, 6, 11, 4, 0, tzinfo=UTC))  # 23:00 Tuesday in Chicago
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    call.press("2")
    call.say_speech("please quote a new water heater")
    harness.tick()
    harness.fake.phone(D).assert_no_new_sms()

    harness.advance(9 * 3600)  # 08:00 Wednesday in Chicago

    text = harness.fake.phone(D).expect_sms("water heater")
    assert CUSTOMER in text.body
    harness.tick()
    harness.fake.phone(D).assert_no_new_sms()


def test_all_inactive_is_no_one_available(harness: Harness) -> None:
    members = [
        {"key": "a", "name": "Alice", "phones": {"voice": A, "sms": A}, "active": False},
        {"key": "b", "name": "Bob", "phones": {"sms": "+13125550102"}, "active": False},
    ]
    harness.load_profile(members=members, pools=[{"key": "techs", "members": ["a", "b"]}])
    harness.customer_texts("Need help at site 4")

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.NO_ONE_AVAILABLE
    assert dispatch.state_reason == "all_inactive: a, b"
    assert harness.offers() == []
    harness.fake.phone(DESK).expect_sms("nobody available")
    harness.fake.phone(CUSTOMER).expect_sms("nobody is on call")
    assert harness.runtime.queue.scheduled_job_registry.count == 0


def test_outside_schedule_is_no_one_available(harness: Harness) -> None:
    shifts = [{"member": key, "days": ["mon", "tue", "wed", "thu", "fri"],
               "start": "08:00", "end": "17:00"} for key in ("a", "b", "c")]
    harness.load_profile(schedule={"shifts": shifts})
    harness.clock.freeze(datetime(2025, 6, 10, 23, 30, tzinfo=UTC))  # 18:30 in Chicago
    call = harness.fake.phone(CUSTOMER).dial(ANS)
    call.say_speech("no heat")
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.NO_ONE_AVAILABLE
    assert dispatch.state_reason == "outside_schedule"
    assert call.dialed == [DESK]
    harness.fake.phone(A).assert_no_new_sms()
