"""Run the whole service on loopback against fake_twilio and drive one night of traffic.

``make demo`` runs this script. It starts Redis (when none answers), a fresh SQLite database,
the app under gunicorn and ``flask worker`` as separate processes, and fake_twilio inside this
process, because the driver scripts fake_twilio's phones directly: the standalone
``python -m fake_twilio`` server has no interface to script phones or send inbound traffic.
Every process reads one clock kept in Redis, which the driver moves forward, so a night of
acknowledgement windows passes in about a minute. At the end the script prints each
dispatch's timeline from the event log and stops everything it started.

Usage: ``python scripts/demo.py [--fast] [--dir instance/demo]``. Exit status 0 means every
scene ended as expected. On a failure the script prints the step that failed and the tail of
the relevant log, and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import BaseWSGIServer  # noqa: E402

from dispatch.clock import RedisClock  # noqa: E402
from dispatch.db import Database  # noqa: E402
from dispatch.models import (  # noqa: E402
    ChannelState,
    Dispatch,
    DispatchState,
    Event,
    Offer,
    OfferChannel,
    OfferState,
    OutboxMessage,
    OutboxState,
)
from fake_twilio import FakeTwilio, start_in_thread  # noqa: E402
from fake_twilio.calls import FakeCall  # noqa: E402
from fake_twilio.messages import FakeMessage  # noqa: E402
from fake_twilio.phones import Phone  # noqa: E402
from fake_twilio.scripts import (  # noqa: E402
    Behaviour,
    ReplySms,
    answer_and_press,
    never_reply,
    ring_out,
    voicemail,
)

logger = logging.getLogger(__name__)

PROFILE = ROOT / "examples" / "demo-night.yaml"
FLASK = [sys.executable, "-m", "flask", "--app", "app"]
ZONE = ZoneInfo("America/Chicago")
# Tuesday 22:00 in Chicago: after hours, when the profile's night shifts are on call.
NIGHT_START = datetime(2025, 6, 10, 22, 0, tzinfo=ZONE)

# A fake Twilio account used only by the demo, so its per-account Redis keys collide with nothing.
ACCOUNT_SID = "AC" + "de" * 16
ANSWERING = "+13125550100"
DESK = "+13125550190"
AVA, BEN, DEE, EVE, FAY = (
    "+13125550101", "+13125550102", "+13125550104", "+13125550105", "+13125550106",
)
CUSTOMERS = ("+13125550150", "+13125550151", "+13125550152", "+13125550153")
WITHHELD_CALLBACK = "+13125550160"

PROCESS_STOP_SECONDS = 15
READY_TIMEOUT_SECONDS = 45
LOG_TAIL_LINES = 30
LOG_NAMES = ("driver", "setup", "redis", "app", "worker")
# The twilio library logs each REST request's headers at INFO, which buries the cause.
NOISY_LOGGER = "twilio.http_client"
PHONE_PATTERN = re.compile(r"\+\d{7,15}")


class DemoError(Exception):
    """A demo step failed; ``log`` names the log file whose tail explains it."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Pace:
    """The rate of the shared clock: ``step`` clock seconds every ``pause`` real seconds."""

    step: float
    pause: float
    # Maximum real seconds that one wait may take before the demo reports a failure.
    real_limit: float


# About 20 and 37 times real time. Scripted phones act PHONE_DELAY_SECONDS of clock time after
# their phone rings, so that one step never passes both the ring and the answer: fake_twilio
# would then run the answer inside the ring, before the call is ringing, and the phone would
# never answer.
NORMAL_PACE = Pace(step=2.0, pause=0.1, real_limit=90.0)
FAST_PACE = Pace(step=3.0, pause=0.08, real_limit=90.0)
PHONE_DELAY_SECONDS = 10
# Maximum real seconds that the driver holds the clock while jobs or sends are in flight.
MAX_HOLD_SECONDS = 2.0
SENDING_STATES = (ChannelState.PENDING, ChannelState.SENDING)
OUTBOX_BUSY = (OutboxState.PENDING, OutboxState.SENDING)


# ---------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A child process whose output goes to one log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        logger.info("started %s, pid %d", self.name, self.process.pid)

    def check_running(self) -> None:
        """Raise DemoError if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise DemoError(f"{self.name} exited with status {self.process.returncode}", self.log)

    def stop(self) -> None:
        """Send SIGTERM, then SIGKILL to the process group if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=PROCESS_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %d s; killing it", self.name, PROCESS_STOP_SECONDS)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=PROCESS_STOP_SECONDS)
        logger.info("stopped %s, status %s", self.name, self.process.returncode)


