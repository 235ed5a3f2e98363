"""Two accounts on one service: replies, callbacks and calls never cross between them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from twilio.request_validator import RequestValidator

from dispatch.models import DispatchState
from tests.harness import ACCOUNT_SID, ANS, AUTH_TOKEN, PUBLIC_BASE, B, Harness, profile_yaml

BETA_ANS = "+13125550300"
BETA_SID = "AC" + "1" * 32
BETA_TOKEN = "beta-subaccount-token"


@pytest.fixture
def two_accounts(harness: Harness) -> Iterator[Harness]:
    os.environ["BETA_TWILIO_TOKEN"] = BETA_TOKEN
    harness.fake.accounts[BETA_SID] = BETA_TOKEN
    harness.fake.configure_number(
        BETA_SID,
        BETA_ANS,
        {
            "voice_url": f"{PUBLIC_BASE}/twilio/voice",
            "sms_url": f"{PUBLIC_BASE}/twilio/sms",
        },
    )
    harness.load_profile()
    harness.load_profile(
        profile_yaml(
            account={
                "key": "beta",
                "name": "Beta Heating",
                "answering_numbers": [BETA_ANS],
                "twilio": {"account_sid": BETA_SID, "auth_token_env": "BETA_TWILIO_TOKEN"},
            }
        )
    )
    harness.set_pointer("techs", "a", 0)
    harness.set_pointer("techs", "a", 0, account_key="beta")
    yield harness
    os.environ.pop("BETA_TWILIO_TOKEN", None)


def test_reply_touches_only_its_account(two_accounts: Harness) -> None:
    h = two_accounts
    h.customer_texts("Leak at Acme customer")
    h.customer_texts("Boiler out", sender="+13125550151", to=BETA_ANS)
    assert [d.state for d in h.dispatches()] == [DispatchState.OFFERING] * 2

    h.fake.phone(B).send_sms(BETA_ANS, "1")
    h.run_jobs()

    acme, beta = h.dispatches()
    assert beta.state == DispatchState.ACKNOWLEDGED
    assert acme.state == DispatchState.OFFERING


def test_subaccount_sends_with_own_credentials(two_accounts: Harness) -> None:
    h = two_accounts
    h.customer_texts("Boiler out", sender="+13125550151", to=BETA_ANS)
    creates = [
        r for r in h.fake.requests if r.method == "POST" and r.path.endswith("Messages.json")
    ]
    assert creates
    assert all(BETA_SID in r.path for r in creates)


def test_callback_from_other_account_ignored(two_accounts: Harness) -> None:
    h = two_accounts
    h.customer_texts("Boiler out", sender="+13125550151", to=BETA_ANS)
    beta = h.dispatch()
    channel_id = beta.offers[0].channels[0].id
    url = f"{PUBLIC_BASE}/twilio/status/sms/{channel_id}"
    form = {
        "MessageSid": "SM" + "9" * 32,
        "MessageStatus": "failed",
        "ErrorCode": "30006",
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)

    with h.app.test_client() as client:
        response = client.post(
            f"/twilio/status/sms/{channel_id}", data=form, headers={"X-Twilio-Signature": signature}
        )

    assert response.status_code == 200
    assert h.dispatch(beta.id).offers[0].channels[0].error_code is None
    assert h.events("account_mismatch")


def test_acme_number_ignores_beta_offer(two_accounts: Harness) -> None:
    h = two_accounts
    h.customer_texts("Boiler out", sender="+13125550151", to=BETA_ANS)
    h.fake.phone(B).send_sms(ANS, "1")
    h.run_jobs()
    assert h.dispatch().state == DispatchState.OFFERING
    h.fake.phone(B).expect_sms("no open dispatch")
