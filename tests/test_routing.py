from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatch.profile import Profile, load_profile
from dispatch.routing import match_route, needs_menu

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MAIN = "+13125550100"
TEXT_LINE = "+13125550199"

# Times in Chicago (CDT, UTC-5, in June; CST, UTC-6, in December).
TUESDAY_NOON = datetime(2025, 6, 10, 17, tzinfo=UTC)
TUESDAY_NIGHT = datetime(2025, 6, 11, 4, tzinfo=UTC)
CHRISTMAS_NOON = datetime(2025, 12, 25, 18, tzinfo=UTC)


@pytest.fixture(scope="module")
def acme() -> Profile:
    return load_profile((EXAMPLES / "acme-plumbing.yaml").read_text()).profile


def key_of(profile: Profile, to: str, at: datetime, channel: str, menu: str | None) -> str | None:
    route = match_route(profile, to, at, channel, menu)
    return route.key if route else None


def test_business_hours_forward(acme: Profile) -> None:
    assert key_of(acme, MAIN, TUESDAY_NOON, "voice", None) == "office-hours"
    assert key_of(acme, MAIN, TUESDAY_NOON, "sms", None) == "office-hours"
    assert not needs_menu(acme, MAIN, TUESDAY_NOON)


def test_after_hours_menu(acme: Profile) -> None:
    assert needs_menu(acme, MAIN, TUESDAY_NIGHT)
    assert key_of(acme, MAIN, TUESDAY_NIGHT, "voice", "1") == "emergency"
    assert key_of(acme, MAIN, TUESDAY_NIGHT, "voice", "2") == "take-a-message"


def test_no_choice_skips_menu_routes(acme: Profile) -> None:
    assert key_of(acme, MAIN, TUESDAY_NIGHT, "voice", None) == "after-hours-default"
    assert key_of(acme, MAIN, TUESDAY_NIGHT, "voice", "7") == "after-hours-default"


def test_texts_skip_menu_routes(acme: Profile) -> None:
    assert key_of(acme, TEXT_LINE, TUESDAY_NIGHT, "sms", None) == "after-hours-default"
    assert key_of(acme, TEXT_LINE, TUESDAY_NIGHT, "sms", "1") == "after-hours-default"


def test_holiday_is_after_hours(acme: Profile) -> None:
    assert key_of(acme, MAIN, CHRISTMAS_NOON, "voice", "1") == "emergency"
    assert needs_menu(acme, MAIN, CHRISTMAS_NOON)


def test_unknown_number_matches_nothing(acme: Profile) -> None:
    assert match_route(acme, "+13125550111", TUESDAY_NIGHT, "voice", "1") is None
    assert not needs_menu(acme, "+13125550111", TUESDAY_NIGHT)
    assert match_route(acme, "Anonymous", TUESDAY_NIGHT, "voice", "1") is None


def test_number_in_other_format(acme: Profile) -> None:
    assert key_of(acme, " 13125550100", TUESDAY_NIGHT, "voice", "1") == "emergency"


def test_unknown_channel_rejected(acme: Profile) -> None:
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        match_route(acme, MAIN, TUESDAY_NIGHT, "fax", None)


def test_naive_time_rejected(acme: Profile) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        match_route(acme, MAIN, datetime(2025, 6, 10, 12), "voice", None)


PER_NUMBER = """
account:
  key: two-lines
  name: Two Lines
  time_zone: Europe/Berlin
  answering_numbers: ["+13125550100", "+13125550199"]
  final_escalation: "+13125550190"
caller_script:
  greeting: Hello.
  menu: [{digit: "1", label: sales}]
members:
  - {key: ann, name: Ann, phones: {voice: "+13125550101"}}
pools:
  - {key: sales, members: [ann]}
routes:
  - {key: sales-line, numbers: ["+13125550199"], menu: "1", action: page, pool: sales}
  - {key: main, numbers: ["+13125550100"], when: [always], action: page, pool: sales}
  - {key: sales-default, when: [always], action: forward, forward_to: "+13125550180"}
"""


def test_route_numbers_filter() -> None:
    profile = load_profile(PER_NUMBER).profile
    at = datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert key_of(profile, "+13125550199", at, "voice", "1") == "sales-line"
    assert key_of(profile, "+13125550100", at, "voice", "1") == "main"
    assert key_of(profile, "+13125550199", at, "sms", None) == "sales-default"
    assert needs_menu(profile, "+13125550199", at)
    assert not needs_menu(profile, "+13125550100", at)
