import copy
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from dispatch.profile import (
    LoadedProfile,
    ProfileError,
    canonical_json,
    diff_profiles,
    dump_profile_yaml,
    load_profile,
    load_profile_dict,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

BASE: dict[str, Any] = {
    "account": {
        "key": "test-co",
        "name": "Test Co",
        "time_zone": "America/Chicago",
        "answering_numbers": ["+13125550100", "+13125550199"],
        "final_escalation": "+13125550190",
    },
    "business_hours": {"mon": ["08:00-17:00"], "tue": ["08:00-17:00"]},
    "caller_script": {
        "greeting": "Thank you for calling Test Co.",
        "menu": [{"digit": "1", "label": "an emergency"}, {"digit": "2", "label": "anything else"}],
    },
    "members": [
        {
            "key": "alice",
            "name": "Alice",
            "phones": {"voice": "(312) 555-0101", "sms": "(312) 555-0101"},
        },
        {"key": "bob", "name": "Bob", "phones": {"voice": "312.555.0102"}},
        {"key": "carol", "name": "Carol", "phones": {"sms": "13125550103"}},
    ],
    "pools": [{"key": "night", "members": ["alice", "bob", "carol"]}],
    "schedule": {
        "shifts": [
            {"member": "alice", "days": ["mon", "tue"], "start": "17:00", "end": "08:00"},
            {"member": "bob", "days": ["mon", "tue"], "start": "17:00", "end": "08:00"},
            {"member": "carol", "days": ["wed"], "start": "00:00", "end": "24:00"},
        ],
    },
    "routes": [
        {
            "key": "office",
            "when": ["business_hours"],
            "action": "forward",
            "forward_to": "+13125550180",
        },
        {
            "key": "emergency",
            "when": ["after_hours"],
            "menu": "1",
            "action": "page",
            "pool": "night",
        },
        {"key": "other", "when": ["after_hours"], "action": "message", "message_pool": "night"},
    ],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_profile_dict(data)
    return caught.value.errors


def load_ok(data: dict[str, Any]) -> LoadedProfile:
    return load_profile_dict(data)


# Loading and shape


@pytest.mark.parametrize("name", ["acme-plumbing.yaml", "riverside-medical.yaml"])
def test_examples_load_without_errors(name: str) -> None:
    loaded = load_profile((EXAMPLES / name).read_text())
    assert loaded.profile.routes
    assert loaded.profile.members


def test_medical_example_protects_phi() -> None:
    profile = load_profile((EXAMPLES / "riverside-medical.yaml").read_text()).profile
    assert profile.account.phi
    assert profile.final_escalation_line("+13125550999") == "+17735550190"


def test_base_profile_loads_cleanly() -> None:
    loaded = load_ok(base())
    assert loaded.warnings == []


def test_phones_stored_as_e164() -> None:
    profile = load_ok(base()).profile
    assert profile.member("alice").phones.voice == "+13125550101"
    assert profile.member("bob").phones.voice == "+13125550102"
    assert profile.member("carol").phones.sms == "+13125550103"


def test_profile_is_frozen() -> None:
    profile = load_ok(base()).profile
    with pytest.raises(pydantic.ValidationError):
        profile.account.name = "Other"


def test_helpers_look_up_keys() -> None:
    profile = load_ok(base()).profile
    assert profile.pool("night").members == ("alice", "bob", "carol")
    assert profile.route("office").forward_to == "+13125550180"
    assert profile.zone == ZoneInfo("America/Chicago")
    with pytest.raises(KeyError):
        profile.member("zed")
    with pytest.raises(KeyError):
        profile.pool("day")


def test_members_by_number() -> None:
    owners = load_ok(base()).profile.members_by_number()
    assert {number: member.key for number, member in owners.items()} == {
        "+13125550101": "alice",
        "+13125550102": "bob",
        "+13125550103": "carol",
    }


def test_final_escalation_falls_back() -> None:
    data = base()
    del data["account"]["final_escalation"]
    profile = load_ok(data).profile
    assert profile.final_escalation_line("+13125550900") == "+13125550900"
    assert profile.final_escalation_line(None) is None


def test_route_defaults() -> None:
    route = load_ok(base()).profile.route("emergency")
    assert route.ring_timeout_seconds == 25
    assert route.ack_window_voice_seconds == 90
    assert route.ack_window_sms_seconds == 120
    assert route.rounds == 2
    assert route.max_chain_minutes == 10
    assert route.channels == ("voice", "sms")
    assert route.numbers is None
    assert load_ok(base()).profile.route_numbers(route) == ("+13125550100", "+13125550199")


# Errors


def test_all_errors_collected() -> None:
    data = base()
    data["account"]["time_zone"] = "Mars/Olympus"
    data["members"][1]["phones"]["voice"] = "555-0105"
    data["pools"][0]["members"].append("zed")
    data["routes"][1]["pool"] = "day"
    errors = errors_of(data)
    assert len(errors) == 4
    assert any(
        error.startswith("account.time_zone: unknown time zone 'Mars/Olympus'") for error in errors
    )
    assert "members[1].phones.voice: '555-0105' needs an area code" in errors
    assert "pools[0].members[3]: unknown member 'zed'" in errors
    assert "routes[1].pool: unknown pool 'day'" in errors


def test_error_message_lists_errors() -> None:
    data = base()
    data["account"]["time_zone"] = "Nowhere"
    with pytest.raises(
        ProfileError, match=r"1 error\(s\):\n  account.time_zone: unknown time zone"
    ):
        load_profile_dict(data)


def test_member_phone_error_path() -> None:
    data = base()
    data["members"].append({"key": "erin", "name": "Erin", "phones": {"sms": "555-0105"}})
    data["pools"][0]["members"].append("erin")
    assert errors_of(data) == ["members[3].phones.sms: '555-0105' needs an area code"]


def test_unknown_member_in_pool() -> None:
    data = base()
    data["pools"].append({"key": "day", "members": ["alice", "carol", "bob2"]})
    assert "pools[1].members[2]: unknown member 'bob2'" in errors_of(data)


def test_duplicate_number_across_members() -> None:
    data = base()
    data["members"][1]["phones"]["voice"] = "3125550101"
    errors = errors_of(data)
    assert len(errors) == 1
    assert errors[0].startswith("members[1].phones.voice: +13125550101 is already 'alice'")


def test_same_number_both_channels_allowed() -> None:
    data = base()
    data["members"][1]["phones"]["sms"] = "(312) 555-0102"
    load_ok(data)


def test_member_needs_a_phone() -> None:
    data = base()
    data["members"][2]["phones"] = {}
    assert errors_of(data) == ["members[2].phones: give a voice number, an sms number or both"]


def test_unknown_references() -> None:
    data = base()
    data["routes"][1]["backups"] = ["dave"]
    data["routes"][2]["message_pool"] = "office"
    data["schedule"]["shifts"][0]["member"] = "al"
    data["schedule"]["overrides"] = [
        {
            "member": "bobby",
            "start": "2025-06-10T17:00",
            "end": "2025-06-11T08:00",
            "on_call": False,
        }
    ]
    data["schedule"]["holidays"] = [
        {"date": "2025-12-25", "name": "Christmas Day", "on_call": ["carl"]}
    ]
    assert set(errors_of(data)) == {
        "routes[1].backups[0]: unknown member 'dave'",
        "routes[2].message_pool: unknown pool 'office'",
        "schedule.shifts[0].member: unknown member 'al'",
        "schedule.overrides[0].member: unknown member 'bobby'",
        "schedule.holidays[0].on_call[0]: unknown member 'carl'",
    }


def test_invalid_member_still_known() -> None:
    data = base()
    data["members"][0]["phones"]["voice"] = "nope"
    errors = errors_of(data)
    assert errors == ["members[0].phones.voice: 'nope' is not a phone number"]


def test_unknown_time_zone() -> None:
    data = base()
    data["account"]["time_zone"] = "America/Chicagoo"
    assert errors_of(data) == [
        "account.time_zone: unknown time zone 'America/Chicagoo';"
        " use an IANA name such as America/Chicago"
    ]


def test_overlapping_shifts_same_member() -> None:
    data = base()
    data["schedule"]["shifts"].append(
        {"member": "alice", "days": ["tue"], "start": "06:00", "end": "09:00"}
    )
    errors = errors_of(data)
    assert len(errors) == 1
    assert errors[0].startswith("schedule.shifts[3]: overlaps schedule.shifts[0] for 'alice'")


def test_overlap_across_week_end() -> None:
    data = base()
    data["schedule"]["shifts"].append(
        {"member": "carol", "days": ["sun"], "start": "22:00", "end": "02:00"}
    )
    data["schedule"]["shifts"].append(
        {"member": "carol", "days": ["mon"], "start": "01:00", "end": "03:00"}
    )
    assert errors_of(data) == [
        "schedule.shifts[4]: overlaps schedule.shifts[3] for 'carol' around mon"
    ]


def test_adjacent_shifts_do_not_overlap() -> None:
    data = base()
    data["schedule"]["shifts"].append(
        {"member": "alice", "days": ["tue"], "start": "08:00", "end": "17:00"}
    )
    load_ok(data)


def test_zero_length_shift() -> None:
    data = base()
    data["schedule"]["shifts"][2] = {
        "member": "carol",
        "days": ["wed"],
        "start": "08:00",
        "end": "08:00",
    }
    assert errors_of(data) == ["schedule.shifts[2]: starts and ends at 08:00, so it has no length"]


def test_shift_time_format() -> None:
    data = base()
    data["schedule"]["shifts"][2]["start"] = "25:00"
    data["schedule"]["shifts"][2]["end"] = "5pm"
    assert errors_of(data) == [
        "schedule.shifts[2].start: '25:00' is not a time of day between 00:00 and 24:00",
        'schedule.shifts[2].end: \'5pm\' is not a time; write it as "HH:MM", e.g. "17:00"',
    ]


def test_override_end_before_start() -> None:
    data = base()
    data["schedule"]["overrides"] = [
        {"member": "bob", "start": "2025-06-11T08:00", "end": "2025-06-10T17:00", "on_call": True}
    ]
    assert errors_of(data) == ["schedule.overrides[0].end: must be after start"]


def test_override_with_offset_rejected() -> None:
    data = base()
    data["schedule"]["overrides"] = [
        {"member": "bob", "start": "2025-06-10T17:00Z", "end": "2025-06-11T08:00", "on_call": True}
    ]
    errors = errors_of(data)
    assert len(errors) == 1
    assert errors[0].startswith("schedule.overrides[0].start: '2025-06-10T17:00Z' has a UTC offset")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ring_timeout_seconds", 9, "greater than or equal to 10"),
        ("ring_timeout_seconds", 61, "less than or equal to 60"),
        ("ack_window_voice_seconds", 3601, "less than or equal to 3600"),
        ("ack_window_sms_seconds", 29, "greater than or equal to 30"),
        ("ack_window_sms_seconds", 3601, "less than or equal to 3600"),
        ("rounds", 0, "greater than or equal to 1"),
        ("rounds", 11, "less than or equal to 10"),
        ("max_chain_minutes", 0, "greater than or equal to 1"),
        ("max_chain_minutes", 121, "less than or equal to 120"),
    ],
)
def test_route_limits(field: str, value: int, message: str) -> None:
    data = base()
    data["routes"][1][field] = value
    errors = errors_of(data)
    assert len(errors) == 1
    assert errors[0].startswith(f"routes[1].{field}: ")
    assert message in errors[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ring_timeout_seconds", 10),
        ("ring_timeout_seconds", 60),
        ("ack_window_sms_seconds", 30),
        ("ack_window_sms_seconds", 3600),
        ("ack_window_voice_seconds", 3600),
        ("rounds", 1),
        ("rounds", 10),
        ("max_chain_minutes", 1),
        ("max_chain_minutes", 120),
    ],
)
def test_route_limits_inclusive(field: str, value: int) -> None:
    data = base()
    data["routes"][1][field] = value
    load_ok(data)


