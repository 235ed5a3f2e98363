"""SIDs, dates and small parsers shared by the fake's resources."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    """Return a Twilio-style SID: two letters and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(at: datetime | None) -> str | None:
    """Format an instant as Twilio does, e.g. "Thu, 30 Jul 2015 20:12:31 +0000"."""
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def parse_filter_time(value: str) -> datetime:
    """Parse a list filter value: ``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 instant.

    Raises ValueError for anything else.
    """
    text = value.strip()
    if len(text) == 10:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def split_events(values: list[str]) -> list[str]:
    """Flatten StatusCallbackEvent values, which arrive repeated or space-separated."""
    events: list[str] = []
    for value in values:
        events.extend(value.split())
    return events