def connect_redis(url: str) -> redis.Redis | None:
    """Return a client for ``url`` if a server responds there, else None."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        return None
    return client


def start_private_redis(log_dir: Path) -> tuple[str, Service]:
    """Start a redis-server on a free loopback port without persistence; return its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise DemoError(
            "no Redis server responds at REDIS_URL and redis-server is not installed; install "
            "it (apt-get install redis-server) or set REDIS_URL to a running server"
        )
    port = free_port()
    service = Service(
        "redis-server",
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(log_dir)],
        log_dir / "redis.log", dict(os.environ),
    )
    service.start()
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while connect_redis(url) is None:
        service.check_running()
        if time.monotonic() > deadline:
            raise DemoError(f"redis-server on port {port} did not respond within 10 s", service.log)
        time.sleep(0.1)
    return url, service


def run_command(name: str, argv: list[str], env: dict[str, str], log: Path) -> str:
    """Run a short command to completion; return its output or raise DemoError."""
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    with log.open("a", encoding="utf-8") as output:
        output.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise DemoError(f"{name} failed with status {result.returncode}", log)
    return result.stdout


def wait_until_ready(app_url: str, services: list[Service]) -> None:
    """Wait until /readyz reports a fresh reconciler heartbeat and a running RQ scheduler."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no answer yet"
    while time.monotonic() < deadline:
        for service in services:
            service.check_running()
        try:
            response = requests.get(f"{app_url}/readyz", timeout=2)
            checks = response.json().get("checks", {})
            if response.status_code == 200 and checks.get("scheduler") == "running":
                return
            last = json.dumps(checks)
        except (requests.RequestException, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise DemoError(f"the service was not ready within {READY_TIMEOUT_SECONDS} s: {last}",
                    services[-1].log)


# ---------------------------------------------------------------------------------------------
# The stack: Redis, database, fake_twilio, app and worker


@dataclass
class Stack:
    """Everything the demo started, so that ``stop`` can undo it in reverse order."""

    directory: Path
    prefix: str
    redis_url: str = ""
    redis: redis.Redis | None = None
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    fake: FakeTwilio | None = None
    fake_server: BaseWSGIServer | None = None
    fake_url: str = ""
    app_url: str = ""

    @property
    def queue_name(self) -> str:
        return f"{self.prefix}:queue"

    @property
    def clock_key(self) -> str:
        return f"{self.prefix}:clock"

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def stop(self) -> None:
        for service in reversed(self.services):
            if service.name != "redis-server":
                service.stop()
        if self.fake_server is not None:
            self.fake_server.shutdown()
        if self.redis is not None:
            remove_demo_keys(self.redis, self.prefix, self.queue_name)
            self.redis.close()
        for service in self.services:
            if service.name == "redis-server":
                service.stop()


def start_redis(stack: Stack) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = connect_redis(url)
    if client is None:
        print(f"  no Redis server responds at {url}")
        url, service = start_private_redis(stack.directory)
        print(f"  started a private redis-server at {url}")
        stack.services.append(service)
        client = connect_redis(url)
        assert client is not None
    stack.redis_url = url
    stack.redis = client
    print(f"  Redis: {url} (keys and queue under the prefix {stack.prefix})")


def start_clock(stack: Stack) -> RedisClock:
    """Set the shared clock running from NIGHT_START, as an offset from the real time."""
    assert stack.redis is not None
    clock = RedisClock(stack.redis, stack.clock_key)
    clock.reset()
    clock.advance((NIGHT_START - clock.now()).total_seconds())
    return clock


def prepare_environment(stack: Stack) -> None:
    database = stack.directory / "demo.sqlite3"
    for path in stack.directory.glob("demo.sqlite3*"):
        path.unlink()
    stack.database_url = f"sqlite:///{database}"
    stack.env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FLASK_APP": "app",
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url,
        "QUEUE_NAME": stack.queue_name,
        "CLOCK": "redis",
        "CLOCK_KEY": stack.clock_key,
        "RECONCILE_INTERVAL_SECONDS": "0.2",
        # Call pacing counts real seconds, and the demo's clock runs about 20 times faster.
        "CALLS_PER_SECOND": "20",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "SECRET_KEY": secrets.token_hex(32),
        "OPERATOR_DESK_NUMBER": DESK,
        "SPOOL_DIR": str(stack.directory / "spool"),
    }


def migrate_and_import(stack: Stack) -> None:
    log = stack.log("setup")
    output = run_command("flask db upgrade", [*FLASK, "db", "upgrade"], stack.env, log)
    print(f"  database: {output.strip()}")
    output = run_command(
        "flask profile import",
        [*FLASK, "profile", "import", str(PROFILE), "--author", "demo",
         "--reason", "demo night"],
        stack.env, log,
    )
    for line in output.strip().splitlines():
        print(f"  profile: {line}")


def start_fake(stack: Stack, clock: RedisClock, app_port: int) -> None:
    stack.app_url = f"http://127.0.0.1:{app_port}"
    token = stack.env["TWILIO_AUTH_TOKEN"]
    number = {
        "voice_url": f"{stack.app_url}/twilio/voice",
        "sms_url": f"{stack.app_url}/twilio/sms",
        "status_callback": f"{stack.app_url}/twilio/voice/status",
        "account_sid": ACCOUNT_SID,
    }
    stack.fake = FakeTwilio(clock, {ACCOUNT_SID: token}, webhook_target=stack.app_url,
                            numbers={ANSWERING: number})
    stack.fake_server, stack.fake_url = start_in_thread(stack.fake, pump_interval=0.05)
    stack.env["TWILIO_API_BASE_URL"] = stack.fake_url
    # Webhooks are signed over the public URL, which for the demo is the app's own address.
    stack.env["PUBLIC_BASE_URL"] = stack.app_url
    print(f"  fake_twilio: {stack.fake_url} (inside this process, log {stack.log('driver')})")


def start_app_and_worker(stack: Stack, app_port: int) -> None:
    app = Service(
        "app",
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{app_port}", "--workers", "2",
         "--threads", "4", "--access-logfile", "-", "app:create_app()"],
        stack.log("app"), stack.env,
    )
    worker = Service("worker", [*FLASK, "worker"],
                     stack.log("worker"), stack.env)
    for service in (app, worker):
        service.start()
        stack.services.append(service)
    print(f"  app: {stack.app_url} (gunicorn, pid {app.process.pid if app.process else '?'}, "
          f"log {app.log})")
    print(f"  worker: flask worker (RQ worker and reconciler, log {worker.log})")
    wait_until_ready(stack.app_url, [app, worker])


def remove_demo_keys(client: redis.Redis, prefix: str, queue_name: str) -> None:
    """Delete the demo's clock, queue, registries and job hashes from a shared Redis."""
    try:
        queue = Queue(queue_name, connection=client, serializer=JSONSerializer)
        registries = [
            queue.started_job_registry, queue.finished_job_registry, queue.failed_job_registry,
            queue.scheduled_job_registry, queue.deferred_job_registry,
            queue.canceled_job_registry,
        ]
        job_ids = set(queue.get_job_ids())
        for registry in registries:
            job_ids.update(registry.get_job_ids())
            client.delete(registry.key)
        for job_id in job_ids:
            client.delete(Job.key_for(job_id), f"rq:results:{job_id}")
        queue.delete(delete_jobs=True)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
    except redis.RedisError as exc:
        logger.warning("could not remove the demo's Redis keys under %s: %s", prefix, exc)


