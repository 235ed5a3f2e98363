"""Formatting of instants and durations for admin pages, the API and CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None) -> ZoneInfo:
    """Return the time zone ``name``, or UTC when it is unset or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def utc_iso(at: datetime | None) -> str | None:
    """Return an instant as ISO 8601 in UTC with its offset, e.g. ``2025-06-10T15:00:00+00:00``."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="seconds")


def local_iso(at: datetime | None, time_zone: str | None) -> str | None:
    """Return an instant as ISO 8601 in the account's time zone with its offset."""
    if at is None:
        return None
    return at.astimezone(zone(time_zone)).isoformat(timespec="seconds")


def local_text(at: datetime | None, time_zone: str | None) -> str:
    """Return an instant as ``2025-06-10 10:00:00 CDT`` in the account's time zone."""
    if at is None:
        return ""
    return at.astimezone(zone(time_zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_text(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def duration_text(seconds: float | None) -> str:
    """Return a duration as ``42 s``, ``3 min 5 s`` or ``2 h 4 min``; empty for None."""
    if seconds is None:
        return ""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