def test_voice_window_covers_ring() -> None:
    data = base()
    data["routes"][1]["ring_timeout_seconds"] = 40
    data["routes"][1]["ack_window_voice_seconds"] = 59
    assert errors_of(data) == [
        "routes[1].ack_window_voice_seconds: 59 is too short; it must be at least the ring"
        " timeout plus 20 seconds (60)"
    ]
    data["routes"][1]["ack_window_voice_seconds"] = 60
    load_ok(data)


def test_unknown_field_reported() -> None:
    data = base()
    data["members"][0]["phone"] = "+13125550101"
    data["routes"][0]["forward"] = "+13125550180"
    data["extra"] = 1
    errors = errors_of(data)
    assert "members[0].phone: unknown field; expected one of: key, name, phones, active" in errors
    assert any(
        error.startswith("routes[0].forward: unknown field; expected one of: key,")
        for error in errors
    )
    assert any(
        error.startswith("extra: unknown field; expected one of: account,") for error in errors
    )


def test_missing_field_reported() -> None:
    data = base()
    del data["account"]["name"]
    assert errors_of(data) == ["account.name: required field is missing"]


@pytest.mark.parametrize(
    ("section", "noun"), [("members", "member"), ("pools", "pool"), ("routes", "route")]
)
def test_duplicate_keys(section: str, noun: str) -> None:
    data = base()
    data[section].append(copy.deepcopy(data[section][0]))
    if section == "members":
        data["members"][-1]["phones"] = {"voice": "(312) 555-0109"}
    index = len(data[section]) - 1
    key = data[section][0]["key"]
    assert f"{section}[{index}].key: duplicate {noun} key '{key}' (also {section}[0])" in errors_of(
        data
    )


