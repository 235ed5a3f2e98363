from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dispatch.profile import Profile, Shift, load_profile_dict
from dispatch.schedule import (
    local_to_utc,
    next_gaps,
    on_call_members,
    on_call_status,
    shift_window,
    window_kinds,
)

SECOND = timedelta(seconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def make_profile(
    shifts: list[dict[str, Any]],
    zone: str = "America/Chicago",
    overrides: list[dict[str, Any]] | None = None,
    holidays: list[dict[str, Any]] | None = None,
    members: tuple[str, ...] = ("alice", "bob"),
    pool: tuple[str, ...] = ("alice", "bob"),
) -> Profile:
    data = {
        "account": {
            "key": "test-co",
            "name": "Test Co",
            "time_zone": zone,
            "answering_numbers": ["+13125550100"],
        },
        "business_hours": {day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "caller_script": {"greeting": "Hello."},
        "members": [
            {"key": key, "name": key.title(), "phones": {"voice": f"+1312555011{index}"}}
            for index, key in enumerate(members)
        ],
        "pools": [{"key": "night", "members": list(pool)}],
        "schedule": {
            "shifts": shifts,
            "overrides": overrides or [],
            "holidays": holidays or [],
        },
        "routes": [{"key": "all", "action": "page", "pool": "night"}],
    }
    return load_profile_dict(data).profile


def shift(member: str, days: list[str], start: str, end: str) -> dict[str, Any]:
    return {"member": member, "days": days, "start": start, "end": end}


# Daylight saving time. Each row: zone, local day the shift starts, start, end, and the exact
# UTC instants expected. Chicago changes at 02:00 local (2025-03-09, 2025-11-02, 2026-03-08,
# 2026-11-01); Berlin at 01:00 UTC (2025-03-30, 2025-10-26, 2026-03-29, 2026-10-25).
DST_TABLE = [
    # Overnight shifts across the change: 7 hours in spring, 9 in autumn.
    (
        "America/Chicago",
        date(2025, 3, 8),
        "22:00",
        "06:00",
        utc(2025, 3, 9, 4),
        utc(2025, 3, 9, 11),
    ),
    (
        "America/Chicago",
        date(2025, 11, 1),
        "22:00",
        "06:00",
        utc(2025, 11, 2, 3),
        utc(2025, 11, 2, 12),
    ),
    (
        "America/Chicago",
        date(2026, 3, 7),
        "22:00",
        "06:00",
        utc(2026, 3, 8, 4),
        utc(2026, 3, 8, 11),
    ),
    (
        "America/Chicago",
        date(2026, 10, 31),
        "22:00",
        "06:00",
        utc(2026, 11, 1, 3),
        utc(2026, 11, 1, 12),
    ),
    (
        "Europe/Berlin",
        date(2025, 3, 29),
        "22:00",
        "06:00",
        utc(2025, 3, 29, 21),
        utc(2025, 3, 30, 4),
    ),
    (
        "Europe/Berlin",
        date(2025, 10, 25),
        "22:00",
        "06:00",
        utc(2025, 10, 25, 20),
        utc(2025, 10, 26, 5),
    ),
    (
        "Europe/Berlin",
        date(2026, 3, 28),
        "22:00",
        "06:00",
        utc(2026, 3, 28, 21),
        utc(2026, 3, 29, 4),
    ),
    (
        "Europe/Berlin",
        date(2026, 10, 24),
        "22:00",
        "06:00",
        utc(2026, 10, 24, 20),
        utc(2026, 10, 25, 5),
    ),
    # Starting in the skipped hour: the shift starts when the clock jumps to 03:00.
    (
        "America/Chicago",
        date(2025, 3, 9),
        "02:30",
        "06:00",
        utc(2025, 3, 9, 8),
        utc(2025, 3, 9, 11),
    ),
    (
        "America/Chicago",
        date(2026, 3, 8),
        "02:30",
        "06:00",
        utc(2026, 3, 8, 8),
        utc(2026, 3, 8, 11),
    ),
    (
        "Europe/Berlin",
        date(2025, 3, 30),
        "02:30",
        "06:00",
        utc(2025, 3, 30, 1),
        utc(2025, 3, 30, 4),
    ),
    (
        "Europe/Berlin",
        date(2026, 3, 29),
        "02:30",
        "06:00",
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 4),
    ),
    # Ending in the skipped hour: the shift ends when the clock jumps.
    ("America/Chicago", date(2025, 3, 8), "22:00", "02:30", utc(2025, 3, 9, 4), utc(2025, 3, 9, 8)),
    (
        "Europe/Berlin",
        date(2026, 3, 28),
        "22:00",
        "02:30",
        utc(2026, 3, 28, 21),
        utc(2026, 3, 29, 1),
    ),
    # Starting in the repeated hour: the first occurrence.
    (
        "America/Chicago",
        date(2025, 11, 2),
        "01:30",
        "06:00",
        utc(2025, 11, 2, 6, 30),
        utc(2025, 11, 2, 12),
    ),
    (
        "America/Chicago",
        date(2026, 11, 1),
        "01:30",
        "06:00",
        utc(2026, 11, 1, 6, 30),
        utc(2026, 11, 1, 12),
    ),
    (
        "Europe/Berlin",
        date(2025, 10, 26),
        "02:30",
        "06:00",
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 26, 5),
    ),
    (
        "Europe/Berlin",
        date(2026, 10, 25),
        "02:30",
        "06:00",
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 5),
    ),
    # Ending in the repeated hour: the first occurrence, so the hour is not counted twice.
    (
        "America/Chicago",
        date(2025, 11, 1),
        "22:00",
        "01:30",
        utc(2025, 11, 2, 3),
        utc(2025, 11, 2, 6, 30),
    ),
    (
        "Europe/Berlin",
        date(2025, 10, 25),
        "22:00",
        "02:30",
        utc(2025, 10, 25, 20),
        utc(2025, 10, 26, 0, 30),
    ),
]


