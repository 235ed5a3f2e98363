from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.eligibility import AccountChannelState
from dispatch.models import Channel
from dispatch.profile import Profile, Route, load_profile_dict
from dispatch.simulate import SimulatedStep, simulate_chain

T0 = datetime(2025, 6, 10, 15, tzinfo=UTC)  # Tuesday 10:00 CDT
DESK = "+13125550190"
NUMBERS = {"a": "+13125550101", "b": "+13125550102", "c": "+13125550103", "d": "+13125550104"}


def profile_of(
    pool: list[str] | None = None,
    route: dict[str, Any] | None = None,
    members: dict[str, dict[str, Any]] | None = None,
    shifts: list[dict[str, Any]] | None = None,
    final_escalation: str | None = DESK,
) -> Profile:
    """Build a profile with members a-d (voice and sms) and one page route to pool night."""
    extra = members or {}
    data = {
        "account": {
            "key": "test-co",
            "name": "Test Co",
            "time_zone": "America/Chicago",
            "answering_numbers": ["+13125550100"],
            "final_escalation": final_escalation,
        },
        "caller_script": {"greeting": "Hello."},
        "members": [
            {"key": key, "name": key.upper(), "phones": {"voice": number, "sms": number}}
            | extra.get(key, {})
            for key, number in NUMBERS.items()
        ],
        "pools": [{"key": "night", "members": pool if pool is not None else ["a", "b", "c"]}],
        "schedule": {"shifts": shifts or []},
        "routes": [{"key": "all", "action": "page", "pool": "night", "channels": ["sms"]}
                   | (route or {})],
    }
    return load_profile_dict(data).profile


def state(
    flagged: set[tuple[str, Channel]] | None = None,
    opted_out: set[str] | None = None,
    paused: set[Channel] | None = None,
) -> AccountChannelState:
    return AccountChannelState(flagged or set(), opted_out or set(), paused or set())


def chain(
    profile: Profile,
    pointer: tuple[str | None, int | None] = (None, None),
    run_state: AccountChannelState | None = None,
    **options: Any,
) -> list[SimulatedStep]:
    route = profile.route("all")
    return simulate_chain(profile, route, T0, pointer[0], pointer[1], run_state or state(),
                          **options)


def offers(steps: list[SimulatedStep]) -> list[tuple[str, int | None, str | None]]:
    return [(s.kind, s.round, s.member_key) for s in steps if s.kind in ("pool", "backup")]


def test_two_rounds_then_desk() -> None:
    steps = chain(profile_of(), pointer=("c", 2))

    assert offers(steps) == [
        ("pool", 1, "a"), ("pool", 1, "b"), ("pool", 1, "c"),
        ("pool", 2, "a"), ("pool", 2, "b"), ("pool", 2, "c"),
    ]
    assert steps[-1].kind == "escalation"
    assert steps[-1].number == DESK
    assert steps[-1].channels == ("sms",)


def test_starts_after_pointer() -> None:
    steps = chain(profile_of(route={"rounds": 1}), pointer=("a", 0))
    assert [s.member_key for s in steps[:-1]] == ["b", "c", "a"]


def test_no_pointer_starts_at_top() -> None:
    steps = chain(profile_of(route={"rounds": 1}))
    assert [s.member_key for s in steps[:-1]] == ["a", "b", "c"]


def test_reordered_pool_keeps_pointer() -> None:
    # b was offered last at position 1; in the new order b is at position 2.
    steps = chain(profile_of(pool=["c", "a", "b", "d"], route={"rounds": 1}), pointer=("b", 1))
    assert [s.member_key for s in steps[:-1]] == ["d", "c", "a", "b"]


def test_removed_pointer_uses_position() -> None:
    steps = chain(profile_of(pool=["a", "c", "d"], route={"rounds": 1}), pointer=("b", 1))
    assert [s.member_key for s in steps[:-1]] == ["c", "d", "a"]


def test_removed_last_member_wraps() -> None:
    steps = chain(profile_of(pool=["a", "b", "c"], route={"rounds": 1}), pointer=("d", 3))
    assert [s.member_key for s in steps[:-1]] == ["a", "b", "c"]


def test_inactive_member_skipped() -> None:
    profile = profile_of(route={"rounds": 1}, members={"b": {"active": False}})
    steps = chain(profile, pointer=("a", 0))

    assert [s.member_key for s in steps[:-1]] == ["c", "a"]
    assert steps[0].skipped == (("b", "inactive"),)


def test_outside_schedule_skipped() -> None:
    # b works nights only; T0 is 10:00 local.
    profile = profile_of(
        route={"rounds": 1},
        shifts=[
            {"member": "a", "days": ["tue"], "start": "08:00", "end": "18:00"},
            {"member": "b", "days": ["tue"], "start": "18:00", "end": "08:00"},
            {"member": "c", "days": ["tue"], "start": "08:00", "end": "18:00"},
        ],
    )
    steps = chain(profile, pointer=("a", 0))

    assert steps[0].member_key == "c"
    assert steps[0].skipped == (("b", "outside_schedule"),)


