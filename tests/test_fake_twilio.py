"""fake_twilio driven through the real twilio library; a tiny app checks the webhooks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, Response, request
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.datastructures import MultiDict
from werkzeug.serving import BaseWSGIServer, make_server

from dispatch.clock import FixedClock
from fake_twilio import MAGIC_NUMBERS, FakeTwilio, start_in_thread
from fake_twilio.magic import Stage
from fake_twilio.scripts import answer_and_press, busy, reply_sms, tapback
from jobs.twilio_client import RedirectingHttpClient, make_twilio_client

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
SUBACCOUNT_SID = "AC" + "2" * 32
SUBACCOUNT_TOKEN = "subaccount-auth-token"
TOKENS = {ACCOUNT_SID: AUTH_TOKEN, SUBACCOUNT_SID: SUBACCOUNT_TOKEN}
PUBLIC_BASE_URL = "https://dispatch.example.org"
ANSWERING_NUMBER = "+13125550100"
TECH = "+13125550101"
CALLER = "+13125550150"
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


@dataclass
class Received:
    """One webhook as the test app received it."""

    path: str
    form: dict[str, list[str]]
    signature_valid: bool
    idempotency_token: str

    def field(self, name: str) -> str:
        return self.form[name][0]


@dataclass
class WebhookApp:
    """The tiny app under test: it validates signatures and returns canned TwiML."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path_prefix: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.path.startswith(path_prefix)]


def build_webhook_app(log: WebhookApp) -> Flask:
    app = Flask(__name__)

    @app.before_request
    def check_signature() -> Response | None:
        raw_query = request.query_string.decode()
        url = PUBLIC_BASE_URL + request.path + (f"?{raw_query}" if raw_query else "")
        fields = request.form if request.method == "POST" else request.args
        validator = RequestValidator(TOKENS.get(fields.get("AccountSid", ""), "unknown"))
        valid = validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", ""))
        received = Received(
            request.full_path.rstrip("?"),
            fields.to_dict(flat=False),
            valid,
            request.headers.get("I-Twilio-Idempotency-Token", ""),
        )
        with log.lock:
            log.received.append(received)
        return None if valid else Response("bad signature", status=403)

    def twiml(body: str) -> Response:
        return Response(f"<?xml version='1.0'?><Response>{body}</Response>", mimetype="text/xml")

    @app.post("/twilio/offer/<int:offer_id>/twiml")
    def offer_twiml(offer_id: int) -> Response:
        return twiml(
            f'<Gather numDigits="1" action="/twilio/offer/{offer_id}/gather?prompt=1">'
            "<Say>Acme Plumbing has a job: burst pipe.</Say>"
            "<Say>Press 1 to accept, 2 to pass.</Say>"
            "</Gather><Say>We did not get your answer. Goodbye.</Say>"
        )

    @app.post("/twilio/offer/<int:offer_id>/gather")
    def offer_gather(offer_id: int) -> Response:
        digits = request.form.get("Digits", "")
        if digits == "1":
            return twiml(
                "<Say>Accepted. Stay on the line to be connected.</Say>"
                f'<Dial callerId="{ANSWERING_NUMBER}" action="/twilio/offer/{offer_id}/dial">'
                f"<Number>{CALLER}</Number></Dial>"
            )
        return twiml("<Say>Passed. Goodbye.</Say><Hangup/>")

    @app.post("/twilio/offer/<int:offer_id>/dial")
    def offer_dial(offer_id: int) -> Response:
        return twiml("<Say>The caller hung up.</Say>")

    @app.post("/twilio/voice")
    def voice() -> Response:
        return twiml(
            '<Gather input="speech dtmf" action="/twilio/voice/reason">'
            "<Say>Acme after hours. Tell us the reason for your call.</Say></Gather>"
        )

    @app.post("/twilio/voice/reason")
    def voice_reason() -> Response:
        reason = request.form.get("SpeechResult") or request.form.get("Digits", "")
        return twiml(f"<Say>You said {reason}. A technician will call you back.</Say><Hangup/>")

    @app.post("/twilio/sms")
    def sms() -> Response:
        return twiml("<Message>We got your message.</Message>")

    @app.route("/twilio/status/<path:rest>", methods=["GET", "POST"])
    def status(rest: str) -> Response:
        return Response("", status=204)

    @app.post("/twilio/amd/<int:offer_id>")
    def amd(offer_id: int) -> Response:
        return Response("", status=204)

    return app