@pytest.mark.parametrize(
    ("zone", "day", "start", "end", "expected_start", "expected_end"), DST_TABLE
)
def test_dst_shift_instants(
    zone: str, day: date, start: str, end: str, expected_start: datetime, expected_end: datetime
) -> None:
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
    profile = make_profile([shift("alice", [weekday], start, end)], zone=zone, pool=("alice",))
    window = shift_window(
        Shift.model_validate(shift("alice", [weekday], start, end)), day, profile.zone
    )
    assert window == (expected_start, expected_end)

    assert on_call_status(profile, "alice", expected_start - SECOND)[0] is False
    assert on_call_status(profile, "alice", expected_start) == (
        True,
        f"shift {weekday} {start}-{end}",
    )
    assert on_call_status(profile, "alice", expected_end - SECOND)[0] is True
    assert on_call_status(profile, "alice", expected_end)[0] is False


def test_repeated_hour_counted_once() -> None:
    # 00:00-01:30 on 2025-11-02 in Chicago ends at the first 01:30 (CDT, 06:30 UTC).
    profile = make_profile([shift("alice", ["sun"], "00:00", "01:30")], pool=("alice",))
    assert on_call_status(profile, "alice", utc(2025, 11, 2, 6, 15))[0] is True
    # 07:15 UTC is 01:15 CST, the second time the wall clock shows 01:15 that night.
    assert on_call_status(profile, "alice", utc(2025, 11, 2, 7, 15)) == (False, "outside_schedule")


def test_handover_in_gap_leaves_no_gap() -> None:
    profile = make_profile(
        [shift("alice", ["sat"], "22:00", "02:30"), shift("bob", ["sun"], "02:30", "06:00")]
    )
    gaps = next_gaps(profile, "night", utc(2025, 3, 9, 4), utc(2025, 3, 9, 11))
    assert gaps == []


