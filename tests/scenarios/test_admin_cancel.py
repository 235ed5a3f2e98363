"""A manager cancels an open dispatch from its admin page; live offers are stood down."""

from __future__ import annotations

from dispatch.models import DispatchState
from tests.harness import A, Harness
from tests.test_admin_support import add_user, csrf_of, login


def test_manager_cancels_dispatch(harness: Harness) -> None:
    harness.load_profile()
    harness.set_pointer("techs", "c", 2)
    harness.customer_texts("Leak")
    harness.fake.phone(A).expect_sms("Reply 1")
    add_user(harness.runtime.db, "manager@acme.example", "manager", "acme")
    dispatch_id = harness.dispatch().id

    with harness.app.test_client() as client:
        login(client, "manager@acme.example")
        page = client.get(f"/admin/dispatches/{dispatch_id}").get_data(as_text=True)
        assert "Cancel this dispatch" in page
        response = client.post(f"/admin/dispatches/{dispatch_id}/cancel",
                               data={"reason": "caller fixed it", "csrf_token": csrf_of(page)})
        assert response.status_code == 302
        again = client.post(f"/admin/dispatches/{dispatch_id}/cancel",
                            data={"reason": "twice", "csrf_token": csrf_of(page)})
        assert again.status_code == 400
    harness.run_jobs()

    assert harness.dispatch().state == DispatchState.CANCELLED
    harness.fake.phone(A).expect_sms("no longer needed")
    harness.advance(300)
    assert len(harness.offers()) == 1


def test_viewer_cannot_cancel(harness: Harness) -> None:
    harness.load_profile()
    harness.customer_texts("Leak")
    add_user(harness.runtime.db, "viewer@acme.example", "viewer", "acme")
    dispatch_id = harness.dispatch().id

    with harness.app.test_client() as client:
        login(client, "viewer@acme.example")
        page = client.get(f"/admin/dispatches/{dispatch_id}").get_data(as_text=True)
        assert "Cancel this dispatch" not in page
        response = client.post(f"/admin/dispatches/{dispatch_id}/cancel",
                               data={"reason": "x", "csrf_token": csrf_of(page)})
    assert response.status_code == 403
    assert harness.dispatch().state == DispatchState.OFFERING