def test_page_route_needs_pool() -> None:
    data = base()
    del data["routes"][1]["pool"]
    assert errors_of(data) == ["routes[1].pool: a page route needs a pool"]


def test_forward_route_needs_number() -> None:
    data = base()
    del data["routes"][0]["forward_to"]
    assert errors_of(data) == ["routes[0].forward_to: a forward route needs forward_to"]


def test_menu_digit_must_exist() -> None:
    data = base()
    data["routes"][1]["menu"] = "3"
    assert errors_of(data) == [
        "routes[1].menu: digit '3' is not in caller_script.menu (digits: 1, 2)"
    ]


def test_route_numbers_must_answer() -> None:
    data = base()
    data["routes"][1]["numbers"] = ["+13125550100", "(312) 555-0111"]
    assert errors_of(data) == [
        "routes[1].numbers[1]: +13125550111 is not one of account.answering_numbers"
    ]


def test_invalid_keys_and_sids() -> None:
    data = base()
    data["account"]["key"] = "Test Co"
    data["account"]["twilio"] = {"account_sid": "AC123", "auth_token_env": "lower"}
    errors = errors_of(data)
    assert len(errors) == 3
    assert errors[0].startswith("account.key: 'Test Co' is not valid: use lowercase letters")
    assert errors[1].startswith("account.twilio.account_sid: 'AC123' is not valid")
    assert errors[2].startswith("account.twilio.auth_token_env: 'lower' is not valid")


