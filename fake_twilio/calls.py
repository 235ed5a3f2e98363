"""One voice call in the fake: its status, its callbacks and a TwiML interpreter."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from werkzeug.datastructures import MultiDict

from fake_twilio.formats import API_VERSION, new_sid, rfc2822, split_events
from fake_twilio.webhooks import WebhookError

if TYPE_CHECKING:
    from fake_twilio.server import FakeTwilio

logger = logging.getLogger(__name__)

LIVE_STATUSES = ("queued", "ringing", "in-progress")
DEFAULT_EVENTS = ("completed",)
# Guards against TwiML that redirects to itself forever: the maximum documents per test step.
MAX_DOCUMENTS_PER_STEP = 50
# How many silent Gather prompts an answering machine sits through before it hangs up.
MAX_MACHINE_PROMPTS = 5


@dataclass
class GatherWait:
    """A ``<Gather>`` waiting for input."""

    action: str | None
    method: str
    inputs: set[str]
    num_digits: int | None
    finish_on_key: str
    action_on_empty_result: bool
    rest: list[ET.Element]
    document_url: str | None


@dataclass
class DialWait:
    """A ``<Dial>`` in progress, waiting for ``end_dial`` or a hangup."""

    numbers: list[str]
    action: str | None
    method: str
    rest: list[ET.Element]
    document_url: str | None
    caller_id: str | None = None


@dataclass
class CallSwitch:
    """New instructions set through the REST API while the call is live."""

    twiml: str | None = None
    url: str | None = None
    method: str = "POST"


@dataclass
class CallRecord:
    """The fixed facts of a call as created."""

    account_sid: str
    to: str
    from_: str
    direction: str
    params: MultiDict[str, str] = field(default_factory=MultiDict)


class FakeCall:
    """A call that a test drives like a person holding the phone.

    Outbound calls (``Direction=outbound-api``) start ``queued``. The test moves them with
    ``ring``, ``answer``, ``press``, ``hangup`` and the other verbs. Each step sends the
    status callbacks that the app requested and follows the app's TwiML.
    """

    def __init__(
        self, fake: FakeTwilio, record: CallRecord, url: str | None, twiml: str | None, method: str
    ) -> None:
        self._fake = fake

        self.sid = new_sid("CA")
        self.account_sid = record.account_sid
        self.to = record.to
        self.from_ = record.from_
        self.direction = record.direction
        self.params = record.params
        self.url = url
        self.twiml = twiml
        self.method = method

        self.status = "queued"
        self.date_created: datetime = fake.now()
        self.date_updated: datetime = self.date_created
        self.start_time: datetime | None = None
        self.answered_at: datetime | None = None
        self.end_time: datetime | None = None
        self.answered_by: str | None = None
        self.error_code: int | None = None
        self.started = False
        self.claimed = False  # set once a test's expect_call returned this call

        self.spoken: list[str] = []
        self.played: list[str] = []
        self.dialed: list[str] = []
        self.dial_caller_ids: list[str | None] = []
        self.errors: list[str] = []
        self.documents: list[str] = []

        self._sequence = 0
        self._waiting: GatherWait | DialWait | None = None
        self._switch: CallSwitch | None = None
        self._documents_this_step = 0

    # --- what a test reads -------------------------------------------------------------

    @property
    def said_text(self) -> str:
        """All ``<Say>`` text heard so far, joined by spaces."""
        return " ".join(self.spoken)

    @property
    def ended(self) -> bool:
        return self.status not in LIVE_STATUSES

    @property
    def gathering(self) -> bool:
        """Whether a ``<Gather>`` is waiting for input."""
        return isinstance(self._waiting, GatherWait)

    @property
    def dialing(self) -> bool:
        return isinstance(self._waiting, DialWait)

    @property
    def events(self) -> set[str]:
        """Status callback events the app requested."""
        requested = split_events(self.params.getlist("StatusCallbackEvent"))
        return set(requested or DEFAULT_EVENTS)

    def __repr__(self) -> str:
        return f"<FakeCall {self.sid} {self.direction} {self.from_}->{self.to} {self.status}>"

    # --- what a test does --------------------------------------------------------------

    def ring(self) -> FakeCall:
        """Make the phone ring and send the ``ringing`` status callback."""
        self._begin_step()
        self._require_status("queued", action="ring")
        self._require_started()
        self._set_status("ringing")
        self._status_callback("ringing")
        return self

    def answer(self, answered_by: str | None = "human") -> FakeCall:
        """Pick up, send the ``answered`` callback, fetch the call's TwiML and follow it.

        With ``AsyncAmd=true`` and ``answered_by`` set, the AMD callback is posted after
        the TwiML has run. With synchronous machine detection, ``AnsweredBy`` is part of
        the TwiML request instead.
        """
        self._begin_step()
        if self.status == "queued":
            self.ring()
        self._require_status("ringing", action="answer")

        self._set_status("in-progress")
        self.answered_at = self._fake.now()
        self._status_callback("answered")

        sync_amd = bool(self.params.get("MachineDetection")) and not self._async_amd
        extra = [("AnsweredBy", answered_by)] if sync_amd and answered_by else []
        if sync_amd:
            self.answered_by = answered_by
        self._run_initial_instructions(extra)

        if self._async_amd and answered_by and not self.ended:
            self.amd(answered_by)
        return self

    def press(self, digits: str) -> FakeCall:
        """Key in ``digits`` at the waiting ``<Gather>`` and follow the action's TwiML."""
        self._begin_step()
        gather = self._require_gather("dtmf", action=f"press {digits!r}")
        finished_on_key = ""
        if gather.finish_on_key and digits.endswith(gather.finish_on_key):
            digits = digits[: -len(gather.finish_on_key)]
            finished_on_key = gather.finish_on_key
        if gather.num_digits is not None:
            # NOTE: digits beyond numDigits are dropped; Twilio may buffer them for the next Gather.
            digits = digits[: gather.num_digits]
        if not digits:
            return self.silence()

        self._complete_gather(gather, [("Digits", digits), ("FinishedOnKey", finished_on_key)])
        return self

    def say_speech(self, text: str, confidence: float = 0.9) -> FakeCall:
        """Speak ``text`` into a speech ``<Gather>`` and follow the action's TwiML."""
        self._begin_step()
        gather = self._require_gather("speech", action=f"say {text!r}")
        self._complete_gather(gather, [("SpeechResult", text), ("Confidence", f"{confidence:.2f}")])
        return self

    def silence(self) -> FakeCall:
        """Let the waiting ``<Gather>`` time out.

        As on Twilio, with no input the call continues with the verb after the Gather.
        With ``actionOnEmptyResult="true"`` the action is posted with empty ``Digits``.
        """
        self._begin_step()
        gather = self._require_gather(None, action="stay silent")
        if gather.action_on_empty_result:
            self._complete_gather(gather, [("Digits", "")])
            return self
        self._waiting = None
        self._run_verbs(gather.rest, gather.document_url)
        return self

    def hangup(self) -> FakeCall:
        """Hang up a live call; the call ends ``completed``."""
        self._begin_step()
        self._require_status("in-progress", action="hang up")
        if isinstance(self._waiting, DialWait):
            self._post_dial_action(self._waiting, "completed", follow=False)
        self._finish("completed")
        return self

    def ring_out(self) -> FakeCall:
        """Let the call ring until the ring timeout; it ends ``no-answer``."""
        self._begin_step()
        if self.status == "queued":
            self.ring()
        self._require_status("ringing", action="ring out")
        self._finish("no-answer")
        return self

    def busy(self) -> FakeCall:
        """Return a busy signal; the call ends ``busy``."""
        self._begin_step()
        self._require_status(("queued", "ringing"), action="be busy")
        self._require_started()
        self._finish("busy")
        return self

    def fail(self, error_code: int | None = None) -> FakeCall:
        """End the call ``failed``, with ``ErrorCode`` in the callback when one is given."""
        self._begin_step()
        self._require_status(LIVE_STATUSES, action="fail")
        self._finish("failed", error_code)
        return self

    def amd(self, answered_by: str) -> FakeCall:
        """Post an async machine detection result, right or wrong, to ``AsyncAmdStatusCallback``."""
        self.answered_by = answered_by
        url = self.params.get("AsyncAmdStatusCallback")
        if not url:
            return self
        params = [
            ("AccountSid", self.account_sid),
            ("CallSid", self.sid),
            ("AnsweredBy", answered_by),
            ("MachineDetectionDuration", "2200"),
        ]
        method = self.params.get("AsyncAmdStatusCallbackMethod", "POST")
        self._fake.send_webhook(url, params, self.account_sid, method)
        self._fake.run_pending()
        return self

    def voicemail(self) -> FakeCall:
        """Let an answering machine take the call.

        The machine answers, the AMD callback reports ``machine_end_beep``, and the machine
        never presses a key: each Gather times out until the TwiML ends or the machine
        hangs up after a few prompts.
        """
        self._begin_step()
        if self.status in ("queued", "ringing"):
            self.answer(answered_by=None)
        if self.ended:
            return self
        if self._async_amd:
            self.amd("machine_end_beep")

        for _ in range(MAX_MACHINE_PROMPTS):
            self._fake.run_pending()
            if self.ended or not self.gathering:
                break
            self.silence()
        if not self.ended and self.gathering:
            self.hangup()
        return self

    def end_dial(self, status: str = "completed", duration: int = 30) -> FakeCall:
        """End the waiting ``<Dial>`` with ``DialCallStatus`` and follow the action's TwiML."""
        self._begin_step()
        dial = self._waiting
        if not isinstance(dial, DialWait):
            raise AssertionError(f"{self!r} is not dialing; spoken so far: {self.spoken!r}")
        self._waiting = None
        if dial.action:
            self._post_dial_action(dial, status, follow=True, duration=duration)
        else:
            self._run_verbs(dial.rest, dial.document_url)
        return self

    # --- used by the fake and its REST API ---------------------------------------------

    def start(self) -> None:
        """Start dialing: set ``start_time`` and send the ``initiated`` callback."""
        self.started = True
        self.start_time = self._fake.now()
        self._status_callback("initiated")

    def start_inbound(self, voice_url: str, method: str) -> None:
        """Answer an inbound call: post the voice webhook and follow its TwiML."""
        self.started = True
        self.start_time = self._fake.now()
        self.status = "ringing"
        twiml = self._fetch(voice_url, method, [])
        if twiml is None:
            return
        self._set_status("in-progress")
        self.answered_at = self.start_time
        self._execute(twiml, voice_url)

    def request_update(self, switch: CallSwitch | None, status: str | None) -> None:
        """Apply a REST update; callbacks and TwiML fetches run later from ``run_pending``."""
        if status in ("canceled", "completed") and self.status in ("queued", "ringing"):
            # NOTE: Twilio documents "completed" for in-progress calls only. The fake treats
            # it like "canceled" on a call that has not been answered yet.
            self._fake.schedule(0, lambda: self._finish_if_live("canceled"), f"cancel {self.sid}")
            return
        if status == "completed" and self.status == "in-progress":
            self._fake.schedule(0, lambda: self._finish_if_live("completed"), f"end {self.sid}")
            return
        if switch is None:
            return
        if self.status == "in-progress":
            self._switch = switch
            self._waiting = None
            self._fake.schedule(0, self._run_switch, f"switch {self.sid}")
        else:
            self.url, self.twiml, self.method = switch.url, switch.twiml, switch.method

    def to_resource(self) -> dict[str, Any]:
        """Return the call as Twilio's JSON Call resource."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        duration = None
        if self.ended:
            duration = (
                str(int((self.end_time - self.answered_at).total_seconds()))
                if self.answered_at and self.end_time
                else "0"
            )
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": duration,
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {
                "notifications": uri.replace(".json", "/Notifications.json"),
                "recordings": uri.replace(".json", "/Recordings.json"),
            },
        }

    # --- status and callbacks ----------------------------------------------------------

    @property
    def _async_amd(self) -> bool:
        return str(self.params.get("AsyncAmd", "")).lower() == "true"

    def _begin_step(self) -> None:
        self._documents_this_step = 0
        self._fake.run_pending()

    def _set_status(self, status: str) -> None:
        with self._fake.lock:
            self.status = status
            self.date_updated = self._fake.now()

    def _finish_if_live(self, status: str) -> None:
        if not self.ended:
            self._finish(status)

    def _finish(self, status: str, error_code: int | None = None) -> None:
        with self._fake.lock:
            self._waiting = None
            self._switch = None
            self.error_code = error_code
            self.end_time = self._fake.now()
        self._set_status(status)
        self._status_callback("completed", error_code)
        self._fake.call_ended(self)

    def _call_params(self) -> list[tuple[str, str]]:
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.sid),
            ("CallStatus", self.status),
            ("Called", self.to),
            ("Caller", self.from_),
            ("Direction", self.direction),
            ("From", self.from_),
            ("To", self.to),
        ]

    def _status_callback(self, event: str, error_code: int | None = None) -> None:
        url = self.params.get("StatusCallback")
        if not url or event not in self.events:
            return
        status = "initiated" if event == "initiated" else self.status
        params = [
            (key, status if key == "CallStatus" else value) for key, value in self._call_params()
        ]
        params += [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", str(self._sequence)),
            ("Timestamp", rfc2822(self._fake.now()) or ""),
        ]
        self._sequence += 1
        if event == "completed":
            resource = self.to_resource()
            params.append(("CallDuration", resource["duration"] or "0"))
        if error_code is not None:
            params.append(("ErrorCode", str(error_code)))
        method = self.params.get("StatusCallbackMethod", "POST")
        self._fake.deliver_callback(url, params, self.account_sid, method)

    # --- TwiML -------------------------------------------------------------------------

    def _run_initial_instructions(self, extra: list[tuple[str, str]]) -> None:
        if self.twiml is not None:
            self._execute(self.twiml, None)
        elif self.url:
            self._fetch_and_run(self.url, self.method, extra)
        else:
            self.errors.append("no Url or Twiml to run")
            self._finish("completed")

    def _run_switch(self) -> None:
        switch, self._switch = self._switch, None
        if switch is None or self.ended:
            return
        self._documents_this_step = 0
        if switch.twiml is not None:
            self._execute(switch.twiml, None)
        elif switch.url:
            self._fetch_and_run(switch.url, switch.method, [])

    def _fetch_and_run(self, url: str, method: str, extra: list[tuple[str, str]]) -> None:
        twiml = self._fetch(url, method, extra)
        if twiml is not None:
            self._execute(twiml, url)

    def _fetch(self, url: str, method: str, extra: list[tuple[str, str]]) -> str | None:
        """Request TwiML from the app; on failure end the call as Twilio does and return None."""
        self._documents_this_step += 1
        if self._documents_this_step > MAX_DOCUMENTS_PER_STEP:
            raise AssertionError(
                f"{self!r} followed more than {MAX_DOCUMENTS_PER_STEP} TwiML documents in one step"
            )

        try:
            response = self._fake.send_webhook(
                url, self._call_params() + extra, self.account_sid, method, raise_errors=True
            )
        except WebhookError as exc:
            self._application_error(f"11200 HTTP retrieval failure for {url}: {exc}")
            return None
        if response is None or response.status_code >= 400:
            status = None if response is None else response.status_code
            self._application_error(f"11200 HTTP retrieval failure: {url} returned {status}")
            return None
        return response.text

    def _application_error(self, message: str) -> None:
        logger.warning("Call %s: %s", self.sid, message)
        self.errors.append(message)
        self.spoken.append("We are sorry, an application error has occurred. Goodbye.")
        if not self.ended:
            self._finish("completed" if self.status == "in-progress" else "failed")

    def _execute(self, twiml: str, document_url: str | None) -> None:
        self.documents.append(twiml)
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError as exc:
            self._application_error(f"12100 Document parse failure: {exc}")
            return
        if root.tag != "Response":
            self._application_error(
                f"12100 Document parse failure: root element is <{root.tag}>, not <Response>"
            )
            return
        self._run_verbs(list(root), document_url)

    def _run_verbs(self, verbs: list[ET.Element], document_url: str | None) -> None:
        for index, verb in enumerate(verbs):
            if self.ended:
                return
            rest = verbs[index + 1 :]
            if self._run_verb(verb, rest, document_url):
                return
        # Twilio hangs up when a document runs out of verbs.
        if not self.ended and self._waiting is None:
            self._finish("completed")

    def _run_verb(self, verb: ET.Element, rest: list[ET.Element], document_url: str | None) -> bool:
        """Run one verb; return True when it stops the document (wait, redirect or end)."""
        tag = verb.tag
        if tag == "Say":
            self.spoken.append((verb.text or "").strip())
        elif tag == "Play":
            self.played.append((verb.text or "").strip())
        elif tag == "Pause":
            pass
        elif tag == "Gather":
            self._start_gather(verb, rest, document_url)
            return True
        elif tag == "Redirect":
            target = urljoin(document_url or "", (verb.text or "").strip())
            self._fetch_and_run(target, verb.get("method", "POST"), [])
            return True
        elif tag == "Hangup":
            self._finish("completed")
            return True
        elif tag == "Reject":
            # NOTE: a guess. A rejected call ends "busy" for reason="busy", else "no-answer".
            self._finish("busy" if verb.get("reason") == "busy" else "no-answer")
            return True
        elif tag == "Dial":
            self._start_dial(verb, rest, document_url)
            return True
        elif tag == "Record":
            self._record(verb, document_url)
            return True
        else:
            logger.info("Call %s: TwiML verb <%s> is not simulated and was skipped", self.sid, tag)
        return False

    def _start_gather(
        self, verb: ET.Element, rest: list[ET.Element], document_url: str | None
    ) -> None:
        for child in verb:
            if child.tag == "Say":
                self.spoken.append((child.text or "").strip())
            elif child.tag == "Play":
                self.played.append((child.text or "").strip())

        num_digits = verb.get("numDigits")
        self._waiting = GatherWait(
            action=verb.get("action"),
            method=verb.get("method", "POST"),
            inputs=set(verb.get("input", "dtmf").split()),
            num_digits=int(num_digits) if num_digits else None,
            finish_on_key=verb.get("finishOnKey", "#"),
            action_on_empty_result=verb.get("actionOnEmptyResult", "false").lower() == "true",
            rest=rest,
            document_url=document_url,
        )

    def _start_dial(
        self, verb: ET.Element, rest: list[ET.Element], document_url: str | None
    ) -> None:
        numbers = [(child.text or "").strip() for child in verb if child.tag == "Number"]
        if not numbers and (verb.text or "").strip():
            numbers = [(verb.text or "").strip()]
        self.dialed.extend(numbers)
        self.dial_caller_ids.append(verb.get("callerId"))
        self._waiting = DialWait(
            numbers=numbers,
            action=verb.get("action"),
            method=verb.get("method", "POST"),
            rest=rest,
            document_url=document_url,
            caller_id=verb.get("callerId"),
        )

    def _record(self, verb: ET.Element, document_url: str | None) -> None:
        action = (
            urljoin(document_url or "", verb.get("action", ""))
            if verb.get("action") or document_url
            else None
        )
        if not action:
            self._finish("completed")
            return
        recording_sid = new_sid("RE")
        extra = [
            ("RecordingSid", recording_sid),
            (
                "RecordingUrl",
                f"https://api.twilio.com/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording_sid}",
            ),
            ("RecordingDuration", "5"),
            ("Digits", "hangup"),
        ]
        self._fetch_and_run(action, verb.get("method", "POST"), extra)

    def _require_gather(self, needed_input: str | None, action: str) -> GatherWait:
        gather = self._waiting
        if self.ended or not isinstance(gather, GatherWait):
            raise AssertionError(
                f"cannot {action}: {self!r} has no <Gather> waiting; spoken so far: {self.spoken!r}"
            )
        if needed_input is not None and needed_input not in gather.inputs:
            raise AssertionError(
                f"cannot {action}: the <Gather> accepts input {sorted(gather.inputs)!r}"
            )
        return gather

    def _complete_gather(self, gather: GatherWait, extra: list[tuple[str, str]]) -> None:
        self._waiting = None
        target = urljoin(gather.document_url or "", gather.action or "")
        if not target:
            self._run_verbs(gather.rest, gather.document_url)
            return
        self._fetch_and_run(target, gather.method, extra)

    def _post_dial_action(
        self, dial: DialWait, status: str, follow: bool, duration: int = 0
    ) -> None:
        if not dial.action:
            return
        extra = [
            ("DialCallSid", new_sid("CA")),
            ("DialCallStatus", status),
            ("DialCallDuration", str(duration)),
        ]
        target = urljoin(dial.document_url or "", dial.action)
        if follow:
            self._fetch_and_run(target, dial.method, extra)
        else:
            self._fake.send_webhook(
                target, self._call_params() + extra, self.account_sid, dial.method
            )

    def _require_status(self, allowed: str | tuple[str, ...], action: str) -> None:
        allowed_statuses = (allowed,) if isinstance(allowed, str) else allowed
        if self.status not in allowed_statuses:
            raise AssertionError(
                f"cannot {action}: {self!r} is {self.status}, "
                f"expected {' or '.join(allowed_statuses)}"
            )

    def _require_started(self) -> None:
        if not self.started:
            raise AssertionError(
                f"{self!r} is still queued behind the calls-per-second limit; "
                "advance the clock and call run_pending()"
            )
