"""Failed-login counting in Redis, per email and per client address."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis

logger = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True)
class LoginLimiter:
    """Blocks logins for an email or an address after ``MAX_FAILURES`` failures in the window.

    Keys expire ``WINDOW_SECONDS`` after the first failure of a window. When Redis cannot be
    reached, logins are allowed and the error is logged, so a Redis outage does not lock every
    admin out.
    """

    client: redis.Redis
    prefix: str

    def blocked_for(self, email: str, address: str) -> int:
        """Return the seconds until a login may be tried again, or 0 when it may be tried now."""
        try:
            waits = [self._wait(key) for key in self._keys(email, address)]
        except redis.RedisError as exc:
            logger.warning("login rate limit not checked: Redis error %s", exc)
            return 0
        return max(waits)

    def record_failure(self, email: str, address: str) -> None:
        try:
            pipe = self.client.pipeline()
            for key in self._keys(email, address):
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS, nx=True)
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("failed login not counted: Redis error %s", exc)

    def reset(self, email: str) -> None:
        try:
            self.client.delete(self._email_key(email))
        except redis.RedisError as exc:
            logger.warning("login failure count not reset: Redis error %s", exc)

    def _wait(self, key: str) -> int:
        count = self.client.get(key)
        if count is None or int(count) < MAX_FAILURES:
            return 0
        ttl = int(self.client.ttl(key))
        return max(ttl, 1)

    def _keys(self, email: str, address: str) -> list[str]:
        return [self._email_key(email), f"{self.prefix}:login-fail:addr:{address}"]

    def _email_key(self, email: str) -> str:
        digest = hashlib.sha256(email.casefold().encode()).hexdigest()[:32]
        return f"{self.prefix}:login-fail:email:{digest}"