def test_handover_in_repeated_hour() -> None:
    profile = make_profile(
        [shift("alice", ["sat"], "22:00", "01:30"), shift("bob", ["sun"], "01:30", "06:00")]
    )
    assert on_call_members(profile, "night", utc(2025, 11, 2, 6, 29, 59)) == ["alice"]
    assert on_call_members(profile, "night", utc(2025, 11, 2, 6, 30)) == ["bob"]
    assert next_gaps(profile, "night", utc(2025, 11, 2, 3), utc(2025, 11, 2, 12)) == []


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        ("America/Chicago", datetime(2025, 3, 9, 2, 0), utc(2025, 3, 9, 8)),
        ("America/Chicago", datetime(2025, 3, 9, 2, 59, 59), utc(2025, 3, 9, 8)),
        ("America/Chicago", datetime(2025, 3, 9, 3, 0), utc(2025, 3, 9, 8)),
        ("America/Chicago", datetime(2025, 11, 2, 1, 0), utc(2025, 11, 2, 6)),
        ("Europe/Berlin", datetime(2026, 3, 29, 2, 15), utc(2026, 3, 29, 1)),
        ("Europe/Berlin", datetime(2026, 10, 25, 2, 15), utc(2026, 10, 25, 0, 15)),
        ("Europe/Berlin", datetime(2026, 7, 1, 12, 0), utc(2026, 7, 1, 10)),
    ],
)
def test_local_to_utc(zone: str, wall: datetime, expected: datetime) -> None:
    assert local_to_utc(wall, ZoneInfo(zone)) == expected


# Shifts, overrides and holidays


def test_outside_day_shift() -> None:
    # Alice is on call 08:00-17:00 Chicago time only; 23:30 UTC is 18:30 CDT.
    profile = make_profile(
        [shift("alice", ["mon", "tue", "wed", "thu", "fri"], "08:00", "17:00")], pool=("alice",)
    )
    at = utc(2025, 6, 10, 23, 30)
    assert on_call_status(profile, "alice", at) == (False, "outside_schedule")
    assert on_call_members(profile, "night", at) == []


def test_shift_across_midnight() -> None:
    profile = make_profile([shift("alice", ["mon"], "17:00", "08:00")], pool=("alice",))
    # Tuesday 2025-06-10 03:00 CDT.
    assert on_call_status(profile, "alice", utc(2025, 6, 10, 8)) == (True, "shift mon 17:00-08:00")
    assert on_call_status(profile, "alice", utc(2025, 6, 10, 13))[0] is False


def test_shift_ending_at_24() -> None:
    profile = make_profile([shift("alice", ["tue"], "17:00", "24:00")], pool=("alice",))
    assert on_call_status(profile, "alice", utc(2025, 6, 11, 4, 59))[0] is True
    assert on_call_status(profile, "alice", utc(2025, 6, 11, 5))[0] is False


def test_no_shifts_always_on_call() -> None:
    profile = make_profile([shift("alice", ["mon"], "08:00", "17:00")])
    assert on_call_status(profile, "bob", utc(2025, 6, 10, 3)) == (
        True,
        "no shifts: always on call",
    )


def test_override_off_wins() -> None:
    profile = make_profile(
        [shift("alice", ["tue"], "17:00", "08:00")],
        overrides=[
            {
                "member": "alice",
                "start": "2025-06-10T17:00",
                "end": "2025-06-11T08:00",
                "on_call": False,
                "note": "sick",
            },
            {
                "member": "bob",
                "start": "2025-06-10T17:00",
                "end": "2025-06-11T08:00",
                "on_call": True,
                "note": "covers alice",
            },
        ],
        members=("alice", "bob", "carol"),
        pool=("alice", "bob", "carol"),
    )
    at = utc(2025, 6, 11, 2)
    assert on_call_status(profile, "alice", at) == (False, "override: sick")
    assert on_call_status(profile, "bob", at) == (True, "override: covers alice")
    # The override ends at 08:00 local; a minute later Alice's shift has ended too.
    assert on_call_status(profile, "alice", utc(2025, 6, 11, 13, 1)) == (False, "outside_schedule")


