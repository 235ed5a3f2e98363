"""Twilio signatures behind a TLS-terminating proxy, and startup without an auth token."""

from __future__ import annotations

import json
import logging

import pytest

from app import create_app
from dispatch.models import DispatchState
from dispatch.settings import ConfigurationError
from jobs.runtime import set_runtime
from tests.harness import (
    ACCOUNT_SID,
    ANS,
    AUTH_TOKEN,
    CUSTOMER,
    DESK,
    PUBLIC_BASE,
    A,
    B,
    C,
    Harness,
)
from tests.scenarios.case_support import (
    fast_loopback,
    inbound_sms_form,
    post_signed,
    receipts,
    sid,
    signature,
    start_sms_offer,
)

__all__ = ["fast_loopback"]

OUR_PACKAGES = {"app", "dispatch", "jobs", "webhooks"}
SCENARIO_NUMBERS = [A, B, C, CUSTOMER, ANS, DESK]

PROXY_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "dispatch.example.org",
    "X-Forwarded-For": "203.0.113.9",
}


def test_proxied_request_accepted(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.advance(30)

    form = inbound_sms_form(A, "YES", sid("SM", 1))
    response = post_signed(harness, "/twilio/sms", form, headers=PROXY_HEADERS)
    harness.run_jobs()

    assert response.status_code == 200
    dispatch = harness.dispatch()
    assert dispatch.state == DispatchState.ACKNOWLEDGED
    assert harness.offers()[0].member_key == "a"
    sms_receipts = [r for r in receipts(harness, "sms") if r.provider_sid == sid("SM", 1)]
    assert len(sms_receipts) == 1
    assert sms_receipts[0].signature_ok
    assert sms_receipts[0].outcome == "accepted"
    assert sms_receipts[0].signature_url == f"{PUBLIC_BASE}/twilio/sms"

    harness.advance(200)
    harness.fake.phone(B).assert_no_new_sms()


def test_http_signature_rejected(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.advance(30)

    form = inbound_sms_form(A, "YES", sid("SM", 1))
    wrong_url = "http://dispatch.example.org/twilio/sms"
    response = post_signed(harness, "/twilio/sms", form, signed_url=wrong_url,
                           headers=PROXY_HEADERS)
    harness.run_jobs()

    assert response.status_code == 403
    assert harness.dispatch().state == DispatchState.OFFERING
    rejected = harness.events("receipt_rejected")
    assert len(rejected) == 1
    assert rejected[0].detail["reason"] == "signature_mismatch"
    assert rejected[0].detail["url"] == f"{PUBLIC_BASE}/twilio/sms"
    stored = json.dumps([e.detail for e in harness.events()])
    assert AUTH_TOKEN not in stored
    assert signature(wrong_url, form) not in stored
    rows = [r for r in receipts(harness, "sms") if r.provider_sid == sid("SM", 1)]
    assert [(r.signature_ok, r.outcome) for r in rows] == [(False, "rejected")]


def test_public_base_beats_forwarded_host(harness: Harness) -> None:
    start_sms_offer(harness)
    harness.advance(30)

    headers = {**PROXY_HEADERS, "X-Forwarded-Host": "dispatch-internal.svc"}
    form = inbound_sms_form(A, "YES", sid("SM", 1))
    response = post_signed(harness, "/twilio/sms", form, headers=headers)
    harness.run_jobs()

    assert response.status_code == 200
    assert harness.dispatch().state == DispatchState.ACKNOWLEDGED


def test_forged_forwarded_host_rejected(harness: Harness) -> None:
    """A request signed over a host that only a forged header names must fail."""
    start_sms_offer(harness)
    form = inbound_sms_form(A, "YES", sid("SM", 1))
    forged = "https://attacker.example.net/twilio/sms"
    headers = {**PROXY_HEADERS, "X-Forwarded-Host": "attacker.example.net"}

    response = post_signed(harness, "/twilio/sms", form, signed_url=forged, headers=headers)

    assert response.status_code == 403
    assert harness.dispatch().state == DispatchState.OFFERING


def test_startup_without_token_fails(tmp_path: object) -> None:
    settings = {
        "TESTING": False, "TWILIO_AUTH_TOKEN": "", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "SECRET_KEY": "s" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/unused.sqlite3",
    }

    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        create_app(settings)


def test_readyz_reports_missing_token(harness: Harness) -> None:
    """Under TESTING the app starts without a token, but readiness stays red and reports why."""
    app = create_app({
        "TESTING": True, "TWILIO_AUTH_TOKEN": "", "DATABASE_URL": harness.runtime.db.url,
        "REDIS_URL": harness.runtime.settings.REDIS_URL, "SECRET_KEY": "s" * 32,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
    })
    try:
        response = app.test_client().get("/readyz")
        form = dict(inbound_sms_form(A, "1", sid("SM", 2)))
        posted = app.test_client().post("/twilio/sms", data=form)
    finally:
        app.extensions["rrd"].db.dispose()
        set_runtime(harness.runtime)

    assert response.status_code == 503
    assert response.get_json()["checks"]["twilio_auth_token"] == "missing"
    assert posted.status_code == 403


def test_logs_hide_secrets_and_numbers(harness: Harness, caplog: pytest.LogCaptureFixture,
                                       ) -> None:
    """No log line carries the auth token, a signature or a whole phone number."""
    caplog.set_level(logging.DEBUG)
    start_sms_offer(harness)
    form = inbound_sms_form(A, "YES", sid("SM", 1))
    wrong_url = "http://dispatch.example.org/twilio/sms"
    post_signed(harness, "/twilio/sms", form, signed_url=wrong_url, headers=PROXY_HEADERS)
    post_signed(harness, "/twilio/sms", form, headers=PROXY_HEADERS)
    harness.advance(200)

    ours = [r for r in caplog.records if r.name.split(".")[0] in OUR_PACKAGES]
    assert ours, "no log records were captured from the service"
    for record in ours:
        text = record.getMessage()
        assert AUTH_TOKEN not in text, record.name
        assert signature(wrong_url, form) not in text, record.name
        assert signature(f"{PUBLIC_BASE}/twilio/sms", form) not in text, record.name
        for number in SCENARIO_NUMBERS:
            assert number[2:] not in text, f"{record.name}: {text}"
