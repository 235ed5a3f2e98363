"""Process-wide services for webhooks and jobs: database, Redis, queue, clock, Twilio clients.

A forked RQ work horse must not reuse its parent's database connections, so ``get_runtime``
builds a fresh runtime whenever the process id changes.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from rq import Queue
from rq.serializers import JSONSerializer
from twilio.rest import Client

from dispatch.clock import Clock, RedisClock, SystemClock
from dispatch.db import Database
from dispatch.engine import EngineConfig
from dispatch.models import Account
from dispatch.settings import ConfigurationError, Settings
from jobs.twilio_client import make_twilio_client

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: redis.Redis
    queue: Queue
    clock: Clock
    pid: int = field(default_factory=os.getpid)
    _clients: dict[str, Client] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        database = Database(settings.DATABASE_URL)
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2
        )
        queue = Queue(settings.QUEUE_NAME, connection=client, serializer=JSONSerializer)
        clock: Clock = (
            RedisClock(client, settings.CLOCK_KEY) if settings.CLOCK == "redis" else SystemClock()
        )
        return cls(settings=settings, db=database, redis=client, queue=queue, clock=clock)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            operator_desk=self.settings.OPERATOR_DESK_NUMBER or None,
            late_accept_seconds=self.settings.LATE_ACCEPT_SECONDS,
            followup_seconds=self.settings.FOLLOWUP_SECONDS,
            intake_seconds=self.settings.INTAKE_SECONDS,
            max_dispatches_per_caller_per_hour=self.settings.MAX_DISPATCHES_PER_CALLER_PER_HOUR,
            max_auto_replies_per_sender_per_hour=self.settings.MAX_AUTO_REPLIES_PER_SENDER_PER_HOUR,
        )

    def credentials_for(self, account: Account | None) -> tuple[str, str]:
        """Return the (account SID, auth token) that an account's REST requests use."""
        sid = (account.twilio_account_sid if account else None) or self.settings.TWILIO_ACCOUNT_SID
        token = self.settings.TWILIO_AUTH_TOKEN
        if account is not None and account.auth_token_env:
            token = os.environ.get(account.auth_token_env, "")
            if not token:
                raise ConfigurationError(
                    f"account {account.key}: environment variable {account.auth_token_env} "
                    "(its Twilio subaccount auth token) is not set"
                )
        return sid, token

    def twilio_client(self, account: Account | None) -> Client:
        sid, token = self.credentials_for(account)
        key = f"{sid}:{hash(token)}"
        client = self._clients.get(key)
        if client is None:
            client = make_twilio_client(
                sid,
                token,
                self.settings.TWILIO_API_BASE_URL or None,
                timeout=self.settings.REST_TIMEOUT_SECONDS,
            )
            self._clients[key] = client
        return client

    def public_url(self, path: str) -> str:
        base = self.settings.PUBLIC_BASE_URL.rstrip("/")
        return f"{base}{path}"

    def real_time_for(self, at: datetime) -> datetime:
        """Translate a clock instant into the real time at which RQ's scheduler should act.

        RQ's scheduler reads the real clock and stores whole seconds, so the result is rounded
        up to the next second: a rollover may fire up to a second late, never early.
        """
        delay = (at - self.clock.now()).total_seconds()
        real = datetime.now(at.tzinfo) + timedelta(seconds=max(delay, 0.0))
        whole = math.ceil(real.timestamp())
        return datetime.fromtimestamp(whole, tz=at.tzinfo)


_lock = threading.Lock()
_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = runtime


def get_runtime() -> Runtime:
    """Return this process's runtime, rebuilding it after a fork."""
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.pid == os.getpid():
            return _runtime
        settings = _runtime.settings if _runtime is not None else Settings.load()
        if _runtime is not None:
            # Drop the parent's pooled connections without closing them under the parent.
            _runtime.db.engine.dispose(close=False)
        _runtime = Runtime.build(settings)
        return _runtime