def test_override_on_outside_shift() -> None:
    profile = make_profile(
        [shift("alice", ["mon"], "08:00", "17:00"), shift("bob", ["mon"], "17:00", "20:00")],
        overrides=[
            {
                "member": "bob",
                "start": "2025-06-10T17:00",
                "end": "2025-06-11T08:00",
                "on_call": True,
            }
        ],
    )
    assert on_call_status(profile, "bob", utc(2025, 6, 11, 2)) == (True, "override")
    assert on_call_members(profile, "night", utc(2025, 6, 11, 2)) == ["bob"]


def test_last_listed_override_wins() -> None:
    profile = make_profile(
        [shift("alice", ["tue"], "17:00", "08:00")],
        overrides=[
            {
                "member": "alice",
                "start": "2025-06-10T17:00",
                "end": "2025-06-11T08:00",
                "on_call": False,
                "note": "sick",
            },
            {
                "member": "alice",
                "start": "2025-06-10T20:00",
                "end": "2025-06-10T22:00",
                "on_call": True,
                "note": "back for two hours",
            },
        ],
    )
    assert on_call_status(profile, "alice", utc(2025, 6, 11, 2)) == (
        True,
        "override: back for two hours",
    )
    assert on_call_status(profile, "alice", utc(2025, 6, 11, 4)) == (False, "override: sick")


def test_holiday_replaces_shifts() -> None:
    # 2025-12-25 is a Thursday.
    profile = make_profile(
        [shift("alice", ["wed", "thu"], "17:00", "08:00"), shift("bob", ["mon"], "09:00", "10:00")],
        holidays=[{"date": "2025-12-25", "name": "Christmas Day", "on_call": ["bob"]}],
    )
    midday = utc(2025, 12, 25, 18)
    assert on_call_status(profile, "bob", midday) == (True, "holiday Christmas Day")
    assert on_call_status(profile, "alice", midday) == (False, "holiday Christmas Day")
    # Wednesday's shift runs until local midnight, then the holiday takes over.
    assert on_call_status(profile, "alice", utc(2025, 12, 25, 5, 59))[0] is True
    assert on_call_status(profile, "alice", utc(2025, 12, 25, 6))[0] is False
    # Thursday's shift is replaced, but its part after midnight falls on Friday.
    assert on_call_status(profile, "alice", utc(2025, 12, 26, 7)) == (True, "shift thu 17:00-08:00")
    assert on_call_members(profile, "night", midday) == ["bob"]


def test_holiday_without_list_keeps_shifts() -> None:
    profile = make_profile(
        [shift("alice", ["thu"], "08:00", "17:00")],
        holidays=[{"date": "2025-12-25", "name": "Christmas Day"}],
    )
    at = utc(2025, 12, 25, 18)
    assert on_call_status(profile, "alice", at) == (True, "shift thu 08:00-17:00")
    assert window_kinds(profile, at) == {"holiday", "after_hours"}


def test_inactive_member_off() -> None:
    profile = make_profile([])
    data = profile.model_dump()
    data["members"][0]["active"] = False
    inactive = load_profile_dict(data).profile
    assert on_call_status(inactive, "alice", utc(2025, 6, 10, 3)) == (False, "inactive")
    assert on_call_members(inactive, "night", utc(2025, 6, 10, 3)) == ["bob"]


def test_unknown_member_not_on_roster() -> None:
    profile = make_profile([])
    assert on_call_status(profile, "zed", utc(2025, 6, 10)) == (False, "not on the roster")


def test_unknown_pool_raises() -> None:
    profile = make_profile([])
    with pytest.raises(KeyError):
        on_call_members(profile, "day", utc(2025, 6, 10))