@pytest.fixture(scope="module")
def webhook_app() -> Iterator[tuple[WebhookApp, str]]:
    log = WebhookApp()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, build_webhook_app(log), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield log, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture(scope="module")
def running_fake(
    clock: FixedClock, webhook_app: tuple[WebhookApp, str]
) -> Iterator[tuple[FakeTwilio, str]]:
    numbers = {
        ANSWERING_NUMBER: {
            "voice_url": f"{PUBLIC_BASE_URL}/twilio/voice",
            "sms_url": f"{PUBLIC_BASE_URL}/twilio/sms",
            "account_sid": ACCOUNT_SID,
        }
    }
    fake = FakeTwilio(
        clock,
        TOKENS,
        webhook_app[1],
        numbers,
        slow_response_seconds=1.0,
        parents={SUBACCOUNT_SID: ACCOUNT_SID},
    )
    server, base_url = start_in_thread(fake)
    yield fake, base_url
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake(
    running_fake: tuple[FakeTwilio, str], clock: FixedClock, webhook_app: tuple[WebhookApp, str]
) -> FakeTwilio:
    clock.set(T0)
    running_fake[0].reset()
    with webhook_app[0].lock:
        webhook_app[0].received.clear()
    return running_fake[0]


@pytest.fixture
def client(running_fake: tuple[FakeTwilio, str]) -> Client:
    return make_twilio_client(ACCOUNT_SID, AUTH_TOKEN, base_url=running_fake[1], timeout=5.0)


@pytest.fixture
def hooks(webhook_app: tuple[WebhookApp, str]) -> WebhookApp:
    return webhook_app[0]


def place_offer_call(client: Client, to: str = TECH, offer_id: int = 1) -> str:
    call = client.calls.create(
        to=to,
        from_=ANSWERING_NUMBER,
        url=f"{PUBLIC_BASE_URL}/twilio/offer/{offer_id}/twiml",
        status_callback=f"{PUBLIC_BASE_URL}/twilio/status/call/{offer_id}",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        timeout=25,
        machine_detection="Enable",
        async_amd="true",
        async_amd_status_callback=f"{PUBLIC_BASE_URL}/twilio/amd/{offer_id}",
    )
    assert call.sid is not None
    return call.sid


def send_offer_sms(client: Client, to: str = TECH, offer_id: int = 1) -> str:
    message = client.messages.create(
        to=to,
        from_=ANSWERING_NUMBER,
        body="Acme dispatch 4821: burst pipe. Reply 1 to accept, 2 to pass.",
        status_callback=f"{PUBLIC_BASE_URL}/twilio/status/sms/{offer_id}",
        validity_period=120,
        smart_encoded=True,
    )
    assert message.sid is not None
    return message.sid


def test_client_rewrites_twilio_hosts() -> None:
    http_client = RedirectingHttpClient("http://127.0.0.1:8801", timeout=1.0)

    rewritten = http_client.rewrite_url(
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json?To=%2B1"
    )
    untouched = http_client.rewrite_url("https://example.org/x")

    assert rewritten == "http://127.0.0.1:8801/2010-04-01/Accounts/AC1/Calls.json?To=%2B1"
    assert untouched == "https://example.org/x"


