"""Filters of the dispatch list, shared by the admin pages, the JSON API and the CSV export.

Query parameters: ``account`` (key), ``from`` and ``to`` (dates, inclusive, in each account's
own time zone), ``status``, ``route``, ``member`` (a member key that was offered the
dispatch), ``caller`` (a phone number, or ``withheld``), ``limit`` and ``cursor``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from admin.timefmt import zone
from dispatch.models import DispatchState
from dispatch.phones import PhoneNumberError, normalize_e164

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
CURSOR_PATTERN = re.compile(r"(\d{1,19})\.(\d{1,10})")
WITHHELD = "withheld"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_YEAR = 1970
MAX_YEAR = 9998


class FilterError(ValueError):
    """A malformed filter; ``field`` names the query parameter."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"invalid filter {field!r}: {message}")


@dataclass(frozen=True)
class Cursor:
    """The position after the last row shown: rows older than (created_at, id) come next."""

    created_at: datetime
    dispatch_id: int

    def encode(self) -> str:
        micros = (self.created_at - EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.dispatch_id}"


@dataclass(frozen=True)
class DispatchFilter:
    account: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    status: DispatchState | None = None
    route: str | None = None
    member: str | None = None
    caller: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None

    def query_args(self, *, with_cursor: bool = False) -> dict[str, str]:
        """Return the filter as query parameters, for links to the next page or the CSV."""
        args = {
            "account": self.account,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "status": self.status.value if self.status else None,
            "route": self.route,
            "member": self.member,
            "caller": self.caller,
        }
        if self.limit != DEFAULT_LIMIT:
            args["limit"] = str(self.limit)
        if with_cursor and self.cursor is not None:
            args["cursor"] = self.cursor.encode()
        return {name: value for name, value in args.items() if value}

    def after(self, cursor: Cursor | None) -> DispatchFilter:
        return replace(self, cursor=cursor)


def parse_filters(args: Mapping[str, str]) -> DispatchFilter:
    """Parse list filters from query parameters; raise FilterError naming a malformed one."""
    date_from = _date(args, "from")
    date_to = _date(args, "to")
    if date_from and date_to and date_to < date_from:
        raise FilterError("to", f"{date_to} is before from={date_from}")

    return DispatchFilter(
        account=_key(args, "account"),
        date_from=date_from,
        date_to=date_to,
        status=_status(args),
        route=_key(args, "route"),
        member=_key(args, "member"),
        caller=_caller(args),
        limit=_limit(args),
        cursor=_cursor(args),
    )


def day_bounds(first: date | None, last: date | None, time_zone: str) -> tuple[
    datetime | None, datetime | None
]:
    """Return the UTC instants that start ``first`` and end ``last`` in ``time_zone``."""
    tz = zone(time_zone)
    start = datetime.combine(first, time.min, tz).astimezone(UTC) if first else None
    end = (
        datetime.combine(last + timedelta(days=1), time.min, tz).astimezone(UTC) if last else None
    )
    return start, end


def _value(args: Mapping[str, str], name: str) -> str | None:
    raw = args.get(name)
    if raw is None:
        return None
    text = raw.strip()
    return text or None


def _key(args: Mapping[str, str], name: str) -> str | None:
    text = _value(args, name)
    if text is None:
        return None
    if not KEY_PATTERN.fullmatch(text):
        raise FilterError(
            name, f"{text[:80]!r} is not a key: use lowercase letters, digits and hyphens"
        )
    return text


def _date(args: Mapping[str, str], name: str) -> date | None:
    text = _value(args, name)
    if text is None:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise FilterError(name, f"{text[:40]!r} is not a date; use YYYY-MM-DD") from None
    # Day bounds are shifted by a day and a time zone, which overflows at the ends of the calendar.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise FilterError(name, f"{text} is out of range; use a year from {MIN_YEAR} to {MAX_YEAR}")
    return value


def _status(args: Mapping[str, str]) -> DispatchState | None:
    text = _value(args, "status")
    if text is None:
        return None
    try:
        return DispatchState(text)
    except ValueError:
        allowed = ", ".join(state.value for state in DispatchState)
        message = f"{text[:40]!r} is not a status; use one of {allowed}"
        raise FilterError("status", message) from None


def _caller(args: Mapping[str, str]) -> str | None:
    text = _value(args, "caller")
    if text is None:
        return None
    if text.casefold() == WITHHELD:
        return WITHHELD
    try:
        return normalize_e164(text)
    except PhoneNumberError as exc:
        raise FilterError("caller", f"{exc}; use a phone number or 'withheld'") from None


def _limit(args: Mapping[str, str]) -> int:
    text = _value(args, "limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise FilterError("limit", f"{text[:20]!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _cursor(args: Mapping[str, str]) -> Cursor | None:
    text = _value(args, "cursor")
    if text is None:
        return None
    match = CURSOR_PATTERN.fullmatch(text)
    if match is None:
        raise FilterError("cursor", f"{text[:40]!r} is not a cursor from a previous page")
    try:
        created = EPOCH + timedelta(microseconds=int(match[1]))
    except OverflowError:
        raise FilterError("cursor", f"{text[:40]!r} is out of range") from None
    return Cursor(created, int(match[2]))