# ---------------------------------------------------------------------------------------------
# Driving the night


class Driver:
    """Moves the shared clock and acts as the customers' and staff's phones."""

    def __init__(self, stack: Stack, clock: RedisClock, pace: Pace) -> None:
        assert stack.fake is not None
        self.stack = stack
        self.fake = stack.fake
        self.clock = clock
        self.pace = pace
        self.db = Database(stack.database_url)
        assert stack.redis is not None
        self.queue = Queue(stack.queue_name, connection=stack.redis, serializer=JSONSerializer)
        self._busy_since: float | None = None

    def close(self) -> None:
        self.db.dispose()

    # -- time -----------------------------------------------------------------------------

    def jump_to(self, local: datetime) -> None:
        """Move the clock forward to a local time of the night; never backwards."""
        gap = (local - self.clock.now()).total_seconds()
        if gap > 0:
            self.clock.advance(gap)

    def run_until(self, what: str, done: Callable[[], bool], max_clock_seconds: float) -> None:
        """Advance the clock in steps until ``done()`` holds; raise DemoError after the limits."""
        moved = 0.0
        started = time.monotonic()
        while not done():
            for service in self.stack.services:
                service.check_running()
            if moved >= max_clock_seconds or time.monotonic() - started > self.pace.real_limit:
                raise DemoError(
                    f"{what}: not reached after {moved:.0f} s of clock time "
                    f"({time.monotonic() - started:.1f} s real time)",
                    self.stack.log("worker"),
                )
            time.sleep(self.pace.pause)
            if self._idle_or_waited_enough():
                self.clock.advance(self.pace.step)
                moved += self.pace.step

    def _idle_or_waited_enough(self) -> bool:
        """Return whether the clock may move: no work is in flight, or it waited long enough.

        Holding the clock while jobs run keeps a slow machine from timing out offers that it
        has not even sent yet. A bounded wait keeps a lost job from stopping the clock, since
        the reconciler re-enqueues such a job only after some clock time has passed.
        """
        if not self._work_in_flight():
            self._busy_since = None
            return True
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        if now - self._busy_since >= MAX_HOLD_SECONDS:
            logger.info("clock held %.1f s for work in flight; moving it anyway", MAX_HOLD_SECONDS)
            self._busy_since = None
            return True
        return False

    def _work_in_flight(self) -> bool:
        if self.queue.count or self.queue.started_job_registry.count:
            return True
        with self.db.read() as session:
            channel = session.execute(
                select(OfferChannel.id).where(OfferChannel.state.in_(SENDING_STATES)).limit(1)
            ).first()
            outbox = session.execute(
                select(OutboxMessage.id).where(OutboxMessage.state.in_(OUTBOX_BUSY)).limit(1)
            ).first()
        return channel is not None or outbox is not None

    # -- reading the database ----------------------------------------------------------------

    def latest_dispatch(self, caller: str) -> Dispatch | None:
        with self.db.read() as session:
            return session.execute(
                select(Dispatch).where(Dispatch.caller_number == caller)
                .order_by(Dispatch.id.desc()).limit(1)
            ).scalar_one_or_none()

    def dispatch(self, dispatch_id: int) -> Dispatch:
        with self.db.read() as session:
            return session.execute(select(Dispatch).where(Dispatch.id == dispatch_id)).scalar_one()

    def has_event(self, dispatch_id: int, kind: str) -> bool:
        with self.db.read() as session:
            return session.execute(
                select(Event.id).where(Event.dispatch_id == dispatch_id, Event.kind == kind)
                .limit(1)
            ).first() is not None

    def has_event_kind(self, kinds: set[str], after_id: int = 0) -> bool:
        """Return whether an event of one of ``kinds`` was written after event ``after_id``."""
        with self.db.read() as session:
            return session.execute(
                select(Event.id).where(Event.kind.in_(kinds), Event.id > after_id).limit(1)
            ).first() is not None

    def last_event_id(self) -> int:
        with self.db.read() as session:
            return session.execute(select(Event.id).order_by(Event.id.desc())
                                   .limit(1)).scalar_one_or_none() or 0

    def is_settled(self, dispatch_id: int) -> bool:
        """Return whether the dispatch has no live offer and nothing at all is left to send."""
        with self.db.read() as session:
            waiting = session.execute(
                select(OutboxMessage.id).where(OutboxMessage.state.in_(OUTBOX_BUSY)).limit(1)
            ).first()
        return waiting is None and not self.has_live_offer(dispatch_id)

    def has_live_offer(self, dispatch_id: int) -> bool:
        with self.db.read() as session:
            return session.execute(
                select(Offer.id).where(Offer.dispatch_id == dispatch_id,
                                       Offer.state == OfferState.LIVE).limit(1)
            ).first() is not None

    def state_is(self, dispatch_id: int, state: DispatchState) -> Callable[[], bool]:
        return lambda: self.dispatch(dispatch_id).state == state

    def new_dispatch_from(self, caller: str, after_id: int) -> int:
        dispatch = self.latest_dispatch(caller)
        if dispatch is None or dispatch.id <= after_id:
            raise DemoError(f"no dispatch was created for the caller {mask(caller)}",
                            self.stack.log("app"))
        return dispatch.id

    def new_dispatch_from_any(self, after_id: int) -> int:
        """Return the id of the dispatch created after ``after_id`` (a withheld caller's)."""
        latest = self.last_dispatch_id()
        if latest <= after_id:
            raise DemoError("no dispatch was created for the withheld caller",
                            self.stack.log("app"))
        return latest

    def last_dispatch_id(self) -> int:
        with self.db.read() as session:
            return session.execute(select(Dispatch.id).order_by(Dispatch.id.desc())
                                   .limit(1)).scalar_one_or_none() or 0

    # -- phones ------------------------------------------------------------------------------

    def script(self, behaviours: dict[str, Behaviour]) -> None:
        for number, behaviour in behaviours.items():
            self.fake.phone(number).script(behaviour)

    def customer_texts(self, caller: str, body: str) -> int:
        before = self.last_dispatch_id()
        response = self.fake.phone(caller).send_sms(ANSWERING, body)
        if response.status_code != 200:
            raise DemoError(f"the app returned HTTP {response.status_code} for the text from "
                            f"{mask(caller)}", self.stack.log("app"))
        return self.new_dispatch_from(caller, before)

    def customer_calls(self, caller: str, digit: str, reason: str) -> int:
        """Call the answering number, press ``digit`` at the menu and speak ``reason``.

        The caller hangs up unless the app's TwiML has ended the call already.
        """
        before = self.last_dispatch_id()
        call = self.fake.phone(caller).dial(ANSWERING)
        self._require_gather(call, "the menu")
        call.press(digit)
        self._require_gather(call, "the reason prompt")
        call.say_speech(reason)
        if not call.ended:
            call.hangup()
        logger.info("caller %s heard: %s", mask(caller), call.said_text)
        return self.new_dispatch_from(caller, before)

    def _require_gather(self, call: FakeCall, what: str) -> None:
        if call.ended or not call.gathering:
            raise DemoError(
                f"the inbound call did not wait at {what}; status {call.status}, "
                f"errors {call.errors}, it said: {call.said_text!r}",
                self.stack.log("app"),
            )

    def settle(self, dispatch_id: int) -> None:
        """Let queued texts and calls of a dispatch go out before the clock jumps ahead."""
        self.run_until(f"dispatch {dispatch_id} settled", lambda: self.is_settled(dispatch_id),
                       120)

    def end_bridges(self, number: str) -> None:
        """Hang up the bridge of an accepted call: the member and the caller finished talking."""
        for call in self.fake.phone(number).calls:
            if call.dialing:
                call.end_dial("completed", duration=240)
            if not call.ended:
                call.hangup()