def test_call_create_fetch_list(fake: FakeTwilio, client: Client) -> None:
    sid = place_offer_call(client)

    fetched = client.calls(sid).fetch()
    listed = client.calls.list(to=TECH, start_time_after=T0 - timedelta(seconds=1))
    none_later = client.calls.list(to=TECH, start_time_after=T0 + timedelta(hours=1))

    assert sid.startswith("CA")
    assert len(sid) == 34
    assert fetched.status == "queued"
    assert fetched.to == TECH
    assert fetched._from == ANSWERING_NUMBER
    assert [call.sid for call in listed] == [sid]
    assert none_later == []
    assert fake.requests[0].form["StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]


def test_message_create_fetch_list(fake: FakeTwilio, client: Client) -> None:
    sid = send_offer_sms(client)

    fetched = client.messages(sid).fetch()
    listed = client.messages.list(to=TECH, date_sent_after=T0)

    assert sid.startswith("SM")
    assert len(sid) == 34
    assert fetched.status == "queued"
    assert fetched.body.startswith("Acme dispatch 4821")
    assert [message.sid for message in listed] == [sid]
    assert fake.phone(TECH).expect_sms("4821").sid == sid


def test_list_pages_through_results(fake: FakeTwilio, client: Client) -> None:
    sids = {send_offer_sms(client) for _ in range(5)}

    listed = client.messages.list(to=TECH, page_size=2)

    assert {message.sid for message in listed} == sids
    assert len(fake.requests) == 5 + 3


MAGIC_CREATE_CASES = [
    (number, channel, magic.codes[channel])
    for number, magic in MAGIC_NUMBERS.items()
    if magic.stage == Stage.CREATE
    for channel in magic.codes
]


@pytest.mark.parametrize(("number", "channel", "code"), MAGIC_CREATE_CASES)
def test_magic_number_raises_code(
    fake: FakeTwilio, client: Client, number: str, channel: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as raised:
        if channel == "call":
            place_offer_call(client, to=number)
        else:
            send_offer_sms(client, to=number)

    assert raised.value.code == code
    assert raised.value.status == MAGIC_NUMBERS[number].http_status


@pytest.mark.parametrize("number", ["+15005550104", "+15005550105"])
def test_transient_error_then_success(fake: FakeTwilio, client: Client, number: str) -> None:
    times = MAGIC_NUMBERS[number].times
    assert times is not None

    for _ in range(times):
        with pytest.raises(TwilioRestException):
            place_offer_call(client, to=number)
    sid = place_offer_call(client, to=number)

    assert sid in fake.calls


def test_read_timeout_still_creates(fake: FakeTwilio, running_fake: tuple[FakeTwilio, str]) -> None:
    impatient = make_twilio_client(ACCOUNT_SID, AUTH_TOKEN, base_url=running_fake[1], timeout=0.3)

    with pytest.raises(requests.exceptions.ReadTimeout):
        send_offer_sms(impatient, to="+15005550106")
    listed = impatient.messages.list(to="+15005550106", date_sent_after=T0)

    assert len(listed) == 1


@pytest.mark.parametrize(
    ("number", "status", "code"),
    [
        ("+15005550108", "undelivered", "30005"),
        ("+15005550109", "undelivered", "30006"),
        ("+15005550111", "failed", "30008"),
    ],
)
def test_sms_callback_failure(
    fake: FakeTwilio,
    client: Client,
    hooks: WebhookApp,
    clock: FixedClock,
    number: str,
    status: str,
    code: str,
) -> None:
    send_offer_sms(client, to=number)

    clock.advance(1)
    fake.run_pending()
    callbacks = hooks.at("/twilio/status/sms/1")

    assert callbacks[-1].field("MessageStatus") == status
    assert callbacks[-1].field("ErrorCode") == code


def test_openapi_rejects_bad_integer(fake: FakeTwilio, client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client.calls.create(
            to=TECH, from_=ANSWERING_NUMBER, url=f"{PUBLIC_BASE_URL}/x", timeout="abc"
        )

    assert raised.value.status == 400
    assert "Timeout" in raised.value.msg
    assert fake.calls == {}


def test_openapi_rejects_unknown_and_enum(
    fake: FakeTwilio, running_fake: tuple[FakeTwilio, str]
) -> None:
    url = f"{running_fake[1]}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    form = {"To": TECH, "From": ANSWERING_NUMBER, "Url": f"{PUBLIC_BASE_URL}/x"}

    unknown = requests.post(
        url, data={**form, "Foo": "1"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
    )
    bad_enum = requests.post(
        url, data={**form, "Method": "PUT"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
    )
    missing = requests.post(url, data={"To": TECH}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert unknown.status_code == 400
    assert unknown.json()["code"] == 20001
    assert "Foo" in unknown.json()["message"]
    assert bad_enum.status_code == 400
    assert "Method" in bad_enum.json()["message"]
    assert "From" in missing.json()["message"]
    assert missing.json()["more_info"].endswith(str(missing.json()["code"]))


def test_wrong_token_is_20003(fake: FakeTwilio, running_fake: tuple[FakeTwilio, str]) -> None:
    intruder = make_twilio_client(ACCOUNT_SID, "wrong-token", base_url=running_fake[1])

    with pytest.raises(TwilioRestException) as raised:
        place_offer_call(intruder)

    assert raised.value.status == 401
    assert raised.value.code == 20003


def test_call_callbacks_signed_and_sequenced(
    fake: FakeTwilio, client: Client, hooks: WebhookApp
) -> None:
    place_offer_call(client)

    call = fake.phone(TECH).expect_call()
    call.ring()
    call.answer(answered_by=None)
    call.press("2")
    callbacks = hooks.at("/twilio/status/call/1")

    assert all(item.signature_valid for item in hooks.received)
    assert [item.field("CallStatus") for item in callbacks] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [item.field("SequenceNumber") for item in callbacks] == ["0", "1", "2", "3"]
    assert callbacks[-1].field("Timestamp").endswith("+0000")
    assert "CallDuration" in callbacks[-1].form
    assert callbacks[0].field("AccountSid") == ACCOUNT_SID


def test_sms_callbacks_have_no_sequence(
    fake: FakeTwilio, client: Client, hooks: WebhookApp
) -> None:
    send_offer_sms(client)

    fake.phone(TECH).expect_sms().deliver()
    callbacks = hooks.at("/twilio/status/sms/1")

    assert [item.field("MessageStatus") for item in callbacks] == ["sent", "delivered"]
    assert all("SequenceNumber" not in item.form for item in callbacks)
    assert all(item.signature_valid for item in callbacks)
    assert callbacks[0].field("SmsSid") == callbacks[0].field("MessageSid")


def test_gather_accept_and_dial(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    place_offer_call(client)

    call = fake.phone(TECH).expect_call("Acme").press("1")
    gather_posts = hooks.at("/twilio/offer/1/gather?prompt=1")
    call.end_dial("completed", duration=42)

    assert gather_posts[0].field("Digits") == "1"
    assert gather_posts[0].field("CallStatus") == "in-progress"
    assert "Accepted. Stay on the line to be connected." in call.spoken
    assert call.dialed == [CALLER]
    assert call.dial_caller_ids == [ANSWERING_NUMBER]
    assert hooks.at("/twilio/offer/1/dial")[0].field("DialCallDuration") == "42"
    assert call.spoken[-1] == "The caller hung up."
    assert call.status == "completed"


def test_gather_silence_continues(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    place_offer_call(client)

    call = fake.phone(TECH).expect_call("Press 1").silence()

    assert hooks.at("/twilio/offer/1/gather") == []
    assert call.spoken[-1] == "We did not get your answer. Goodbye."
    assert call.ended


def test_voicemail_posts_amd(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    place_offer_call(client)

    call = fake.phone(TECH).expect_call().voicemail()
    amd = hooks.at("/twilio/amd/1")

    assert amd[0].field("AnsweredBy") == "machine_end_beep"
    assert hooks.at("/twilio/offer/1/gather") == []
    assert call.ended
    assert call.answered_by == "machine_end_beep"


def test_rest_update_switches_call(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    sid = place_offer_call(client)
    call = fake.phone(TECH).expect_call("Acme")

    client.calls(sid).update(twiml="<Response><Say>This job was taken.</Say><Hangup/></Response>")
    fake.run_pending()

    assert call.spoken[-1] == "This job was taken."
    assert client.calls(sid).fetch().status == "completed"
    assert hooks.at("/twilio/status/call/1")[-1].field("CallStatus") == "completed"


def test_rest_cancel_ringing_call(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    sid = place_offer_call(client)
    fake.phone(TECH).expect_call().ring()

    client.calls(sid).update(status="canceled")
    fake.run_pending()

    assert client.calls(sid).fetch().status == "canceled"
    assert hooks.at("/twilio/status/call/1")[-1].field("CallStatus") == "canceled"


def test_chaos_duplicates_callbacks(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    fake.chaos(duplicate=1.0, delay=(0, 0), reorder=False, drop=0.0, seed=7)
    send_offer_sms(client)

    fake.phone(TECH).expect_sms().deliver()
    fake.run_pending()
    callbacks = hooks.at("/twilio/status/sms/1")
    statuses = [item.field("MessageStatus") for item in callbacks]

    assert statuses == ["sent", "sent", "delivered", "delivered"]
    assert callbacks[0].idempotency_token == callbacks[1].idempotency_token
    assert callbacks[1].idempotency_token != callbacks[2].idempotency_token


def test_chaos_delay_waits_for_clock(
    fake: FakeTwilio, client: Client, hooks: WebhookApp, clock: FixedClock
) -> None:
    fake.chaos(duplicate=0.0, delay=(1, 2), reorder=True, drop=0.0, seed=3)
    send_offer_sms(client)

    fake.phone(TECH).expect_sms().deliver()
    before = len(hooks.at("/twilio/status/sms/1"))
    clock.advance(2)
    fake.run_pending()

    assert before == 0
    assert sorted(item.field("MessageStatus") for item in hooks.at("/twilio/status/sms/1")) == [
        "delivered",
        "sent",
    ]


def test_inbound_sms_webhook(fake: FakeTwilio, hooks: WebhookApp) -> None:
    response = fake.phone(CALLER).send_sms(
        ANSWERING_NUMBER, "Burst pipe in the basement", OptOutType="STOP"
    )

    received = hooks.at("/twilio/sms")[0]

    assert response.status_code == 200
    assert received.signature_valid
    assert received.field("Body") == "Burst pipe in the basement"
    assert received.field("SmsStatus") == "received"
    assert received.field("OptOutType") == "STOP"
    assert received.field("MessageSid").startswith("SM")
    assert fake.phone(CALLER).expect_sms().body == "We got your message."


def test_inbound_call_speech(fake: FakeTwilio, hooks: WebhookApp) -> None:
    call = fake.phone(CALLER).dial(ANSWERING_NUMBER)
    call.say_speech("burst pipe")

    first = hooks.at("/twilio/voice")[0]

    assert first.field("CallStatus") == "ringing"
    assert first.field("Direction") == "inbound"
    assert first.field("Caller") == CALLER
    assert hooks.at("/twilio/voice/reason")[0].field("CallStatus") == "in-progress"
    assert "You said burst pipe. A technician will call you back." in call.spoken
    assert call.status == "completed"


def test_cps_limit_queues_calls(
    fake: FakeTwilio, client: Client, clock: FixedClock, hooks: WebhookApp
) -> None:
    fake.set_cps(ACCOUNT_SID, 1)

    first = place_offer_call(client, offer_id=1)
    second = place_offer_call(client, offer_id=2)
    fake.run_pending()
    started_before = [fake.calls[first].started, fake.calls[second].started]
    clock.advance(1)
    fake.run_pending()

    assert started_before == [True, False]
    assert fake.calls[second].started
    assert hooks.at("/twilio/status/call/2")[0].field("CallStatus") == "initiated"


def test_scripted_phone_presses(
    fake: FakeTwilio, client: Client, clock: FixedClock, hooks: WebhookApp
) -> None:
    fake.phone(TECH).script(answer_and_press("1", after_seconds=2))
    place_offer_call(client)

    for _ in range(4):
        clock.advance(1)
        fake.run_pending()

    assert hooks.at("/twilio/offer/1/gather")[0].field("Digits") == "1"
    assert fake.errors == []


def test_scripted_sms_reply(
    fake: FakeTwilio, client: Client, clock: FixedClock, hooks: WebhookApp
) -> None:
    fake.phone(TECH).script(reply_sms("1 4821", after_seconds=3))
    send_offer_sms(client)

    for _ in range(4):
        clock.advance(1)
        fake.run_pending()

    assert [item.field("MessageStatus") for item in hooks.at("/twilio/status/sms/1")] == [
        "sent",
        "delivered",
    ]
    assert hooks.at("/twilio/sms")[0].field("Body") == "1 4821"


def test_incoming_numbers_update(fake: FakeTwilio, client: Client) -> None:
    [number] = client.incoming_phone_numbers.list(phone_number=ANSWERING_NUMBER)

    client.incoming_phone_numbers(number.sid).update(sms_url=f"{PUBLIC_BASE_URL}/twilio/sms2")

    assert number.voice_url == f"{PUBLIC_BASE_URL}/twilio/voice"
    assert fake.number_config(ANSWERING_NUMBER)["sms_url"] == f"{PUBLIC_BASE_URL}/twilio/sms2"


def test_expect_call_lists_calls(fake: FakeTwilio) -> None:
    with pytest.raises(AssertionError, match="expected a call to"):
        fake.phone(TECH).expect_call()


def test_public_url_delivered_to_loopback(
    fake: FakeTwilio, webhook_app: tuple[WebhookApp, str]
) -> None:
    delivered = fake.sender.delivery_url(f"{PUBLIC_BASE_URL}/twilio/status/call/9?attempt=2")

    assert urlsplit(delivered).netloc == urlsplit(webhook_app[1]).netloc
    assert delivered.endswith("/twilio/status/call/9?attempt=2")


def test_subaccount_signs_with_own_token(
    fake: FakeTwilio, running_fake: tuple[FakeTwilio, str], hooks: WebhookApp
) -> None:
    subaccount = make_twilio_client(SUBACCOUNT_SID, SUBACCOUNT_TOKEN, base_url=running_fake[1])
    send_offer_sms(subaccount)

    fake.phone(TECH).expect_sms().deliver()
    callbacks = hooks.at("/twilio/status/sms/1")

    assert callbacks[0].field("AccountSid") == SUBACCOUNT_SID
    assert all(item.signature_valid for item in callbacks)
    assert fake.list_messages(ACCOUNT_SID, MultiDict()) == []


def test_messaging_service_sender(fake: FakeTwilio, client: Client) -> None:
    message = client.messages.create(
        to=TECH, messaging_service_sid="MG" + "3" * 32, body="Acme dispatch 4821"
    )

    assert message.status == "accepted"
    assert message.from_ == ANSWERING_NUMBER
    assert message.messaging_service_sid == "MG" + "3" * 32


def test_openapi_rejects_repeated_scalar(
    fake: FakeTwilio, running_fake: tuple[FakeTwilio, str]
) -> None:
    url = f"{running_fake[1]}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = [("To", TECH), ("To", CALLER), ("From", ANSWERING_NUMBER), ("Body", "x")]

    response = requests.post(url, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert response.status_code == 400
    assert "To" in response.json()["message"]
    assert fake.messages == {}


def test_rest_url_update_redirects(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    sid = place_offer_call(client)
    call = fake.phone(TECH).expect_call("Acme")

    client.calls(sid).update(url=f"{PUBLIC_BASE_URL}/twilio/offer/1/gather", method="POST")
    fake.run_pending()

    assert call.spoken[-1] == "Passed. Goodbye."
    assert call.status == "completed"
    assert "Digits" not in hooks.at("/twilio/offer/1/gather")[-1].form


def test_status_callback_by_get(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    client.calls.create(
        to=TECH,
        from_=ANSWERING_NUMBER,
        url=f"{PUBLIC_BASE_URL}/twilio/offer/1/twiml",
        status_callback=f"{PUBLIC_BASE_URL}/twilio/status/call/1?attempt=3",
        status_callback_method="GET",
    )

    fake.phone(TECH).expect_call().busy()
    [callback] = hooks.at("/twilio/status/call/1")

    assert callback.signature_valid
    assert callback.field("attempt") == "3"
    assert callback.field("CallStatus") == "busy"


def test_cancel_call_queued_by_cps(
    fake: FakeTwilio, client: Client, clock: FixedClock, hooks: WebhookApp
) -> None:
    fake.set_cps(ACCOUNT_SID, 1)
    place_offer_call(client, offer_id=1)
    second = place_offer_call(client, offer_id=2)

    client.calls(second).update(status="canceled")
    clock.advance(2)
    fake.run_pending()
    statuses = [item.field("CallStatus") for item in hooks.at("/twilio/status/call/2")]

    assert statuses == ["canceled"]
    assert fake.calls[second].started is False


def test_chaos_drop_loses_callbacks(fake: FakeTwilio, client: Client, hooks: WebhookApp) -> None:
    fake.chaos(duplicate=0.0, delay=(0, 0), reorder=False, drop=1.0, seed=1)
    send_offer_sms(client)

    fake.phone(TECH).expect_sms().deliver()
    fake.run_pending()

    assert hooks.at("/twilio/status/sms/1") == []
    assert fake.messages[next(iter(fake.messages))].status == "delivered"


def test_scripted_busy_phone(
    fake: FakeTwilio, client: Client, clock: FixedClock, hooks: WebhookApp
) -> None:
    fake.phone(TECH).script(busy())
    sid = place_offer_call(client)

    clock.advance(1)
    fake.run_pending()

    assert hooks.at("/twilio/status/call/1")[-1].field("CallStatus") == "busy"
    assert client.calls(sid).fetch().status == "busy"


def test_scripted_tapback_reply(
    fake: FakeTwilio, client: Client, clock: FixedClock, hooks: WebhookApp
) -> None:
    fake.phone(TECH).script(tapback("Liked", after_seconds=2))
    send_offer_sms(client)

    clock.advance(2)
    fake.run_pending()

    body = hooks.at("/twilio/sms")[0].field("Body")
    assert body.startswith("Liked \u201cAcme dispatch 4821")
    assert body.endswith("\u201d")


def test_parent_credentials_reach_subaccount(
    fake: FakeTwilio, running_fake: tuple[FakeTwilio, str]
) -> None:
    parent = make_twilio_client(ACCOUNT_SID, AUTH_TOKEN, base_url=running_fake[1])
    subaccount = make_twilio_client(SUBACCOUNT_SID, SUBACCOUNT_TOKEN, base_url=running_fake[1])

    parent_view = parent.api.v2010.accounts(SUBACCOUNT_SID).messages.create(
        to=TECH, from_=ANSWERING_NUMBER, body="x"
    )

    assert parent_view.account_sid == SUBACCOUNT_SID
    with pytest.raises(TwilioRestException) as raised:
        subaccount.api.v2010.accounts(ACCOUNT_SID).messages.create(
            to=TECH, from_=ANSWERING_NUMBER, body="x"
        )
    assert raised.value.code == 20003


def test_scripted_answer_after_ring_in_one_step() -> None:
    """A clock step that passes both the ring and a scripted answer still answers."""
    from dispatch.clock import FixedClock
    from fake_twilio import FakeTwilio
    from fake_twilio.scripts import answer_and_press

    clock = FixedClock(datetime(2025, 6, 10, 15, 0, tzinfo=UTC))
    fake = FakeTwilio(clock, {"AC" + "0" * 32: "token"})
    fake.phone("+13125550101").script(answer_and_press("1", after_seconds=3))
    call = fake.create_call("AC" + "0" * 32, MultiDict({
        "To": "+13125550101", "From": "+13125550100",
        "Twiml": "<Response><Gather numDigits='1'><Say>Press 1</Say></Gather></Response>",
    }))
    clock.advance(5)
    fake.run_pending()
    clock.advance(1)
    fake.run_pending()

    assert call.status in ("in-progress", "completed")
    assert "Press 1" in call.said_text
