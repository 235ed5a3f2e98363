"""The admin pages in headless Chromium: log in, filter, read a timeline, edit the roster."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from dispatch.db import Database
from tests.test_admin_support import (
    PASSWORD,
    add_user,
    import_example,
    seed_acknowledged,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def seeded(live_app: Flask) -> dict[str, int]:
    db: Database = live_app.extensions["rrd"].db
    import_example(db, "acme-plumbing")
    import_example(db, "riverside-medical")
    add_user(db, "manager@acme.example", "manager", "acme-plumbing")
    acme = seed_acknowledged(db)
    withheld = seed_acknowledged(db, sid="CA" + "0" * 30 + "02", caller=None,
                                 caller_raw="+266696687")
    river = seed_acknowledged(db, "riverside-medical", sid="CA" + "0" * 30 + "03",
                              route="urgent", answering="+17735550100")
    return {"acme": acme.dispatch_id, "withheld": withheld.dispatch_id,
            "river": river.dispatch_id}


def test_admin_walkthrough(browser: Any, base_url: str, seeded: dict[str, int]) -> None:
    context = browser.new_context()
    page = context.new_page()

    page.goto(f"{base_url}/admin/dispatches")
    assert "/admin/login" in page.url
    page.fill("input[name=email]", "manager@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/admin/dispatches**")

    rows = page.locator("table.list tbody tr")
    assert rows.count() == 2
    assert page.locator(f'a[href="/admin/dispatches/{seeded["river"]}"]').count() == 0

    page.fill("input[name=caller]", "withheld")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**caller=withheld**")
    assert page.locator("table.list tbody tr").count() == 1
    assert "266696687" not in page.content()

    page.click(f'a[href="/admin/dispatches/{seeded["withheld"]}"]')
    page.wait_for_url(f"**/admin/dispatches/{seeded['withheld']}")
    assert page.locator("td.caller").inner_text() == "withheld"
    timeline = page.locator("table.timeline").inner_text()
    assert "Call from withheld" in timeline
    assert "accepted by voice" in timeline
    assert "18:00:00 CDT" in timeline

    page.goto(f"{base_url}/admin/profiles/acme-plumbing")
    form = page.locator("#edit-member")
    form.locator("input[name=member]").fill("erin")
    form.locator("select[name=active]").select_option("no")
    form.locator("input[name=voice]").fill("(773) 555-0105")
    form.locator("input[name=sms]").fill("(773) 555-0105")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/preview")
    assert "+  active: false" in page.locator("pre.diff").inner_text()
    page.fill("input[name=reason]", "Erin on leave")
    page.click("form.confirm button[type=submit]")
    page.wait_for_url(f"{base_url}/admin/profiles/acme-plumbing")
    assert "Saved as version 2." in page.locator(".message").inner_text()
    assert "Erin on leave" in page.locator("table.history").inner_text()

    page.goto(f"{base_url}/admin/dispatches/{seeded['river']}")
    assert "404" in page.locator("h1").inner_text()
    context.close()
