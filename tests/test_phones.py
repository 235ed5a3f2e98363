import pytest

from dispatch.phones import (
    WITHHELD_PLACEHOLDERS,
    PhoneNumberError,
    is_withheld,
    mask,
    normalize_e164,
    normalize_sender,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(312) 555-0101", "+13125550101"),
        ("312.555.0102", "+13125550102"),
        ("13125550103", "+13125550103"),
        ("+1 312 555 0104", "+13125550104"),
        ("3125550101", "+13125550101"),
        ("+13125550100", "+13125550100"),
        ("+44 20 7183 8750", "+442071838750"),
    ],
)
def test_roster_formats_normalise(raw: str, expected: str) -> None:
    assert normalize_e164(raw) == expected


def test_lost_plus_keeps_country_code() -> None:
    assert normalize_e164(" 13125550103") == "+13125550103"
    assert normalize_e164(" 442071838750") == "+442071838750"


def test_lost_plus_prefers_home_region() -> None:
    # Read with a plus, these digits would also be a valid Swiss number.
    assert normalize_e164(" 4155550103") == "+14155550103"


def test_missing_area_code_rejected() -> None:
    with pytest.raises(PhoneNumberError, match=r"'555-0105' needs an area code"):
        normalize_e164("555-0105")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("call me", "'call me' is not a phone number"),
        ("12345", "'12345'"),
        ("+266696687", "'\\+266696687'"),
        ("+1 312 555 0101 ext. 4", "extension"),
        ("(312) 555-01011234567", "too long"),
    ],
)
def test_invalid_numbers_name_value(raw: str, message: str) -> None:
    with pytest.raises(PhoneNumberError, match=message):
        normalize_e164(raw)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "  ",
        "Anonymous",
        "anonymous",
        "RESTRICTED",
        "Unknown",
        "Private",
        "Unavailable",
        "+266696687",
        "+7378742833",
        "+2562533",
        "+8656696",
        "+86282452253",
        " 266696687",
        "12345",
        "not a number",
    ],
)
def test_withheld_caller_ids(raw: str | None) -> None:
    assert is_withheld(raw)
    assert normalize_sender(raw) is None
    assert mask(raw) == "withheld"


def test_placeholder_list_complete() -> None:
    assert {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"} <= set(
        WITHHELD_PLACEHOLDERS
    )


def test_real_caller_not_withheld() -> None:
    assert not is_withheld("+13125550150")
    assert normalize_sender("+13125550150") == "+13125550150"


def test_placeholder_digits_without_plus() -> None:
    # 737 is a Texas area code, so without a plus these digits are a real US number.
    assert normalize_sender("7378742833") == "+17378742833"


def test_sender_with_lost_plus() -> None:
    assert normalize_sender(" 13125550103") == "+13125550103"


def test_sender_never_raises() -> None:
    for raw in ["", "+", "++1", "\x00", "ä", "+1" + "9" * 40]:
        assert normalize_sender(raw) is None


def test_mask_keeps_last_four() -> None:
    assert mask("+13125550101") == "***0101"
    assert mask("(312) 555-0199") == "***0199"
    assert mask(None) == "withheld"
