"""Phone number parsing, withheld caller IDs and masking for logs.

Every number the service stores or compares is E.164 (``+13125550101``). Roster entries are
parsed strictly and rejected with a message naming the value. Inbound ``From`` fields are parsed
leniently, because carriers send placeholders for withheld caller IDs.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

DEFAULT_REGION = "US"

WITHHELD_WORDS = frozenset({"anonymous", "restricted", "unknown", "private", "unavailable"})

# Carriers put these in From when the caller withholds their number. Some parse as
# foreign numbers, so they must never be shown or dialled as a callback number.
WITHHELD_PLACEHOLDERS = frozenset(
    {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"}
)

_LENGTH_PROBLEMS = {
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "needs an area code",
    ValidationResult.TOO_SHORT: "is too short to be a phone number",
    ValidationResult.TOO_LONG: "is too long to be a phone number",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
    ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
}


class PhoneNumberError(ValueError):
    """A phone number that cannot be stored as E.164."""


def normalize_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """Parse a number as typed by a person and return it as E.164.

    National numbers are read in ``region``. A leading space where a ``+`` was lost in form
    decoding (`` 13125550103``) still gives ``+13125550103``: the plus is restored when the
    digits are not a valid number of ``region`` without it. Raises PhoneNumberError with a
    message that names the value and what is wrong with it.
    """
    text = raw.strip()
    if not text:
        raise PhoneNumberError("phone number is empty")

    number = _parse(text, region, raw)
    if not phonenumbers.is_valid_number(number) and _lost_plus(raw):
        number = _parse("+" + text, region, raw)

    _check_dialable(number, raw)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_sender(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """Return an inbound ``From`` value as E.164, or None when it is withheld or invalid."""
    if raw is None or _is_placeholder(raw):
        return None
    try:
        number = normalize_e164(raw, region)
    except PhoneNumberError:
        return None
    if number in WITHHELD_PLACEHOLDERS:
        return None
    return number


def is_withheld(raw: str | None) -> bool:
    """Return whether a caller ID is withheld: a placeholder word or number, empty, or invalid."""
    return normalize_sender(raw) is None


def mask(number: str | None) -> str:
    """Return a number as ``***0101`` for logs, or ``withheld`` when there is no valid number."""
    normalized = normalize_sender(number)
    if normalized is None:
        return "withheld"
    return "***" + normalized[-4:]


def _parse(text: str, region: str, raw: str) -> PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneNumberError(f"{raw.strip()!r} is not a phone number") from exc


def _lost_plus(raw: str) -> bool:
    """Return whether ``raw`` looks like an international number whose ``+`` became a space."""
    return raw[:1].isspace() and raw.strip()[:1].isdigit()


def _check_dialable(number: PhoneNumber, raw: str) -> None:
    quoted = repr(raw.strip())
    if number.extension:
        raise PhoneNumberError(f"{quoted} has an extension, which cannot be dialled; remove it")

    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in _LENGTH_PROBLEMS:
        raise PhoneNumberError(f"{quoted} {_LENGTH_PROBLEMS[reason]}")

    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberError(f"{quoted} is not a valid phone number")


def _is_placeholder(raw: str) -> bool:
    text = raw.strip()
    if not text or text.casefold() in WITHHELD_WORDS:
        return True
    if not (text.startswith("+") or _lost_plus(raw)):
        # Without a plus these digits can be a real national number: 737-874-2833 is in Texas.
        return False
    digits = "".join(ch for ch in text if ch.isdigit())
    return "+" + digits in WITHHELD_PLACEHOLDERS
