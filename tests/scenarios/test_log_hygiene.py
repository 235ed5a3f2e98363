"""Log lines of a whole scenario carry no full phone number, message body or token."""

from __future__ import annotations

import logging
import re

import pytest

from tests.harness import ANS, AUTH_TOKEN, CUSTOMER, A, Harness

FULL_NUMBER = re.compile(r"\+?1?312555\d{4}")


def test_scenario_logs_are_masked(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness.load_profile(account={"phi": True}, route={"channels": ["voice", "sms"]})
    harness.set_pointer("techs", "c", 2)

    harness.customer_texts("Chest pain since the operation")
    call = harness.fake.phone(A).expect_call("Press 1")
    harness.advance(121)
    harness.fake.phone("+13125550102").send_sms(ANS, "Yes, on my way")
    harness.run_jobs()
    call.press("1")
    harness.customer_texts("Still hurts", sender=CUSTOMER)

    ours = [r for r in caplog.records if r.name.split(".")[0] in
            ("dispatch", "webhooks", "jobs", "app")]
    assert ours
    for record in ours:
        message = record.getMessage()
        if record.levelno >= logging.INFO:
            assert not FULL_NUMBER.search(message), message
        assert "Chest pain" not in message
        assert "Still hurts" not in message
        assert AUTH_TOKEN not in message
