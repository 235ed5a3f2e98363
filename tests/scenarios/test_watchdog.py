"""The watchdog pages the desk directly when the reconciler stops or offers pile up."""

from __future__ import annotations

from jobs.watchdog import WatchdogState, check_once
from tests.harness import DESK, A, Harness


def test_stale_heartbeat_pages_desk(harness: Harness) -> None:
    harness.load_profile()
    state = WatchdogState()

    assert check_once(harness.runtime, state) == ["reconciler"]
    page = harness.fake.phone(DESK).expect_sms("reconciler never ran")
    assert "WATCHDOG" in page.body
    assert check_once(harness.runtime, state) == []
    harness.fake.phone(DESK).assert_no_new_sms()


def test_healthy_service_pages_nobody(harness: Harness) -> None:
    harness.load_profile()
    harness.tick()
    assert check_once(harness.runtime, WatchdogState()) == []
    harness.fake.phone(DESK).assert_no_new_sms()


def test_overdue_offers_page_desk(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak")
    harness.fake.phone(A).expect_sms("Reply 1")
    harness.tick()
    harness.clock.advance(200)  # the reconciler does not run: the offer stays overdue

    due = check_once(harness.runtime, WatchdogState())

    assert "overdue" in due
    harness.fake.phone(DESK).expect_sms("past their deadline")
