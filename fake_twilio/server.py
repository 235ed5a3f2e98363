"""The fake's state: accounts, numbers, calls, messages, phones and a clock-driven task queue.

``FakeTwilio`` is thread-safe: the REST API, the test thread and the background pump all
use it. Webhooks are sent without holding the lock, so the app may call the REST API
while it handles one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from werkzeug.datastructures import MultiDict

from fake_twilio.calls import CallRecord, CallSwitch, FakeCall
from fake_twilio.formats import API_VERSION, new_sid, parse_filter_time, rfc2822
from fake_twilio.magic import Stage, TwilioError, magic_for
from fake_twilio.messages import FakeMessage
from fake_twilio.openapi import INVALID_PARAMETER_CODE
from fake_twilio.phones import Phone
from fake_twilio.scripts import DELIVERY_DELAY_SECONDS, RING_DELAY_SECONDS
from fake_twilio.webhooks import Params, WebhookError, WebhookSender, new_idempotency_token

logger = logging.getLogger(__name__)

# The fake responds this many seconds late to a create request for a "timeout" magic
# number, which is longer than the project's 10 s REST timeout.
DEFAULT_SLOW_RESPONSE_SECONDS = 12.0
# Bounds one run_pending call, so that tasks which keep rescheduling themselves cannot spin forever.
MAX_TASKS_PER_RUN = 10_000
# Twilio rejects message bodies longer than this (error 21617).
MAX_BODY_CHARS = 1600


class HasNow(Protocol):
    def now(self) -> datetime: ...


@dataclass(order=True)
class _Task:
    due: datetime
    tiebreak: float
    seq: int
    action: Callable[[], object] = field(compare=False)
    label: str = field(compare=False)


@dataclass
class Chaos:
    """Settings that disturb status callbacks: drop, duplicate, delay and reorder them."""

    duplicate: float
    delay: tuple[float, float]
    reorder: bool
    drop: float
    rng: random.Random


@dataclass(frozen=True)
class RequestLogEntry:
    """One REST request as the fake received it."""

    method: str
    path: str
    account: str
    form: dict[str, list[str]]
    query: dict[str, list[str]]


@dataclass(frozen=True)
class WebhookLogEntry:
    """One webhook the fake sent: the URL as signed, and the app's status code or the error."""

    method: str
    url: str
    params: dict[str, str]
    status_code: int | None
    error: str | None = None


