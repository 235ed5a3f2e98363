"""Offers by phone call: keypresses, voicemail, ring-outs, and both channels at once."""

from __future__ import annotations

from dispatch.models import ChannelState, DispatchState
from tests.harness import ANS, CUSTOMER, A, B, Harness

VOICE = {"channels": ["voice"], "ack_window_voice_seconds": 90}


def start_voice_dispatch(harness: Harness, **route: object) -> None:
    harness.load_profile(route={**VOICE, **route})
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Burst pipe in the basement")


def test_keypress_one_accepts_and_connects(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call = harness.fake.phone(A).expect_call("Acme Plumbing")
    assert "Burst pipe" in call.said_text
    assert "1 3 1 2 5 5 5 0 1 5 0" in call.said_text

    call.press("1")
    harness.run_jobs()

    assert "You accepted job" in call.said_text
    assert call.dialed == [CUSTOMER]
    assert call.dial_caller_ids == [ANS]
    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert dispatch.connected_at is not None


def test_keypress_two_passes(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call = harness.fake.phone(A).expect_call("Press 1")
    call.press("2")
    harness.run_jobs()

    assert "Passing to the next technician" in call.said_text
    harness.fake.phone(B).expect_call("Acme Plumbing")
    assert harness.offered_members() == ["a", "b"]


def test_keypress_nine_repeats(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call = harness.fake.phone(A).expect_call("Press 1")
    call.press("9")
    assert call.said_text.count("Burst pipe") == 2
    call.press("9")
    assert call.said_text.count("Burst pipe") == 3
    call.press("1")
    assert harness.dispatch().state == DispatchState.ACKNOWLEDGED


def test_silence_reprompts_then_rolls_over(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call = harness.fake.phone(A).expect_call("Press 1")
    call.press("7")
    assert call.said_text.count("Press 1 to accept") == 2
    call.silence()
    harness.run_jobs()

    assert "No key was pressed" in call.said_text
    offers = harness.offers()
    assert offers[0].channels[0].state == ChannelState.NO_KEYPRESS
    harness.fake.phone(B).expect_call()


def test_voicemail_never_accepts(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call = harness.fake.phone(A).calls[-1]
    call.voicemail()
    harness.run_jobs()

    offers = harness.offers()
    assert offers[0].channels[0].state == ChannelState.MACHINE
    assert harness.dispatch().state == DispatchState.OFFERING
    harness.fake.phone(B).expect_call()


def test_ring_out_rolls_over(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call = harness.fake.phone(A).calls[-1]
    call.ring_out()
    harness.run_jobs()

    assert harness.offers()[0].channels[0].state == ChannelState.NO_ANSWER
    harness.fake.phone(B).expect_call()


def test_busy_line_rolls_over(harness: Harness) -> None:
    start_voice_dispatch(harness)
    harness.fake.phone(A).calls[-1].busy()
    harness.run_jobs()
    assert harness.offers()[0].channels[0].state == ChannelState.BUSY
    harness.fake.phone(B).expect_call()


def test_sms_accept_cancels_ringing_call(harness: Harness) -> None:
    harness.load_profile(route={"channels": ["voice", "sms"]})
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("No heat")
    call = harness.fake.phone(A).calls[-1]
    call.ring()
    harness.run_jobs()
    harness.fake.phone(A).expect_sms("Reply 1")

    harness.fake.phone(A).send_sms(ANS, "1")
    harness.run_jobs()

    assert harness.dispatch().state == DispatchState.ACKNOWLEDGED
    assert call.status == "canceled"


def test_late_keypress_after_rollover_wins(harness: Harness) -> None:
    start_voice_dispatch(harness)
    call_a = harness.fake.phone(A).expect_call("Press 1")
    harness.advance(91)
    call_b = harness.fake.phone(B).calls[-1]
    call_b.ring()
    harness.run_jobs()

    call_a.press("1")
    harness.run_jobs()

    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert harness.offers()[0].member_key == "a"
    assert call_b.status == "canceled"
    assert harness.events("stood_down")


def test_keypress_after_other_accept(harness: Harness) -> None:
    harness.load_profile(route={"channels": ["voice", "sms"], "ack_window_voice_seconds": 90})
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("No heat")
    call_a = harness.fake.phone(A).expect_call("Press 1")
    harness.advance(121)
    harness.fake.phone(B).send_sms(ANS, "1")
    harness.run_jobs()

    call_a.press("1")

    assert "already handled by another technician" in call_a.said_text
    assert harness.events("late_keypress")
    assert harness.dispatch().offers[-1].member_key == "b"
