"""Profile pages: history, diffs and quick roster edits previewed, validated and saved."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from dispatch.db import Database
from dispatch.models import Event, Member, ProfileVersion
from tests.test_admin_support import add_user, csrf_of, import_example, login, make_app

PROFILE = "/admin/profiles/acme-plumbing"


@pytest.fixture
def app(db_url: str, redis_prefix: str, redis_client: redis.Redis) -> Iterator[Flask]:
    app = make_app(db_url, redis_prefix)
    yield app
    app.extensions["rrd"].db.dispose()


@pytest.fixture
def db(app: Flask) -> Database:
    database: Database = app.extensions["rrd"].db
    import_example(database, "acme-plumbing")
    add_user(database, "viewer@acme.example", "viewer", "acme-plumbing")
    add_user(database, "manager@acme.example", "manager", "acme-plumbing")
    add_user(database, "admin@acme.example", "admin", "acme-plumbing")
    return database


def manager(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "manager@acme.example")
    return client


def preview(client: FlaskClient, **fields: str) -> tuple[int, str]:
    token = csrf_of(client.get(PROFILE).get_data(as_text=True))
    response = client.post(f"{PROFILE}/preview", data={"csrf_token": token, **fields})
    return response.status_code, html.unescape(response.get_data(as_text=True))


def confirm(client: FlaskClient, page: str, reason: str) -> int:
    """Submit the hidden fields of a preview page with a reason."""
    form = page.split('class="confirm"')[1].split("</form>")[0]
    fields = dict(
        (part.split('name="')[1].split('"')[0], part.split('value="')[1].split('"')[0])
        for part in form.split("<input")[1:] if 'value="' in part
    )
    fields["reason"] = reason
    return client.post(f"{PROFILE}/save", data=fields).status_code


def test_profile_shows_document(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    page = html.unescape(client.get(PROFILE).get_data(as_text=True))
    assert "key: acme-plumbing" in page
    assert "Current version 1" in page
    assert "Quick edits" not in page


def test_viewer_cannot_edit(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    token = csrf_of(client.get("/admin/dispatches").get_data(as_text=True))
    response = client.post(f"{PROFILE}/preview", data={"csrf_token": token, "kind": "member"})
    assert response.status_code == 403


def test_member_edit_saved(app: Flask, db: Database) -> None:
    client = manager(app)
    status, page = preview(client, kind="member", member="bob", active="no",
                           voice="312.555.0112", sms="")
    assert status == 200
    assert "-  active: true" in page
    assert "+  active: false" in page
    assert "+13125550112" in page

    assert confirm(client, page, "Bob moved to days") == 302
    with db.read() as session:
        versions = session.execute(select(ProfileVersion.version, ProfileVersion.author,
                                          ProfileVersion.reason)).all()
        bob = session.execute(select(Member).where(Member.key == "bob")).scalar_one()
        edited = session.execute(select(Event).where(Event.kind == "profile_edited")).scalar_one()
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].author == "user:manager@acme.example"
    assert versions[1].reason == "Bob moved to days"
    assert bob.active is False
    assert bob.voice_number == "+13125550112"
    assert bob.sms_number is None
    assert edited.detail["version"] == 2


def test_invalid_edit_refused(app: Flask, db: Database) -> None:
    client = manager(app)
    status, page = preview(client, kind="pool_order", pool="on-call", order="alice, zed")
    assert status == 422
    assert "pools[0].members[1]: unknown member 'zed'" in page
    with db.read() as session:
        count = len(session.execute(select(ProfileVersion.id)).all())
    assert count == 1


def test_override_edit_and_diff(app: Flask, db: Database) -> None:
    client = manager(app)
    status, page = preview(client, kind="add_override", member="carol",
                           start="2025-06-12T17:00", end="2025-06-13T08:00", on_call="no",
                           note="dentist")
    assert status == 200
    assert "dentist" in page
    assert confirm(client, page, "Carol off Thursday") == 302

    diff = html.unescape(client.get(f"{PROFILE}/diff?a=1&b=2").get_data(as_text=True))
    assert "+  - member: carol" in diff or "member: carol" in diff
    assert "dentist" in diff


def test_stale_preview_conflicts(app: Flask, db: Database) -> None:
    client = manager(app)
    _, first = preview(client, kind="pool_order", pool="on-call",
                       order="bob, carol, dave, erin, alice")
    _, second = preview(client, kind="pool_order", pool="on-call",
                        order="carol, bob, dave, erin, alice")
    assert confirm(client, first, "first") == 302
    assert confirm(client, second, "second") == 409


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "rename"}, "edit kind 'rename' is invalid"),
    ({"kind": "member", "member": "nobody", "active": "yes"}, "member 'nobody' not found"),
    ({"kind": "member", "member": "bob", "active": "maybe"}, "active='maybe' is invalid"),
    ({"kind": "remove_override", "index": "9"}, "override '9' not found"),
    ({"kind": "add_override", "member": "bob", "on_call": "no"}, "start is missing"),
])
def test_bad_edit_input_400(
    app: Flask, db: Database, fields: dict[str, str], message: str
) -> None:
    status, page = preview(manager(app), **fields)
    assert status == 400
    assert message in page


@pytest.mark.parametrize("path", [
    f"{PROFILE}/diff?a=1&b=x",
    f"{PROFILE}/diff?a=1",
    f"{PROFILE}/diff?a=1&b=99999999999",
])
def test_bad_diff_query_400(app: Flask, db: Database, path: str) -> None:
    assert manager(app).get(path).status_code == 400


def test_missing_version_404(app: Flask, db: Database) -> None:
    client = manager(app)
    assert client.get(f"{PROFILE}/versions/7").status_code == 404
    assert client.get(f"{PROFILE}/diff?a=1&b=7").status_code == 404


def test_admin_manages_tokens(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "admin@acme.example")
    page = client.get("/admin/tokens").get_data(as_text=True)
    created = client.post("/admin/tokens", data={
        "csrf_token": csrf_of(page), "name": "reports", "days": "30",
    }).get_data(as_text=True)
    secret = created.split('class="secret">')[1].split("<")[0]
    assert secret.startswith("rrd_")
    listed = client.get("/admin/tokens").get_data(as_text=True)
    assert secret not in listed
    assert "reports" in listed

    api = app.test_client().get("/api/v1/accounts",
                                headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200


def test_admin_adds_user_in_own_account(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "admin@acme.example")
    page = client.get("/admin/users").get_data(as_text=True)
    response = client.post("/admin/users", data={
        "csrf_token": csrf_of(page), "email": "new@acme.example", "role": "viewer",
        "password": "another long password", "account": "riverside-medical",
    })
    assert response.status_code == 302
    with db.read() as session:
        new = session.execute(select(Event).where(Event.kind == "user_created")
                              .order_by(Event.id.desc())).scalars().first()
    assert new is not None
    assert new.detail["email"] == "new@acme.example"
    assert new.account_id is not None


def test_manager_cannot_manage_users(app: Flask, db: Database) -> None:
    assert manager(app).get("/admin/users").status_code == 403


def test_weak_password_rejected(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "admin@acme.example")
    page = client.get("/admin/users").get_data(as_text=True)
    response = client.post("/admin/users", data={
        "csrf_token": csrf_of(page), "email": "weak@acme.example", "role": "viewer",
        "password": "short",
    })
    assert response.status_code == 400
    assert "too short" in response.get_data(as_text=True)