class FakeTwilio:
    """A Twilio account (or several) that lives in memory and talks only to loopback.

    ``now`` is a callable or any object with ``.now()`` returning an aware UTC datetime.
    ``accounts`` maps account SIDs, subaccounts included, to their auth tokens.
    ``webhook_target`` is the loopback base URL where the app listens. Webhooks are
    signed over the URL the app configured and delivered to the target with the same
    path and query. ``numbers`` configures incoming phone numbers as
    ``{number: {"voice_url": ..., "sms_url": ..., "account_sid": ...}}``.
    ``parents`` maps a subaccount SID to its parent account SID, whose credentials may
    then act on the subaccount's resources, as on Twilio.
    """

    def __init__(
        self,
        now: Callable[[], datetime] | HasNow,
        accounts: dict[str, str],
        webhook_target: str | None = None,
        numbers: dict[str, dict[str, str]] | None = None,
        slow_response_seconds: float = DEFAULT_SLOW_RESPONSE_SECONDS,
        parents: dict[str, str] | None = None,
    ) -> None:
        if not accounts:
            raise ValueError("accounts is empty; pass at least one {account_sid: auth_token}")
        self._now = now.now if hasattr(now, "now") else now
        self.accounts = dict(accounts)
        self.parents = dict(parents or {})
        self.sender = WebhookSender(webhook_target)
        self.slow_response_seconds = slow_response_seconds
        self.lock = threading.RLock()
        self._initial_numbers = dict(numbers or {})
        self._local = threading.local()
        self._seq = itertools.count()
        self._reset_state()

    def _reset_state(self) -> None:
        self.calls: dict[str, FakeCall] = {}
        self.messages: dict[str, FakeMessage] = {}
        self.numbers: dict[str, dict[str, str]] = {}
        self.requests: list[RequestLogEntry] = []
        self.webhooks: list[WebhookLogEntry] = []
        self.errors: list[str] = []
        self._phones: dict[str, Phone] = {}
        self._tasks: list[_Task] = []
        self._cps: dict[str, float] = {}
        self._next_slot: dict[str, datetime] = {}
        self._magic_hits: Counter[tuple[str, str]] = Counter()
        self._chaos: Chaos | None = None
        self._chaos_last_due: dict[str, datetime] = {}
        for number, config in self._initial_numbers.items():
            self.configure_number(
                config.get("account_sid") or next(iter(self.accounts)), number, config
            )

    # --- test API ----------------------------------------------------------------------

    def now(self) -> datetime:
        """Return the shared clock's current instant."""
        return self._now()

    def reset(self) -> None:
        """Forget calls, messages, phones, logs, tasks, limits and chaos.

        Accounts and the numbers given to the constructor stay.
        """
        with self.lock:
            self._reset_state()

    def phone(self, number: str) -> Phone:
        """Return the handle for ``number``, creating it on first use."""
        with self.lock:
            if number not in self._phones:
                self._phones[number] = Phone(self, number)
            return self._phones[number]

    def set_cps(self, account_sid: str, calls_per_second: float | None) -> None:
        """Limit the calls per second the account starts; extra calls wait ``queued``.

        ``None`` removes the limit.
        """
        with self.lock:
            if calls_per_second is None:
                self._cps.pop(account_sid, None)
            elif calls_per_second <= 0:
                raise ValueError(f"calls_per_second must be positive, got {calls_per_second}")
            else:
                self._cps[account_sid] = calls_per_second
            self._next_slot.pop(account_sid, None)

    def chaos(
        self,
        duplicate: float = 0.2,
        delay: tuple[float, float] = (0.0, 2.0),
        reorder: bool = True,
        drop: float = 0.05,
        seed: int | None = 1,
    ) -> None:
        """Disturb status callbacks from now on.

        ``duplicate`` and ``drop`` are probabilities per callback. ``delay`` is a range
        of clock seconds. Delayed callbacks go out from ``run_pending``. With
        ``reorder`` false, callbacks to one URL keep their order.
        """
        with self.lock:
            self._chaos = Chaos(duplicate, delay, reorder, drop, random.Random(seed))

    def chaos_off(self) -> None:
        """Deliver status callbacks normally again."""
        with self.lock:
            self._chaos = None

    def schedule(self, delay_seconds: float, action: Callable[[], object], label: str) -> None:
        """Run ``action`` from ``run_pending`` once the clock is ``delay_seconds`` past now."""
        self.schedule_at(self.now() + timedelta(seconds=delay_seconds), action, label)

    def schedule_at(
        self, due: datetime, action: Callable[[], object], label: str, tiebreak: float = 0.0
    ) -> None:
        """Run ``action`` from ``run_pending`` once the clock reaches ``due``."""
        with self.lock:
            heapq.heappush(self._tasks, _Task(due, tiebreak, next(self._seq), action, label))

    def run_pending(self) -> int:
        """Run every task due now, and any due tasks they schedule; return the count.

        A task that raises is logged and recorded in ``errors``; the remaining tasks still run.
        """
        # A task that drives a phone (a scripted answer, say) calls run_pending() again;
        # running later tasks inside it would let them overtake the one in progress.
        if getattr(self._local, "running_tasks", False):
            return 0
        self._local.running_tasks = True
        try:
            return self._run_due_tasks()
        finally:
            self._local.running_tasks = False

    def _run_due_tasks(self) -> int:
        ran = 0
        while ran < MAX_TASKS_PER_RUN:
            with self.lock:
                if not self._tasks or self._tasks[0].due > self.now():
                    break
                task = heapq.heappop(self._tasks)
            ran += 1
            try:
                task.action()
            except Exception as exc:
                logger.exception("Scheduled task %r failed", task.label)
                self.errors.append(f"{task.label}: {exc!r}")
        return ran

    def pending_count(self) -> int:
        """Return how many scheduled tasks wait, due or not."""
        with self.lock:
            return len(self._tasks)

    # --- accounts and auth -------------------------------------------------------------

    def token_for(self, account_sid: str) -> str:
        """Return the auth token of ``account_sid``; raise KeyError for an unknown account."""
        return self.accounts[account_sid]

    def authenticate(self, username: str | None, password: str | None, account_sid: str) -> None:
        """Raise TwilioError 20003 unless the credentials are those of the account or its parent."""
        allowed = {account_sid, self.parents.get(account_sid)}
        if account_sid not in self.accounts or username not in allowed:
            raise TwilioError(401, 20003, "Authenticate")
        if password != self.accounts.get(username or ""):
            raise TwilioError(401, 20003, "Authenticate")

    @contextmanager
    def rest_context(self) -> Iterator[None]:
        """Mark the thread as serving a REST request, so callbacks wait for ``run_pending``."""
        self._local.in_rest = True
        try:
            yield
        finally:
            self._local.in_rest = False

    def log_request(self, entry: RequestLogEntry) -> None:
        with self.lock:
            self.requests.append(entry)

    # --- calls -------------------------------------------------------------------------

    def create_call(self, account_sid: str, form: MultiDict[str, str]) -> FakeCall:
        """Create an outbound call from a validated request; raise TwilioError for magic numbers."""
        to, from_ = form["To"], form["From"]
        if not any(form.get(key) for key in ("Url", "Twiml", "ApplicationSid")):
            raise TwilioError(
                400, 21200, "Either Url, Twiml or ApplicationSid is required to create a call."
            )
        self._raise_for_magic(to, "call")

        record = CallRecord(
            account_sid=account_sid,
            to=to,
            from_=from_,
            direction="outbound-api",
            params=form.copy(),
        )
        call = FakeCall(
            self,
            record,
            url=form.get("Url"),
            twiml=form.get("Twiml"),
            method=form.get("Method", "POST"),
        )
        self.add_call(call)
        self.phone(to).calls.append(call)

        start_at = self._cps_slot(account_sid)
        if start_at is None:
            self._start_call(call)
        else:
            logger.info(
                "Call %s queued behind the calls-per-second limit until %s",
                call.sid,
                start_at.isoformat(),
            )
            self.schedule_at(start_at, lambda: self._start_call(call), f"start {call.sid}")
        return call

    def add_call(self, call: FakeCall) -> None:
        with self.lock:
            self.calls[call.sid] = call

    def call_ended(self, call: FakeCall) -> None:
        logger.info("Call %s to ...%s ended %s", call.sid, call.to[-4:], call.status)

    def get_call(self, account_sid: str, sid: str) -> FakeCall:
        """Return the call ``sid`` of ``account_sid``; raise TwilioError 20404 if there is none."""
        call = self.calls.get(sid)
        if call is None or call.account_sid != account_sid:
            raise TwilioError(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Calls/{sid}.json "
                "was not found",
            )
        return call

    def update_call(self, account_sid: str, sid: str, form: MultiDict[str, str]) -> FakeCall:
        """Apply a REST update (Status, Twiml or Url) to a call."""
        call = self.get_call(account_sid, sid)
        switch = None
        if form.get("Twiml") is not None or form.get("Url"):
            if call.ended:
                raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
            switch = CallSwitch(
                twiml=form.get("Twiml"), url=form.get("Url"), method=form.get("Method", "POST")
            )
        if form.get("StatusCallback"):
            call.params.setlist("StatusCallback", [form["StatusCallback"]])
        with self.lock:
            call.request_update(switch, form.get("Status"))
        return call

    def list_calls(self, account_sid: str, args: MultiDict[str, str]) -> list[FakeCall]:
        """Return the account's calls matching Twilio's list filters, newest first.

        ``StartTime>`` keeps calls that started at or after the value, and ``StartTime<`` calls
        that started before it. A call that has not started yet is matched by its creation
        time. An ``EndTime`` filter drops calls that have not ended.
        """
        calls = [call for call in self.calls.values() if call.account_sid == account_sid]
        calls = [
            call
            for call in calls
            if _matches(args, "To", call.to) and _matches(args, "From", call.from_)
        ]
        calls = [call for call in calls if _matches(args, "Status", call.status)]
        calls = [
            call
            for call in calls
            if _time_matches(args, "StartTime", call.start_time or call.date_created)
        ]
        if any(name in args for name in ("EndTime", "EndTime>", "EndTime<")):
            calls = [
                call
                for call in calls
                if call.end_time is not None and _time_matches(args, "EndTime", call.end_time)
            ]
        return sorted(calls, key=lambda call: call.date_created, reverse=True)

    def _start_call(self, call: FakeCall) -> None:
        if call.ended:
            return
        call.start()
        magic = magic_for(call.to, "call")
        if magic is not None and magic.stage == Stage.CALLBACK:
            code = magic.codes["call"]
            self.schedule(
                RING_DELAY_SECONDS, lambda: call.ended or call.fail(code), f"fail {call.sid}"
            )
            return
        behaviour = self.phone(call.to).behaviour
        if behaviour is not None:
            behaviour.on_call(self, call)

    def _cps_slot(self, account_sid: str) -> datetime | None:
        """Reserve the account's next start slot; return None when the call may start now."""
        with self.lock:
            rate = self._cps.get(account_sid)
            if rate is None:
                return None
            now = self.now()
            slot = max(now, self._next_slot.get(account_sid, now))
            self._next_slot[account_sid] = slot + timedelta(seconds=1 / rate)
            return None if slot <= now else slot

    # --- messages ----------------------------------------------------------------------

    def create_message(self, account_sid: str, form: MultiDict[str, str]) -> FakeMessage:
        """Create an outbound SMS from a validated request; raise TwilioError for magic numbers."""
        to = form["To"]
        if not form.get("From") and not form.get("MessagingServiceSid"):
            raise TwilioError(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            )
        body = form.get("Body", "")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            raise TwilioError(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            raise TwilioError(
                400,
                21617,
                f"The concatenated message body exceeds the {MAX_BODY_CHARS} character limit.",
            )
        self._raise_for_magic(to, "sms")

        from_ = form.get("From") or self._service_sender(account_sid)
        message = FakeMessage(self, account_sid, to, from_, body, form.copy())
        with self.lock:
            self.messages[message.sid] = message
        phone = self.phone(to)
        phone.messages.append(message)

        magic = magic_for(to, "sms")
        if magic is not None and magic.stage == Stage.CALLBACK:
            code, status = magic.codes["sms"], magic.callback_status.get("sms")
            error_message = magic.message
            self.schedule(
                DELIVERY_DELAY_SECONDS,
                lambda: message.ended or message.fail(code, status, error_message),
                f"fail {message.sid}",
            )
        elif phone.behaviour is not None:
            phone.behaviour.on_message(self, phone, message)
        return message

    def get_message(self, account_sid: str, sid: str) -> FakeMessage:
        """Return the message ``sid`` of ``account_sid``; raise TwilioError 20404 if unknown."""
        message = self.messages.get(sid)
        if message is None or message.account_sid != account_sid:
            raise TwilioError(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json "
                "was not found",
            )
        return message

    def list_messages(self, account_sid: str, args: MultiDict[str, str]) -> list[FakeMessage]:
        """Return the account's messages matching the list filters, newest first.

        ``DateSent>`` keeps messages sent at or after the value. A message not sent yet
        is matched by its creation time.
        """
        messages = [
            message for message in self.messages.values() if message.account_sid == account_sid
        ]
        messages = [
            m for m in messages if _matches(args, "To", m.to) and _matches(args, "From", m.from_)
        ]
        messages = [
            m for m in messages if _time_matches(args, "DateSent", m.date_sent or m.date_created)
        ]
        return sorted(messages, key=lambda message: message.date_created, reverse=True)

    def record_inbound_message(
        self, account_sid: str, sid: str, from_: str, to: str, body: str
    ) -> None:
        """Keep an inbound SMS so that it shows up in the Messages list, as on Twilio."""
        message = FakeMessage(self, account_sid, to, from_, body, MultiDict())
        message.sid = sid
        message.direction = "inbound"
        message.status = "received"
        message.date_sent = message.date_created
        message.claimed = True
        with self.lock:
            self.messages[sid] = message

    def deliver_twiml_replies(
        self, response: requests.Response, account_sid: str, sender: str, recipient: str
    ) -> None:
        """Deliver each ``<Message>`` of an SMS webhook's TwiML reply to the recipient's phone."""
        if not response.text.strip():
            return
        try:
            root = ET.fromstring(response.text)
        except ET.ParseError:
            self.errors.append(f"SMS webhook reply is not TwiML: {response.text[:200]!r}")
            return
        for element in root.iter("Message"):
            body_element = element.find("Body")
            body = (body_element.text if body_element is not None else element.text) or ""
            to = element.get("to", recipient)
            message = FakeMessage(
                self, account_sid, to, element.get("from", sender), body.strip(), MultiDict()
            )
            message.direction = "outbound-reply"
            message.status = "delivered"
            message.date_sent = message.date_created
            with self.lock:
                self.messages[message.sid] = message
            self.phone(to).messages.append(message)

    def _service_sender(self, account_sid: str) -> str:
        """Return the sender for a Messaging Service: the account's first number, or empty."""
        for number, config in self.numbers.items():
            if config["account_sid"] == account_sid:
                return number
        return ""

    # --- phone numbers -----------------------------------------------------------------

    def configure_number(
        self, account_sid: str, number: str, config: dict[str, str]
    ) -> dict[str, str]:
        """Create or update an incoming number's webhook settings; return its stored config."""
        with self.lock:
            stored = self.numbers.setdefault(
                number,
                {
                    "sid": new_sid("PN"),
                    "account_sid": account_sid,
                    "date_created": rfc2822(self.now()) or "",
                },
            )
            stored.update({key: value for key, value in config.items() if value is not None})
            stored["account_sid"] = account_sid
            return stored

    def number_config(self, number: str) -> dict[str, str]:
        """Return an incoming number's configuration; raise AssertionError if it is unknown."""
        config = self.numbers.get(number)
        if config is None:
            raise AssertionError(
                f"{number} is not an incoming number of the fake; known: {sorted(self.numbers)}"
            )
        return config

    def number_by_sid(self, account_sid: str, sid: str) -> tuple[str, dict[str, str]]:
        """Return the number and config of an IncomingPhoneNumber SID; raise TwilioError 20404."""
        for number, config in self.numbers.items():
            if config["sid"] == sid and config["account_sid"] == account_sid:
                return number, config
        raise TwilioError(
            404, 20404, f"The requested resource IncomingPhoneNumbers/{sid}.json was not found"
        )

    def number_resource(self, number: str) -> dict[str, Any]:
        """Return an incoming number as Twilio's JSON IncomingPhoneNumber resource."""
        config = self.numbers[number]
        account_uri = f"/{API_VERSION}/Accounts/{config['account_sid']}"
        uri = f"{account_uri}/IncomingPhoneNumbers/{config['sid']}.json"
        return {
            "sid": config["sid"],
            "account_sid": config["account_sid"],
            "phone_number": number,
            "friendly_name": config.get("friendly_name", number),
            "voice_url": config.get("voice_url"),
            "voice_method": config.get("voice_method", "POST"),
            "sms_url": config.get("sms_url"),
            "sms_method": config.get("sms_method", "POST"),
            "status_callback": config.get("status_callback"),
            "status_callback_method": "POST",
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
            "api_version": API_VERSION,
            "date_created": config.get("date_created"),
            "date_updated": config.get("date_created"),
            "uri": uri,
        }

    # --- webhooks ----------------------------------------------------------------------

    def deliver_callback(self, url: str, params: Params, account_sid: str, method: str) -> None:
        """Send a status callback now, or later under chaos or while serving a REST request."""
        chaos = self._chaos
        if chaos is not None:
            self._deliver_with_chaos(chaos, url, params, account_sid, method)
        elif getattr(self._local, "in_rest", False):
            self.schedule(
                0, lambda: self.send_webhook(url, params, account_sid, method), f"callback {url}"
            )
        else:
            self.send_webhook(url, params, account_sid, method)

    def send_webhook(
        self,
        url: str,
        params: Params,
        account_sid: str,
        method: str = "POST",
        raise_errors: bool = False,
        idempotency_token: str | None = None,
    ) -> requests.Response | None:
        """Sign and send one webhook with the account's token; log it in ``webhooks``.

        A failed delivery is logged and recorded in ``errors`` and returns None, unless
        ``raise_errors`` is set, in which case WebhookError propagates.
        """
        fields = dict(params)
        token = self.token_for(account_sid)
        try:
            response = self.sender.send(url, params, token, method, idempotency_token)
        except WebhookError as exc:
            self.webhooks.append(WebhookLogEntry(method, url, fields, None, str(exc)))
            if raise_errors:
                raise
            logger.warning("Webhook to %s failed: %s", urlsplit(url).path, exc)
            self.errors.append(str(exc))
            return None
        self.webhooks.append(WebhookLogEntry(method, url, fields, response.status_code))
        if response.status_code >= 500:
            logger.warning(
                "Webhook %s %s returned %s", method, urlsplit(url).path, response.status_code
            )
        return response

    def _deliver_with_chaos(
        self, chaos: Chaos, url: str, params: Params, account_sid: str, method: str
    ) -> None:
        with self.lock:
            if chaos.rng.random() < chaos.drop:
                logger.info("Chaos dropped a callback to %s", urlsplit(url).path)
                return
            due = self.now() + timedelta(seconds=chaos.rng.uniform(*chaos.delay))
            if not chaos.reorder:
                due = max(due, self._chaos_last_due.get(url, due))
                self._chaos_last_due[url] = due
            copies = 2 if chaos.rng.random() < chaos.duplicate else 1
            tiebreaks = [chaos.rng.random() if chaos.reorder else 0.0 for _ in range(copies)]

        # Both copies carry one idempotency token, like a delivery that Twilio retried.
        idempotency_token = new_idempotency_token()
        for tiebreak in tiebreaks:
            self.schedule_at(
                due,
                lambda: self.send_webhook(
                    url, params, account_sid, method, idempotency_token=idempotency_token
                ),
                f"callback {url}",
                tiebreak,
            )

    def _raise_for_magic(self, to: str, channel: str) -> None:
        if self.phone(to).invalid:
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        magic = magic_for(to, channel)
        if magic is None or magic.stage != Stage.CREATE:
            return
        with self.lock:
            hits = self._magic_hits[(to, channel)]
            self._magic_hits[(to, channel)] += 1
        if magic.times is not None and hits >= magic.times:
            return
        raise TwilioError(magic.http_status, magic.codes[channel], magic.message.format(to=to))

    def is_slow(self, to: str, channel: str) -> bool:
        """Return whether a create request to ``to`` gets its response after the client timeout."""
        magic = magic_for(to, channel)
        return magic is not None and magic.stage == Stage.TIMEOUT


def _matches(args: MultiDict[str, str], name: str, value: str) -> bool:
    expected = args.get(name)
    return expected is None or expected == value


def _time_matches(args: MultiDict[str, str], name: str, at: datetime) -> bool:
    try:
        on_or_after = args.get(f"{name}>")
        before = args.get(f"{name}<")
        on_day = args.get(name)
        if on_or_after is not None and at < parse_filter_time(on_or_after):
            return False
        if before is not None and at >= parse_filter_time(before):
            return False
        if on_day is not None:
            start = parse_filter_time(on_day)
            return start <= at < start + timedelta(days=1)
    except ValueError as exc:
        raise TwilioError(400, INVALID_PARAMETER_CODE, f"Invalid parameter {name}: {exc}") from exc
    return True