# Windows


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2025, 6, 10, 13), {"business_hours"}),  # Tuesday 08:00 CDT
        (utc(2025, 6, 10, 21, 59, 59), {"business_hours"}),
        (utc(2025, 6, 10, 22), {"after_hours"}),  # 17:00 CDT
        (utc(2025, 6, 10, 12, 59, 59), {"after_hours"}),
        (utc(2025, 6, 14, 16), {"after_hours"}),  # Saturday
        (utc(2025, 12, 25, 16), {"holiday", "after_hours"}),
    ],
)
def test_window_kinds(at: datetime, expected: set[str]) -> None:
    profile = make_profile([], holidays=[{"date": "2025-12-25", "name": "Christmas Day"}])
    assert window_kinds(profile, at) == expected


def test_window_uses_local_date() -> None:
    # 2025-12-26 03:00 UTC is still Christmas evening in Chicago.
    profile = make_profile([], holidays=[{"date": "2025-12-25", "name": "Christmas Day"}])
    assert "holiday" in window_kinds(profile, utc(2025, 12, 26, 3))
    assert "holiday" not in window_kinds(profile, utc(2025, 12, 25, 5))


# Gaps


def test_gaps_of_day_shift() -> None:
    profile = make_profile(
        [shift("alice", ["mon", "tue", "wed", "thu", "fri"], "08:00", "17:00")], pool=("alice",)
    )
    gaps = next_gaps(profile, "night", utc(2025, 6, 10, 12), utc(2025, 6, 11, 14))
    assert gaps == [
        (utc(2025, 6, 10, 12), utc(2025, 6, 10, 13)),
        (utc(2025, 6, 10, 22), utc(2025, 6, 11, 13)),
    ]


def test_gaps_exact_off_grid() -> None:
    profile = make_profile([shift("alice", ["tue"], "08:07", "16:53")], pool=("alice",))
    gaps = next_gaps(profile, "night", utc(2025, 6, 10, 12), utc(2025, 6, 10, 23), step_minutes=60)
    assert gaps == [
        (utc(2025, 6, 10, 12), utc(2025, 6, 10, 13, 7)),
        (utc(2025, 6, 10, 21, 53), utc(2025, 6, 10, 23)),
    ]


def test_gaps_of_empty_pool() -> None:
    profile = make_profile([], pool=())
    start, end = utc(2025, 6, 10), utc(2025, 6, 11)
    assert next_gaps(profile, "night", start, end) == [(start, end)]


def test_gaps_from_override() -> None:
    profile = make_profile(
        [shift("alice", ["tue"], "00:00", "24:00")],
        overrides=[
            {
                "member": "alice",
                "start": "2025-06-10T10:00",
                "end": "2025-06-10T11:30",
                "on_call": False,
            }
        ],
        pool=("alice",),
    )
    assert next_gaps(profile, "night", utc(2025, 6, 10, 5), utc(2025, 6, 11, 5)) == [
        (utc(2025, 6, 10, 15), utc(2025, 6, 10, 16, 30))
    ]


def test_gaps_reject_reversed_range() -> None:
    profile = make_profile([])
    with pytest.raises(ValueError, match="before start"):
        next_gaps(profile, "night", utc(2025, 6, 11), utc(2025, 6, 10))


def test_naive_datetimes_rejected() -> None:
    profile = make_profile([])
    naive = datetime(2025, 6, 10, 12)
    with pytest.raises(ValueError, match="naive datetime"):
        window_kinds(profile, naive)
    with pytest.raises(ValueError, match="naive datetime"):
        on_call_status(profile, "alice", naive)
    with pytest.raises(ValueError, match="naive datetime"):
        on_call_members(profile, "night", naive)
    with pytest.raises(ValueError, match="naive datetime"):
        next_gaps(profile, "night", naive, utc(2025, 6, 11))