def mask(number: str | None) -> str:
    return f"***{number[-4:]}" if number else "withheld"


# Every offer text contains this phrase, and confirmations and other replies do not.
OFFER_TEXT_MARK = "Reply 1 to accept"


class ReplyToOffers(ReplySms):
    """Reply ``body`` to offer texts only, as a person would, and just read every other text.

    fake_twilio's ReplySms answers every text, so a member would also answer the confirmation
    of their own accept, and two automatic repliers would text each other all night.
    """

    def on_message(self, fake: FakeTwilio, phone: Phone, message: FakeMessage) -> None:
        if OFFER_TEXT_MARK in message.body:
            super().on_message(fake, phone, message)
        else:
            Behaviour.on_message(self, fake, phone, message)


@dataclass
class Scene:
    """One dispatch of the night and the state it must end in."""

    title: str
    dispatch_id: int
    expected: DispatchState


def scene_call_accepted_by_keypress(driver: Driver) -> Scene | None:
    """Play a call whose chain meets no answer, voicemail, an invalid number and a pass."""
    driver.jump_to(NIGHT_START + timedelta(minutes=5))
    driver.script({AVA: ring_out(), BEN: voicemail(after_seconds=PHONE_DELAY_SECONDS),
                   DEE: answer_and_press("2", after_seconds=PHONE_DELAY_SECONDS),
                   EVE: answer_and_press("1", after_seconds=PHONE_DELAY_SECONDS)})
    dispatch_id = driver.customer_calls(
        CUSTOMERS[0], "1", "Water is pouring through the kitchen ceiling")

    driver.run_until("dispatch accepted by keypress",
                     driver.state_is(dispatch_id, DispatchState.ACKNOWLEDGED), 600)
    driver.run_until("bridge to the caller dialled",
                     lambda: driver.has_event(dispatch_id, "callback_dialled"), 120)
    driver.end_bridges(EVE)
    driver.settle(dispatch_id)
    return Scene("call, accepted by keypress", dispatch_id, DispatchState.ACKNOWLEDGED)


