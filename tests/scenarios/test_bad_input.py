"""Bad requests get a clear 4xx or safe TwiML, an event, and never a 500."""

from __future__ import annotations

import logging

import pytest
from twilio.request_validator import RequestValidator

from app import create_app
from dispatch.settings import ConfigurationError
from tests.harness import ACCOUNT_SID, ANS, AUTH_TOKEN, CUSTOMER, PUBLIC_BASE, Harness


def post_signed(harness: Harness, path: str, form: dict[str, str]):  # type: ignore[no-untyped-def]
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE + path, form)
    with harness.app.test_client() as client:
        return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_missing_fields_get_400(harness: Harness) -> None:
    harness.load_profile()
    response = post_signed(harness, "/twilio/sms", {"AccountSid": ACCOUNT_SID, "Body": "hi"})
    assert response.status_code == 400
    assert "MessageSid" in response.get_data(as_text=True)
    assert harness.events("receipt_bad_request")


def test_unsigned_request_gets_403(harness: Harness) -> None:
    harness.load_profile()
    with harness.app.test_client() as client:
        response = client.post("/twilio/voice", data={"CallSid": "CA1", "To": ANS})
    assert response.status_code == 403
    assert harness.dispatches() == []
    assert harness.events("receipt_rejected")


def test_unknown_number_gets_safe_twiml(harness: Harness) -> None:
    harness.load_profile()
    form = {"CallSid": "CA" + "7" * 32, "From": CUSTOMER, "To": "+13125550444",
            "AccountSid": ACCOUNT_SID, "CallStatus": "ringing"}
    response = post_signed(harness, "/twilio/voice", form)
    assert response.status_code == 200
    assert "not in service" in response.get_data(as_text=True)
    assert harness.events("unknown_number")


def test_garbage_digits_reprompt(harness: Harness) -> None:
    harness.load_profile(route={"channels": ["voice"]})
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak")
    call = harness.fake.phone("+13125550101").expect_call("Press 1")
    channel_id = harness.offers()[0].channels[0].id
    form = {"CallSid": call.sid, "Digits": "#*<script>", "AccountSid": ACCOUNT_SID}
    response = post_signed(harness, f"/twilio/offer/{channel_id}/gather?prompt=1", form)
    assert response.status_code == 200
    assert "Press 1 to accept" in response.get_data(as_text=True)


def test_oversized_body_rejected(harness: Harness) -> None:
    harness.load_profile()
    form = {"MessageSid": "SM" + "8" * 32, "From": CUSTOMER, "To": ANS,
            "AccountSid": ACCOUNT_SID, "Body": "x" * 200_000}
    response = post_signed(harness, "/twilio/sms", form)
    assert response.status_code == 413
    assert harness.dispatches() == []


def test_unknown_channel_callback_is_200(harness: Harness) -> None:
    harness.load_profile()
    form = {"CallSid": "CA" + "5" * 32, "CallStatus": "completed", "SequenceNumber": "3",
            "AccountSid": ACCOUNT_SID}
    response = post_signed(harness, "/twilio/status/call/9999", form)
    assert response.status_code == 200
    assert harness.events("orphan_callback")


def test_missing_token_stops_startup() -> None:
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        create_app({"TWILIO_AUTH_TOKEN": "", "SECRET_KEY": "s" * 32})


def test_missing_desk_warns_at_startup(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app({"TESTING": True, "DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": "t",
                      "OPERATOR_DESK_NUMBER": ""})
    app.extensions["rrd"].db.dispose()
    assert "OPERATOR_DESK_NUMBER is not set" in caplog.text


def test_readyz_reports_checks(harness: Harness) -> None:
    harness.tick()
    with harness.app.test_client() as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert health.status_code == 200
    checks = ready.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"] == "ok"
    assert checks["twilio_auth_token"] == "configured"
    assert checks["reconciler_heartbeat_age_seconds"] == 0
    assert checks["scheduler"] == "no active scheduler for queue"