def test_flagged_opted_out_paused() -> None:
    run_state = state(flagged={(NUMBERS["a"], Channel.SMS)}, opted_out={NUMBERS["b"]})
    steps = chain(profile_of(route={"rounds": 1}), run_state=run_state)

    assert [s.member_key for s in steps[:-1]] == ["c"]
    assert steps[0].skipped == (
        ("a", "unreachable: sms number flagged"),
        ("b", "unreachable: opted out of SMS"),
    )


def test_paused_channel_narrows_offer() -> None:
    profile = profile_of(route={"rounds": 1, "channels": ["voice", "sms"]})
    steps = chain(profile, run_state=state(paused={Channel.SMS}))

    assert [s.channels for s in steps[:-1]] == [("voice",)] * 3
    assert [s.window_seconds for s in steps[:-1]] == [90] * 3


def test_all_paused_nobody_step() -> None:
    steps = chain(profile_of(route={"backups": ["d"]}), run_state=state(paused={Channel.SMS}))

    assert [s.kind for s in steps] == ["nobody"]
    assert steps[0].number == DESK
    assert steps[0].skipped == (
        ("a", "unreachable: sms paused for the account"),
        ("b", "unreachable: sms paused for the account"),
        ("c", "unreachable: sms paused for the account"),
        ("d", "backup unreachable: sms paused for the account"),
    )


def test_empty_pool_nobody() -> None:
    steps = chain(profile_of(pool=[]))
    assert [(s.kind, s.number, s.skipped) for s in steps] == [("nobody", DESK, ())]


def test_backups_ignore_shifts() -> None:
    # d has no shift today, but backups are paged whatever their shifts.
    profile = profile_of(
        route={"rounds": 1, "backups": ["d", "a"]},
        shifts=[{"member": "d", "days": ["sat"], "start": "08:00", "end": "17:00"}],
    )
    steps = chain(profile)

    assert offers(steps)[-2:] == [("backup", None, "d"), ("backup", None, "a")]
    assert steps[-1].kind == "escalation"


def test_inactive_backup_skipped() -> None:
    profile = profile_of(route={"rounds": 1, "backups": ["d"]}, members={"d": {"active": False}})
    steps = chain(profile)

    assert steps[-1].kind == "escalation"
    assert steps[-1].skipped == (("d", "backup inactive"),)


def test_busy_member_offered_last() -> None:
    # a holds a live offer of another dispatch, so a is offered once nobody else is left.
    steps = chain(profile_of(route={"rounds": 1}), busy={"a"})

    assert [s.member_key for s in steps[:-1]] == ["b", "c", "a"]
    assert steps[0].skipped == (("a", "holding a live offer of another dispatch"),)


def test_busy_member_when_alone() -> None:
    steps = chain(profile_of(pool=["a"], route={"rounds": 1}), busy={"a"})
    assert [s.member_key for s in steps[:-1]] == ["a"]


def test_chain_cap_marks_late_steps() -> None:
    # Windows of 120 s and a 5-minute cap: offers at 0, 120 and 240 s fit, 360 s does not.
    profile = profile_of(route={"max_chain_minutes": 5})
    steps = chain(profile)

    assert [s.start_seconds for s in steps[:-1]] == [0, 120, 240, 360, 480, 600]
    assert [s.after_cap for s in steps[:-1]] == [False, False, False, True, True, True]
    assert steps[-1].start_seconds == 360


def test_escalation_without_line() -> None:
    steps = chain(profile_of(final_escalation=None))
    assert (steps[-1].kind, steps[-1].number, steps[-1].channels) == ("escalation", None, ())


def test_service_desk_line() -> None:
    steps = chain(profile_of(final_escalation=None), operator_desk="+13125550199")
    assert steps[-1].number == "+13125550199"


def test_message_route_rejected() -> None:
    profile = profile_of()
    route = Route.model_validate({"key": "msg", "action": "message"})
    with pytest.raises(ValueError, match="message route and pages no pool"):
        simulate_chain(profile, route, T0, None, None, state())


def test_step_as_dict() -> None:
    step = chain(profile_of(route={"rounds": 1}, members={"b": {"active": False}}),
                 pointer=("a", 0))[0]

    assert step.as_dict() == {
        "kind": "pool",
        "round": 1,
        "member": "c",
        "name": "C",
        "channels": ["sms"],
        "number": None,
        "skipped": [{"member": "b", "reason": "inactive"}],
        "start_seconds": 0,
        "window_seconds": 120,
        "after_cap": False,
    }