def scene_text_accepted_by_sms(driver: Driver) -> Scene | None:
    """Play a text that Ben accepts by SMS after Ava's window passed; Ava replies late."""
    driver.jump_to(NIGHT_START + timedelta(minutes=40))
    driver.script({AVA: ReplyToOffers("1", after_seconds=90),
                   BEN: ReplyToOffers("Yes, on my way", after_seconds=PHONE_DELAY_SECONDS)})
    dispatch_id = driver.customer_texts(
        CUSTOMERS[1], "No heat and the thermostat is dead, newborn at home")

    driver.run_until("dispatch accepted by SMS",
                     driver.state_is(dispatch_id, DispatchState.ACKNOWLEDGED), 600)
    accepted_at = driver.last_event_id()
    driver.run_until("Ava's late reply answered",
                     lambda: driver.has_event_kind({"late_reply", "unsolicited_reply"},
                                                   accepted_at), 300)
    driver.settle(dispatch_id)
    return Scene("text, accepted by SMS", dispatch_id, DispatchState.ACKNOWLEDGED)


def scene_caller_followup(driver: Driver) -> Scene | None:
    """Send a follow-up text from the first caller, forwarded to the member who accepted."""
    driver.jump_to(NIGHT_START + timedelta(minutes=55))
    first = driver.latest_dispatch(CUSTOMERS[0])
    assert first is not None
    driver.fake.phone(CUSTOMERS[0]).send_sms(ANSWERING, "Thanks, the water has stopped")
    driver.run_until("caller follow-up recorded",
                     lambda: driver.has_event(first.id, "caller_followup"), 60)
    driver.settle(first.id)
    return None


