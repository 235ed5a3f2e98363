"""An admin reads, in a real browser, the timeline that a fake_twilio scenario produced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.harness import ANS, A, B, Harness
from tests.test_admin_support import PASSWORD, add_user

pytestmark = pytest.mark.browser


@pytest.fixture
def scenario(db_url: str, redis_client: redis.Redis, redis_prefix: str) -> Iterator[Harness]:
    harness = Harness(db_url, redis_client, redis_prefix)
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Water heater leaking")
    harness.fake.phone(A).send_sms(ANS, "No, I'm ill")
    harness.run_jobs()
    harness.fake.phone(B).send_sms(ANS, "yes")
    harness.run_jobs()
    add_user(harness.runtime.db, "viewer@acme.example", "viewer", "acme")
    yield harness
    harness.close()


def test_timeline_from_scenario(browser: Any, scenario: Harness) -> None:
    dispatch = scenario.dispatch()
    page = browser.new_page()
    try:
        page.goto(f"{scenario.app_url}/admin/login")
        page.fill("input[name=email]", "viewer@acme.example")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{scenario.app_url}/admin/dispatches")
        assert f"/admin/dispatches/{dispatch.id}" in page.content()

        page.goto(f"{scenario.app_url}/admin/dispatches/{dispatch.id}")
        text = page.inner_text("body")
    finally:
        page.close()

    assert "Alice" in text
    assert "Bob" in text
    assert "Water heater leaking" in text
    assert "No, I'm ill" in text
    assert "acknowledged" in text.lower()
    assert "2025-06-10" in text
