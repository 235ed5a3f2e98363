"""A whole service on loopback for scenario tests: the app, fake_twilio, RQ and the reconciler.

The app and fake_twilio each serve HTTP on a free 127.0.0.1 port, so every request goes through
the real twilio library, real signatures and real Flask routing. Jobs run in this process with
RQ's SimpleWorker on real Redis; the clock is a frozen RedisClock that the test moves forward.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis
import yaml
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from app import create_app
from dispatch.clock import RedisClock
from dispatch.models import Dispatch, Event, Offer
from dispatch.store import import_profile
from fake_twilio import FakeTwilio, start_in_thread
from jobs.reconciler import TickReport, reconcile_once
from jobs.runtime import Runtime

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
PUBLIC_BASE = "https://dispatch.example.org"
ANS = "+13125550100"
ANS2 = "+13125550199"
SERVICE_SID = "MG" + "0" * 30 + "01"
A, B, C, D = "+13125550101", "+13125550102", "+13125550103", "+13125550104"
CUSTOMER, CUSTOMER2, STRANGER = "+13125550150", "+13125550151", "+13125550177"
DESK = "+13125550900"

BASE_PROFILE: dict[str, Any] = {
    "account": {
        "key": "acme",
        "name": "Acme Plumbing",
        "time_zone": "America/Chicago",
        "answering_numbers": [ANS, ANS2],
        "twilio": {"messaging_service_sid": SERVICE_SID},
        "promised_response_minutes": 15,
    },
    "caller_script": {
        "greeting": "Thank you for calling Acme Plumbing.",
        "reason_prompt": "Please tell us what is wrong.",
    },
    "members": [
        {"key": "a", "name": "Alice", "phones": {"voice": A, "sms": A}},
        {"key": "b", "name": "Bob", "phones": {"voice": B, "sms": B}},
        {"key": "c", "name": "Carol", "phones": {"voice": C, "sms": C}},
        {"key": "d", "name": "Dave", "phones": {"voice": D, "sms": D}},
    ],
    "pools": [{"key": "techs", "members": ["a", "b", "c"]}],
    "routes": [
        {
            "key": "emergency",
            "action": "page",
            "pool": "techs",
            "channels": ["sms"],
            "ack_window_voice_seconds": 120,
            "ack_window_sms_seconds": 120,
            "rounds": 2,
        }
    ],
}


def profile_yaml(**changes: Any) -> str:
    """Return the base test profile with top-level or route changes applied.

    ``route`` updates the first route, ``account`` updates the account block, and any other
    key replaces that top-level section.
    """
    document = copy.deepcopy(BASE_PROFILE)
    for key, value in changes.items():
        if key == "route":
            document["routes"][0].update(value)
        elif key == "account":
            document["account"].update(value)
        else:
            document[key] = value
    return yaml.safe_dump(document, sort_keys=False)


class BurstWorker(SimpleWorker):
    """A SimpleWorker without the command pub/sub channel, which tests never use; stopping its
    listener thread can block for a minute on some Redis client versions."""

    def subscribe(self) -> None:
        return None

    def unsubscribe(self) -> None:
        return None


class Harness:
    def __init__(
        self,
        db_url: str,
        redis_client: redis.Redis,
        prefix: str,
        *,
        desk: str | None = DESK,
        start: datetime | None = None,
        extra_settings: dict[str, Any] | None = None,
    ) -> None:
        from tests.conftest import REDIS_URL, T0

        self.redis = redis_client
        self.clock = RedisClock(redis_client, f"{prefix}:clock")
        self.clock.freeze(start or T0)
        self.fake = FakeTwilio(
            self.clock,
            {ACCOUNT_SID: AUTH_TOKEN},
            webhook_target=None,
            numbers={
                number: {
                    "voice_url": f"{PUBLIC_BASE}/twilio/voice",
                    "sms_url": f"{PUBLIC_BASE}/twilio/sms",
                    "status_callback": f"{PUBLIC_BASE}/twilio/voice/status",
                    "account_sid": ACCOUNT_SID,
                }
                for number in (ANS, ANS2)
            },
        )
        self._fake_server, self.fake_url = start_in_thread(self.fake)
        settings = {
            "TESTING": True,
            "DATABASE_URL": db_url,
            "REDIS_URL": REDIS_URL,
            "QUEUE_NAME": f"{prefix}:queue",
            "CLOCK": "redis",
            "CLOCK_KEY": f"{prefix}:clock",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": self.fake_url,
            "PUBLIC_BASE_URL": PUBLIC_BASE,
            "OPERATOR_DESK_NUMBER": desk or "",
            "SECRET_KEY": "s" * 32,
            "CALLS_PER_SECOND": 1000,
            **(extra_settings or {}),
        }
        self.app = create_app(settings)
        self.runtime: Runtime = self.app.extensions["rrd"]
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.app_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        self.fake.sender.webhook_target = self.app_url

    def close(self) -> None:
        self._server.shutdown()
        self._fake_server.shutdown()
        self.runtime.db.dispose()

    # -- setup -------------------------------------------------------------------------

    def load_profile(self, text: str | None = None, **changes: Any) -> int:
        body = text if text is not None else profile_yaml(**changes)
        with self.runtime.db.write("test import") as session:
            result = import_profile(
                session, body, author="test", reason="test", now=self.clock.now()
            )
        return result.version

    def set_pointer(
        self,
        pool_key: str,
        member_key: str | None,
        position: int | None = None,
        account_key: str = "acme",
    ) -> None:
        from dispatch.models import Account, PoolState

        with self.runtime.db.write("test pointer") as session:
            account = session.execute(
                select(Account).where(Account.key == account_key)
            ).scalar_one()
            state = session.execute(
                select(PoolState).where(
                    PoolState.account_id == account.id, PoolState.pool_key == pool_key
                )
            ).scalar_one_or_none()
            if state is None:
                state = PoolState(
                    account_id=account.id,
                    pool_key=pool_key,
                    offers_made=0,
                    updated_at=self.clock.now(),
                )
                session.add(state)
            state.last_member_key = member_key
            state.last_position = position

    # -- driving time and work -----------------------------------------------------------

    def run_jobs(self) -> None:
        """Run every job queued now (not the scheduled ones), and fake_twilio's due work."""
        for _ in range(20):
            self.fake.run_pending()
            if self.runtime.queue.count == 0:
                break
            worker = BurstWorker(
                [self.runtime.queue], connection=self.redis, serializer=JSONSerializer
            )
            worker.work(burst=True, with_scheduler=False)
        self.fake.run_pending()

    def tick(self) -> TickReport:
        report = reconcile_once(self.runtime)
        self.run_jobs()
        return report

    def advance(self, seconds: float) -> TickReport:
        self.clock.advance(seconds)
        self.fake.run_pending()
        return self.tick()

    # -- reading state -----------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.runtime.db.read() as session:
            yield session

    def dispatch(self, dispatch_id: int | None = None) -> Dispatch:
        with self.session() as session:
            query = select(Dispatch).order_by(Dispatch.id.desc())
            if dispatch_id is not None:
                query = select(Dispatch).where(Dispatch.id == dispatch_id)
            dispatch = session.execute(query.limit(1)).scalar_one()
            for offer in dispatch.offers:
                _ = offer.channels
            return dispatch

    def dispatches(self) -> list[Dispatch]:
        with self.session() as session:
            return list(session.execute(select(Dispatch).order_by(Dispatch.id)).scalars())

    def offers(self, dispatch_id: int | None = None) -> list[Offer]:
        dispatch = self.dispatch(dispatch_id)
        return list(dispatch.offers)

    def offered_members(self, dispatch_id: int | None = None) -> list[str | None]:
        return [offer.member_key for offer in self.offers(dispatch_id)]

    def events(self, kind: str | None = None, dispatch_id: int | None = None) -> list[Event]:
        with self.session() as session:
            query = select(Event).order_by(Event.id)
            if kind is not None:
                query = query.where(Event.kind == kind)
            if dispatch_id is not None:
                query = query.where(Event.dispatch_id == dispatch_id)
            return list(session.execute(query).scalars())

    def customer_texts(self, body: str, sender: str = CUSTOMER, to: str = ANS, **extra: str) -> Any:
        response = self.fake.phone(sender).send_sms(to, body, **extra)
        self.run_jobs()
        return response