def scene_chain_runs_out(driver: Driver) -> Scene | None:
    """Play a text that no member accepts in time, so the operator desk is paged."""
    driver.jump_to(NIGHT_START + timedelta(hours=4, minutes=10))
    driver.script({number: never_reply() for number in (AVA, BEN, DEE, EVE, FAY, DESK)})
    dispatch_id = driver.customer_texts(
        CUSTOMERS[2], "Sewage is coming up through the basement floor drain")

    driver.run_until("chain exhausted and the desk paged",
                     driver.state_is(dispatch_id, DispatchState.UNACKNOWLEDGED), 900)
    driver.run_until("operator desk's window over",
                     lambda: not driver.has_live_offer(dispatch_id), 300)
    driver.fake.phone(DEE).send_sms(ANSWERING, "1")
    driver.run_until("late accept", driver.state_is(dispatch_id, DispatchState.ACKNOWLEDGED),
                     120)
    driver.settle(dispatch_id)
    return Scene("text, nobody answers, then a late accept", dispatch_id,
                 DispatchState.ACKNOWLEDGED)


def scene_withheld_caller(driver: Driver) -> Scene | None:
    """Play a call from a withheld number: the caller keys in a callback number first."""
    driver.jump_to(NIGHT_START + timedelta(hours=4, minutes=40))
    driver.script({number: answer_and_press("1", after_seconds=PHONE_DELAY_SECONDS)
                   for number in (AVA, BEN, DEE, EVE, FAY)})
    before = driver.last_dispatch_id()
    call = driver.fake.phone("Anonymous").dial(ANSWERING)
    driver._require_gather(call, "the callback number prompt")
    call.press(WITHHELD_CALLBACK.removeprefix("+1") + "#")
    driver._require_gather(call, "the menu")
    call.press("1")
    driver._require_gather(call, "the reason prompt")
    call.say_speech("Smell of gas near the water heater")
    if not call.ended:
        call.hangup()
    dispatch_id = driver.new_dispatch_from_any(before)
    driver.run_until("withheld caller's dispatch accepted",
                     driver.state_is(dispatch_id, DispatchState.ACKNOWLEDGED), 600)
    driver.run_until("caller-supplied number dialled",
                     lambda: driver.has_event(dispatch_id, "callback_dialled"), 120)
    for number in (AVA, BEN, DEE, EVE, FAY):
        driver.end_bridges(number)
    driver.settle(dispatch_id)
    return Scene("withheld caller, accepted and connected to the keyed-in number", dispatch_id,
                 DispatchState.ACKNOWLEDGED)


def scene_message_taken(driver: Driver) -> Scene | None:
    """Play a call that chooses the message route, which settles without paging."""
    driver.jump_to(NIGHT_START + timedelta(hours=5))
    dispatch_id = driver.customer_calls(
        CUSTOMERS[3], "2", "The upstairs bathroom tap drips, please call in the morning")
    driver.run_until("message taken",
                     driver.state_is(dispatch_id, DispatchState.MESSAGE_TAKEN), 60)
    driver.settle(dispatch_id)
    return Scene("call, message taken", dispatch_id, DispatchState.MESSAGE_TAKEN)