def test_business_hours_overlap() -> None:
    data = base()
    data["business_hours"]["mon"] = ["08:00-12:00", "11:00-17:00"]
    assert errors_of(data) == ["business_hours.mon[1]: overlaps another range of the same day"]


def test_business_hours_backwards() -> None:
    data = base()
    data["business_hours"]["mon"] = ["17:00-08:00"]
    errors = errors_of(data)
    assert errors == [
        "business_hours.mon[0]: '17:00-08:00' ends before it starts;"
        " business hours cannot cross midnight"
    ]


def test_duplicate_holiday_date() -> None:
    data = base()
    data["schedule"]["holidays"] = [
        {"date": "2025-12-25", "name": "Christmas Day"},
        {"date": "2025-12-25", "name": "Christmas"},
    ]
    assert errors_of(data) == [
        "schedule.holidays[1].date: duplicate holiday date 2025-12-25 (also schedule.holidays[0])"
    ]


def test_not_a_mapping() -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("- just\n- a list\n")
    assert caught.value.errors[0].startswith("document: ")


# Warnings


def test_warns_about_pools() -> None:
    data = base()
    data["pools"].append({"key": "empty", "members": []})
    data["pools"].append({"key": "solo", "members": ["alice"]})
    data["routes"][2]["message_pool"] = "empty"
    data["routes"].append({"key": "solo", "when": ["holiday"], "action": "page", "pool": "solo"})
    warnings = load_ok(data).warnings
    assert "pools[1]: pool 'empty' is empty, so routes to it reach nobody" in warnings
    assert "pools[2]: pool 'solo' has one member, so every round offers the same person" in warnings


def test_warns_members_without_shifts() -> None:
    data = base()
    data["schedule"]["shifts"].pop()
    assert load_ok(data).warnings == [
        "members[2]: 'carol' has no shifts, so is on call at all times"
    ]


def test_warns_when_no_shifts() -> None:
    data = base()
    data["schedule"]["shifts"] = []
    assert load_ok(data).warnings == [
        "schedule.shifts: no shifts, so every member is on call at all times"
    ]


def test_warns_member_never_paged() -> None:
    data = base()
    data["members"].append({"key": "dave", "name": "Dave", "phones": {"voice": "3125550104"}})
    data["schedule"]["shifts"].append(
        {"member": "dave", "days": ["thu"], "start": "09:00", "end": "17:00"}
    )
    assert load_ok(data).warnings == [
        "members[3]: 'dave' is in no pool and no backups, so is never paged"
    ]


def test_warns_without_final_escalation() -> None:
    data = base()
    del data["account"]["final_escalation"]
    assert load_ok(data).warnings == [
        "account.final_escalation: not set, so the service-wide OPERATOR_DESK_NUMBER is the final"
        " escalation line"
    ]


