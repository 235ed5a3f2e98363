"""One source of time for every process: the app, the worker, the reconciler and fake_twilio.

Production uses ``SystemClock``. Tests and the demo use ``RedisClock``, whose state lives in
one Redis key so that separate processes agree on "now": either a frozen instant or an offset
in seconds added to the real clock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """An in-memory clock for pure unit tests; ``advance`` moves it forward."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def advance(self, seconds: float) -> datetime:
        self._at += timedelta(seconds=seconds)
        return self._at


class RedisClock:
    """A clock shared by processes through one Redis key.

    The key holds JSON: ``{"frozen": "<ISO instant>"}`` or ``{"offset": <seconds>}``.
    With no key the clock reads the real time.
    """

    def __init__(self, client: redis.Redis, key: str = "rrd:clock") -> None:
        self._redis = client
        self._key = key

    def now(self) -> datetime:
        raw = self._redis.get(self._key)
        real = datetime.now(UTC)
        if raw is None:
            return real
        state = json.loads(raw)
        if "frozen" in state:
            return datetime.fromisoformat(state["frozen"]).astimezone(UTC)
        return real + timedelta(seconds=float(state.get("offset", 0.0)))

    def freeze(self, at: datetime) -> None:
        self._redis.set(self._key, json.dumps({"frozen": ensure_utc(at).isoformat()}))

    def advance(self, seconds: float) -> datetime:
        """Move a frozen clock forward, or grow the offset of a running one."""
        raw = self._redis.get(self._key)
        state = json.loads(raw) if raw else {"offset": 0.0}
        if "frozen" in state:
            at = datetime.fromisoformat(str(state["frozen"])) + timedelta(seconds=seconds)
            self.freeze(at)
            return at.astimezone(UTC)
        state["offset"] = float(state.get("offset", 0.0)) + seconds
        self._redis.set(self._key, json.dumps(state))
        return self.now()

    def reset(self) -> None:
        self._redis.delete(self._key)


def ensure_utc(at: datetime) -> datetime:
    """Return ``at`` in UTC; a naive datetime is rejected because its zone is a guess."""
    if at.tzinfo is None:
        raise ValueError(
            f"naive datetime {at.isoformat()} has no time zone; pass an aware UTC datetime"
        )
    return at.astimezone(UTC)