SCENES: list[tuple[str, Callable[[Driver], Scene | None]]] = [
    ("A caller presses 1: no answer, voicemail, an invalid number, a pass, then an accept",
     scene_call_accepted_by_keypress),
    ("A text: Ava lets her window pass, Ben accepts by SMS, then Ava's late reply arrives",
     scene_text_accepted_by_sms),
    ("The first caller texts again; the text goes to the technician who accepted",
     scene_caller_followup),
    ("A text no member accepts: the pool, the backup, the operator desk; Dee accepts late",
     scene_chain_runs_out),
    ("A caller with a withheld number keys in a callback number, presses 1, and is connected",
     scene_withheld_caller),
    ("A caller presses 2: the message is kept for the office and no member is paged",
     scene_message_taken),
]


# ---------------------------------------------------------------------------------------------
# Printing timelines

# Detail fields left out of the timeline: identifiers and copies of what the header shows.
HIDDEN_DETAIL = {
    "sid", "profile_version_id", "caller_raw", "answering_number", "code", "sequence",
    "chain_deadline", "deadline", "pointer_before",
}
MAX_VALUE_CHARS = 60


def mask_text(text: str) -> str:
    return PHONE_PATTERN.sub(lambda match: mask(match.group()), text)


def render_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(render_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if set(value) == {"channel", "to"}:
            return f"{value['channel']} to {mask(value['to'])}"
        return "{" + ", ".join(f"{k}={render_value(v)}" for k, v in value.items()) + "}"
    text = mask_text(str(value))
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def render_details(detail: dict[str, Any]) -> str:
    parts = [
        f"{key}={render_value(value)}"
        for key, value in detail.items()
        if key not in HIDDEN_DETAIL and value not in (None, "", [], {})
    ]
    return ", ".join(parts)


def local_time(at: datetime) -> str:
    return at.astimezone(ZONE).strftime("%H:%M:%S")


def print_timeline(db: Database, dispatch_id: int, title: str) -> DispatchState:
    """Print one dispatch's events and final disposition; return its state."""
    with db.read() as session:
        dispatch = session.execute(select(Dispatch).where(Dispatch.id == dispatch_id)).scalar_one()
        rows = session.execute(
            select(Event).where(Event.dispatch_id == dispatch_id).order_by(Event.id)
        ).scalars().all()
        accepted = session.get(Offer, dispatch.acknowledged_offer_id) \
            if dispatch.acknowledged_offer_id else None

    started = dispatch.created_at.astimezone(ZONE)
    print()
    print(f"Dispatch {dispatch.id} ({title}): code {dispatch.code}, {dispatch.source} from "
          f"{mask(dispatch.caller_number)} to {mask(dispatch.answering_number)}, "
          f"{started:%a %Y-%m-%d %H:%M %Z}")
    print_events(rows)
    print(f"  final: {disposition(dispatch, accepted)}")
    return dispatch.state


def print_events(rows: Sequence[Event]) -> None:
    for event in rows:
        actor = event.actor or ""
        print(f"  {local_time(event.at)}  {event.kind:<24} {actor:<16} "
              f"{render_details(event.detail)}".rstrip())


def print_unattached_events(db: Database) -> None:
    """Print the events that belong to no dispatch, such as replies nobody was waiting for."""
    with db.read() as session:
        rows = session.execute(
            select(Event).where(Event.dispatch_id.is_(None)).order_by(Event.id)
        ).scalars().all()
    print()
    print("Events that belong to no dispatch:")
    print_events(rows)


def print_all_timelines(db: Database) -> None:
    with db.read() as session:
        ids = session.execute(select(Dispatch.id).order_by(Dispatch.id)).scalars().all()
    for dispatch_id in ids:
        print_timeline(db, dispatch_id, "so far")


def print_customer_texts(fake: FakeTwilio) -> None:
    """Print the texts each customer's phone received from the answering number."""
    print()
    print("Texts the customers received:")
    for number in CUSTOMERS:
        for message in fake.phone(number).messages:
            print(f"  {local_time(message.date_created)}  to {mask(number)}: {message.body}")


def report_fake_errors(fake: FakeTwilio, log: Path) -> None:
    """Say how many of fake_twilio's scheduled tasks or webhook deliveries failed."""
    if fake.errors:
        print(f"\nWarning: fake_twilio recorded {len(fake.errors)} failed task(s) or webhook "
              f"delivery(ies); see {log}")


def disposition(dispatch: Dispatch, accepted: Offer | None) -> str:
    if dispatch.state == DispatchState.ACKNOWLEDGED and dispatch.acknowledged_at is not None:
        who = accepted.member_name if accepted else "unknown member"
        took = dispatch.acknowledged_at - dispatch.created_at
        minutes, seconds = divmod(int(took.total_seconds()), 60)
        return (f"acknowledged by {who} at {local_time(dispatch.acknowledged_at)}, "
                f"{minutes} min {seconds} s after it came in")
    reason = f" ({dispatch.state_reason})" if dispatch.state_reason else ""
    return f"{dispatch.state}{reason}"


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true",
                        help="move the clock in bigger steps with shorter pauses (for tests)")
    parser.add_argument("--dir", type=Path, default=ROOT / "instance" / "demo",
                        help="folder for the database and the logs (default instance/demo)")
    return parser.parse_args(argv)