def test_warns_shadowed_route() -> None:
    data = base()
    data["routes"].append({"key": "late", "when": ["holiday"], "action": "page", "pool": "night"})
    data["schedule"]["holidays"] = [{"date": "2025-12-25", "name": "Christmas Day"}]
    assert load_ok(data).warnings == [
        "routes[3]: route 'late' never applies: earlier routes match first"
    ]


def test_menu_route_after_catch_all() -> None:
    data = base()
    data["routes"][1], data["routes"][2] = data["routes"][2], data["routes"][1]
    assert load_ok(data).warnings == [
        "routes[2]: route 'emergency' never applies: earlier routes match first"
    ]


def test_warns_route_window_never_occurs() -> None:
    data = base()
    data["routes"].append({"key": "xmas", "when": ["holiday"], "action": "page", "pool": "night"})
    assert load_ok(data).warnings == [
        "routes[3]: route 'xmas' never applies: its windows never occur in this profile"
    ]


def test_warns_texts_without_route() -> None:
    data = base()
    data["routes"][2]["menu"] = "2"
    warnings = load_ok(data).warnings
    prefix = "routes: texts, and calls without a menu choice, to"
    assert warnings == [
        f"{prefix} +13125550100 match no route during after_hours",
        f"{prefix} +13125550199 match no route during after_hours",
    ]


# YAML


def test_unquoted_times_and_numbers() -> None:
    text = dump_profile_yaml(load_ok(base()).profile)
    text = (
        text.replace('"17:00"', "17:00")
        .replace('"08:00"', "8:00")
        .replace('"+13125550100"', "+13125550100")
    )
    profile = load_profile(text).profile
    assert profile.schedule.shifts[0].start == "17:00"
    assert profile.schedule.shifts[0].end == "08:00"
    assert profile.account.answering_numbers[0] == "+13125550100"


def test_unquoted_menu_digit() -> None:
    text = dump_profile_yaml(load_ok(base()).profile).replace('menu: "1"', "menu: 1")
    assert "menu: 1\n" in text
    assert load_profile(text).profile.route("emergency").menu == "1"


def test_repeated_yaml_key_rejected() -> None:
    text = "account:\n  key: a\n  key: b\n"
    with pytest.raises(ProfileError) as caught:
        load_profile(text)
    assert caught.value.errors == ["line 3, column 3: key 'key' appears twice in one mapping"]


def test_yaml_syntax_error() -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("account: [unclosed\n")
    assert caught.value.errors[0].startswith("line ")


def test_empty_document() -> None:
    with pytest.raises(ProfileError, match="the profile is empty"):
        load_profile("")


@pytest.mark.parametrize("name", ["acme-plumbing.yaml", "riverside-medical.yaml"])
def test_dump_round_trips(name: str) -> None:
    profile = load_profile((EXAMPLES / name).read_text()).profile
    dumped = dump_profile_yaml(profile)
    assert load_profile(dumped).profile == profile
    assert dump_profile_yaml(load_profile(dumped).profile) == dumped


def test_canonical_json_ignores_layout() -> None:
    data = base()
    reordered = dict(reversed(list(base().items())))
    reordered["members"][0]["phones"]["voice"] = "+1 312 555 0101"
    first = canonical_json(load_ok(data).profile)
    assert first == canonical_json(load_ok(reordered).profile)
    assert json.loads(first)["account"]["key"] == "test-co"


def test_canonical_json_sees_changes() -> None:
    data = base()
    data["routes"][1]["rounds"] = 3
    assert canonical_json(load_ok(data).profile) != canonical_json(load_ok(base()).profile)


def test_diff_shows_changed_line() -> None:
    old = dump_profile_yaml(load_ok(base()).profile)
    new = old.replace("rounds: 2", "rounds: 3", 1)
    diff = diff_profiles(old, new)
    assert "-  rounds: 2\n" in diff
    assert "+  rounds: 3\n" in diff
    assert diff_profiles(old, old) == ""


def test_diff_from_nothing() -> None:
    new = dump_profile_yaml(load_ok(base()).profile)
    diff = diff_profiles("", new)
    assert diff.startswith("--- old\n+++ new\n")
    assert "+  key: test-co\n" in diff


def test_malformed_section_no_cascade() -> None:
    data = base()
    data["members"] = {"alice": {}}
    data["routes"][0]["when"] = []
    data["account"]["answering_numbers"] = []
    assert errors_of(data) == [
        "account.answering_numbers: must list at least 1 item(s)",
        "members: must be a list",
        "routes[0].when: must list at least 1 item(s)",
    ]
