from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.checks import Finding, check_profile, format_local_span
from dispatch.eligibility import AccountChannelState
from dispatch.models import Channel
from dispatch.profile import Profile, load_profile, load_profile_dict

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DESK = "+13125550190"
A, B, C = "+13125550101", "+13125550102", "+13125550103"
T0 = datetime(2025, 6, 10, 15, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def shift(member: str, start: str, end: str, days: list[str] | None = None) -> dict[str, Any]:
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return {"member": member, "days": days or every_day, "start": start, "end": end}


def document(**changes: Any) -> dict[str, Any]:
    """Return a clean profile: pool night of a, b, c, all always on call, reviewed recently."""
    data: dict[str, Any] = {
        "account": {
            "key": "test-co",
            "name": "Test Co",
            "time_zone": "America/Chicago",
            "answering_numbers": ["+13125550100"],
            "final_escalation": DESK,
            "last_reviewed": "2025-06-01",
        },
        "business_hours": {day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "caller_script": {"greeting": "Hello."},
        "members": [
            {"key": "a", "name": "Ann", "phones": {"voice": A, "sms": A}},
            {"key": "b", "name": "Ben", "phones": {"voice": B, "sms": B}},
            {"key": "c", "name": "Cat", "phones": {"voice": C}},
        ],
        "pools": [{"key": "night", "members": ["a", "b", "c"]}],
        "schedule": {},
        "routes": [{"key": "all", "action": "page", "pool": "night"}],
    }
    data.update(changes)
    return data


def profile_of(**changes: Any) -> Profile:
    return load_profile_dict(document(**changes)).profile


def no_state() -> AccountChannelState:
    return AccountChannelState(flagged=set(), opted_out=set(), paused=set())


def run(profile: Profile, now: datetime = T0, days: int = 14,
        state: AccountChannelState | None = None, desk: str | None = None) -> list[Finding]:
    return check_profile(profile, state or no_state(), now, days=days, operator_desk=desk)


def length(finding: Finding) -> timedelta:
    assert finding.start is not None and finding.end is not None
    return finding.end - finding.start


def kinds(findings: list[Finding]) -> list[str]:
    return [finding.kind for finding in findings]


def test_clean_profile_no_findings() -> None:
    assert run(profile_of()) == []


def test_gap_message_in_local_time() -> None:
    # a covers 06:00-02:00 each day, so nobody is on call 02:00-06:00.
    profile = profile_of(
        pools=[{"key": "night", "members": ["a"]}, {"key": "day", "members": ["b", "c"]}],
        schedule={"shifts": [shift("a", "06:00", "02:00")]},
    )
    findings = [f for f in run(profile, now=utc(2025, 6, 17, 5), days=1) if f.kind == "gap"]

    assert [f.message for f in findings] == [
        "pool night: nobody on call Tue 2025-06-17 02:00–06:00 CDT"
    ]
    assert findings[0].start == utc(2025, 6, 17, 7)
    assert findings[0].end == utc(2025, 6, 17, 11)
    assert findings[0].subject == "night"


def test_gap_autumn_dst_night() -> None:
    profile = profile_of(schedule={"shifts": [
        shift("a", "22:00", "01:00"), shift("b", "02:00", "06:00"), shift("c", "06:00", "22:00"),
    ]})
    findings = [f for f in run(profile, now=utc(2025, 11, 1, 12), days=2) if f.kind == "gap"]
    messages = [f.message for f in findings]

    assert "pool night: nobody on call Sun 2025-11-02 01:00 CDT–02:00 CST" in messages
    dst_gap = findings[messages.index(
        "pool night: nobody on call Sun 2025-11-02 01:00 CDT–02:00 CST")]
    # The wall clock repeats 01:00-02:00, so this gap lasts two hours.
    assert length(dst_gap) == timedelta(hours=2)
    assert "pool night: nobody on call Mon 2025-11-03 01:00–02:00 CST" in messages


def test_gap_spring_dst_night() -> None:
    profile = profile_of(schedule={"shifts": [
        shift("a", "22:00", "01:00"), shift("b", "02:00", "06:00"), shift("c", "06:00", "22:00"),
    ]})
    findings = [f for f in run(profile, now=utc(2025, 3, 8, 12), days=1) if f.kind == "gap"]

    assert [f.message for f in findings] == [
        "pool night: nobody on call Sun 2025-03-09 01:00 CST–03:00 CDT"
    ]
    # 02:00-03:00 does not exist that night, so the gap lasts one hour.
    assert length(findings[0]) == timedelta(hours=1)


def test_gaps_only_while_route_applies() -> None:
    # Nobody is on call in business hours, but the only route is for after hours.
    profile = profile_of(
        schedule={"shifts": [shift("a", "17:00", "08:00"), shift("b", "17:00", "08:00"),
                             shift("c", "17:00", "08:00")]},
        routes=[{"key": "nights", "when": ["after_hours"], "action": "page", "pool": "night"}],
    )
    # Saturday 2025-06-14: no business hours, so 08:00-17:00 is after hours and uncovered.
    findings = [f for f in run(profile, now=utc(2025, 6, 10, 15), days=7) if f.kind == "gap"]

    assert [f.message for f in findings] == [
        "pool night: nobody on call Sat 2025-06-14 08:00–17:00 CDT",
        "pool night: nobody on call Sun 2025-06-15 08:00–17:00 CDT",
    ]


def test_gap_splits_at_business_hours() -> None:
    # Only a, on call 12:00-20:00 on weekdays; the route is for after hours from 17:00.
    profile = profile_of(
        pools=[{"key": "night", "members": ["a", "b"]}, {"key": "spare", "members": ["c"]}],
        schedule={"shifts": [shift("a", "12:00", "20:00", ["mon", "tue", "wed", "thu", "fri"]),
                             shift("b", "12:00", "20:00", ["mon", "tue", "wed", "thu", "fri"])]},
        routes=[{"key": "nights", "when": ["after_hours"], "action": "page", "pool": "night"}],
    )
    # Tuesday 10:00 CDT to Wednesday 10:00 CDT.
    findings = [f for f in run(profile, now=utc(2025, 6, 10, 15), days=1) if f.kind == "gap"]

    assert [f.message for f in findings] == [
        "pool night: nobody on call Tue 2025-06-10 20:00–Wed 2025-06-11 08:00 CDT"
    ]


def test_unrouted_pool_has_no_gaps() -> None:
    profile = profile_of(
        pools=[{"key": "night", "members": ["a", "b", "c"]}, {"key": "office", "members": []}],
    )
    assert kinds(run(profile)) == ["empty_pool"]


def test_empty_routed_pool_whole_range() -> None:
    profile = profile_of(
        pools=[{"key": "night", "members": []}, {"key": "all", "members": ["a", "b", "c"]}],
    )
    findings = run(profile, days=1)

    assert kinds(findings) == ["empty_pool", "gap"]
    assert findings[1].start == utc(2025, 6, 10, 15)
    assert findings[1].end == utc(2025, 6, 11, 15)


def test_pool_of_one() -> None:
    profile = profile_of(
        pools=[{"key": "night", "members": ["a", "b"]}, {"key": "solo", "members": ["c"]}],
    )
    findings = run(profile)

    assert kinds(findings) == ["pool_of_one"]
    assert findings[0].subject == "solo"
    assert "has one member (c)" in findings[0].message


def test_no_escalation_line_anywhere() -> None:
    account = document()["account"] | {"final_escalation": None}
    profile = profile_of(account=account)
    findings = run(profile)

    assert kinds(findings) == ["no_escalation_line"]
    assert findings[0].subject == "all"
    assert "set account.final_escalation or the service's OPERATOR_DESK_NUMBER" in (
        findings[0].message
    )


def test_desk_number_is_escalation_line() -> None:
    account = document()["account"] | {"final_escalation": None}
    assert run(profile_of(account=account), desk=DESK) == []


def test_fallback_line_is_not_paged() -> None:
    account = document()["account"] | {"final_escalation": None}
    route = {"key": "all", "action": "page", "pool": "night", "fallback_line": DESK}
    findings = run(profile_of(account=account, routes=[route]))

    assert kinds(findings) == ["no_escalation_line"]
    assert "fallback_line only connects a caller who is still on the line" in (
        findings[0].message
    )


def test_flagged_number() -> None:
    state = AccountChannelState(flagged={(A, Channel.VOICE)}, opted_out=set(), paused=set())
    findings = run(profile_of(), state=state)

    assert kinds(findings) == ["number_flagged"]
    assert findings[0].subject == "a"
    assert "voice number ***0101 is flagged" in findings[0].message
    assert "no longer rings" in findings[0].message
    assert A not in findings[0].message


def test_opted_out_number() -> None:
    state = AccountChannelState(flagged=set(), opted_out={B}, paused=set())
    findings = run(profile_of(), state=state)

    assert kinds(findings) == ["opted_out"]
    assert findings[0].subject == "b"


def test_unreachable_member() -> None:
    # c has only a voice number, and it is flagged.
    state = AccountChannelState(flagged={(C, Channel.VOICE)}, opted_out=set(), paused=set())
    findings = run(profile_of(), state=state)

    assert kinds(findings) == ["number_flagged", "unreachable"]
    assert "member c cannot be reached on any channel" in findings[1].message


def test_paused_channel() -> None:
    state = AccountChannelState(flagged=set(), opted_out=set(), paused={Channel.SMS})
    findings = run(profile_of(), state=state)

    assert kinds(findings) == ["channel_paused"]
    assert findings[0].message.startswith("sms is paused for the account")


def test_paused_voice_strands_voice_only() -> None:
    state = AccountChannelState(flagged=set(), opted_out=set(), paused={Channel.VOICE})
    findings = run(profile_of(), state=state)

    assert kinds(findings) == ["channel_paused", "unreachable"]
    assert findings[1].subject == "c"


def test_member_in_no_pool() -> None:
    members = document()["members"] + [
        {"key": "d", "name": "Dee", "phones": {"voice": "+13125550104"}},
        {"key": "e", "name": "Eve", "phones": {"voice": "+13125550105"}},
    ]
    route = {"key": "all", "action": "page", "pool": "night", "backups": ["d"]}
    findings = run(profile_of(members=members, routes=[route]))

    assert kinds(findings) == ["member_in_no_pool", "member_in_no_pool"]
    assert findings[0].message == (
        "member d is in no pool, so is paged only as a backup on route all"
    )
    assert findings[1].message == (
        "member e is in no pool, and is no route's backup, so is never paged"
    )


@pytest.mark.parametrize(
    ("reviewed", "now", "overdue"),
    [
        ("2025-06-01", utc(2025, 11, 28, 12), False),  # 180 days
        ("2025-06-01", utc(2025, 11, 29, 12), True),  # 181 days
        # 05:00 UTC on 2025-11-29 is still 2025-11-28 in Chicago: 180 days.
        ("2025-06-01", utc(2025, 11, 29, 5), False),
    ],
)
def test_review_age(reviewed: str, now: datetime, overdue: bool) -> None:
    account = document()["account"] | {"last_reviewed": reviewed}
    findings = run(profile_of(account=account), now=now, days=1)

    assert ("review_overdue" in kinds(findings)) is overdue


def test_review_date_missing() -> None:
    account = document()["account"] | {"last_reviewed": None}
    findings = run(profile_of(account=account))

    assert kinds(findings) == ["review_overdue"]
    assert "account.last_reviewed is not set" in findings[0].message


def test_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="days must be at least 1"):
        run(profile_of(), days=0)


def test_acme_example_clean_in_june() -> None:
    acme = load_profile((EXAMPLES / "acme-plumbing.yaml").read_text()).profile
    assert run(acme, now=utc(2025, 6, 10, 15)) == []


def test_findings_as_json() -> None:
    profile = profile_of(
        pools=[{"key": "night", "members": ["a"]}, {"key": "day", "members": ["b", "c"]}],
        schedule={"shifts": [shift("a", "06:00", "02:00")]},
    )
    gap = [f for f in run(profile, now=utc(2025, 6, 17, 5), days=1) if f.kind == "gap"][0]

    assert gap.as_dict() == {
        "kind": "gap",
        "subject": "night",
        "message": "pool night: nobody on call Tue 2025-06-17 02:00–06:00 CDT",
        "start": "2025-06-17T07:00:00+00:00",
        "end": "2025-06-17T11:00:00+00:00",
    }


def test_span_across_days() -> None:
    profile = profile_of()
    text = format_local_span(utc(2025, 6, 17, 3), utc(2025, 6, 18, 11), profile)
    assert text == "Mon 2025-06-16 22:00–Wed 2025-06-18 06:00 CDT"