def configure_logging(directory: Path) -> None:
    handler = logging.FileHandler(directory / "driver.log", mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


@contextmanager
def step(name: str, steps: list[str]) -> Iterator[None]:
    """Print the step's name and duration, and record it so that a failure report names it."""
    steps.append(name)
    print(f"{name}...", flush=True)
    started = time.monotonic()
    yield
    print(f"  done in {time.monotonic() - started:.1f} s", flush=True)


def run(stack: Stack, pace: Pace, steps: list[str]) -> bool:
    """Start the stack, play the scenes and print the timelines; return whether all passed."""
    with step("Starting Redis", steps):
        start_redis(stack)
        clock = start_clock(stack)
    with step("Preparing the database and the profile", steps):
        prepare_environment(stack)
        migrate_and_import(stack)
    with step("Starting fake_twilio, the app and the worker", steps):
        app_port = free_port()
        start_fake(stack, clock, app_port)
        start_app_and_worker(stack, app_port)

    driver = Driver(stack, clock, pace)
    try:
        scenes = play_scenes(driver, steps)
        print("\nTimelines from the event log (times in America/Chicago):")
        results = [print_timeline(driver.db, scene.dispatch_id, scene.title) == scene.expected
                   for scene in scenes]
        print_unattached_events(driver.db)
        print_customer_texts(driver.fake)
        report_fake_errors(driver.fake, stack.log("driver"))
    finally:
        driver.close()
    with step("Verifying the event log's hash chains (flask audit verify)", steps):
        output = run_command("flask audit verify", [*FLASK, "audit", "verify"], stack.env,
                             stack.log("setup"))
        for line in output.strip().splitlines():
            print(f"  {line}")
    return all(results)


def play_scenes(driver: Driver, steps: list[str]) -> list[Scene]:
    """Play every scene; on a failure print the timelines so far, then raise."""
    scenes = []
    try:
        for number, (summary, play) in enumerate(SCENES, start=1):
            with step(f"Scene {number}: {summary}", steps):
                scene = play(driver)
            if scene is not None:
                scenes.append(scene)
    except DemoError:
        print("\nTimelines so far:")
        print_all_timelines(driver.db)
        raise
    return scenes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    directory = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name in LOG_NAMES:
        (directory / f"{name}.log").unlink(missing_ok=True)
    configure_logging(directory)
    print(f"Logs go to {directory}/*.log")

    stack = Stack(directory=directory, prefix=f"rrd-demo:{uuid.uuid4().hex[:8]}")
    steps: list[str] = []
    started = time.monotonic()
    try:
        ok = run(stack, FAST_PACE if args.fast else NORMAL_PACE, steps)
    except KeyboardInterrupt:
        print("\nInterrupted")
        return 130
    except Exception as exc:
        report_failure(steps[-1] if steps else "start", exc)
        return 1
    finally:
        print("\nStopping the app, the worker and fake_twilio...")
        stack.stop()
    if not ok:
        print("\nFAILED: a dispatch did not end in its expected state (see the timelines)")
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s; every scene ended as expected.")
    return 0


def report_failure(step_name: str, exc: BaseException) -> None:
    logger.error("step %r failed", step_name, exc_info=exc)
    print(f"\nFAILED at step: {step_name}")
    print(f"  {type(exc).__name__}: {exc}")
    log = exc.log if isinstance(exc, DemoError) else None
    if log is None or not log.exists():
        return
    lines = [
        line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if NOISY_LOGGER not in line
    ]
    print(f"  last {LOG_TAIL_LINES} lines of {log}, without {NOISY_LOGGER} lines:")
    for line in lines[-LOG_TAIL_LINES:]:
        print(f"    {line}")


if __name__ == "__main__":
    sys.exit(main())
