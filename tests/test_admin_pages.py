"""Admin pages: login, the dispatch list with filters, a timeline, CSV and tenant isolation."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from flask import Flask

from dispatch.clock import FixedClock
from dispatch.db import Database
from tests.test_admin_support import (
    AFTER_HOURS,
    add_user,
    import_example,
    login,
    make_app,
    seed_acknowledged,
)


@pytest.fixture
def app(db_url: str, redis_prefix: str, redis_client: redis.Redis) -> Iterator[Flask]:
    app = make_app(db_url, redis_prefix)
    yield app
    app.extensions["rrd"].db.dispose()


@pytest.fixture
def db(app: Flask) -> Database:
    database: Database = app.extensions["rrd"].db
    return database


@pytest.fixture
def seeded(db: Database) -> dict[str, int]:
    import_example(db, "acme-plumbing")
    import_example(db, "riverside-medical")
    add_user(db, "viewer@acme.example", "viewer", "acme-plumbing")
    add_user(db, "nurse@riverside.example", "viewer", "riverside-medical")
    add_user(db, "root@service.example", "admin", None)
    acme = seed_acknowledged(db)
    withheld = seed_acknowledged(db, sid="CA" + "0" * 30 + "02", caller=None,
                                 caller_raw="+266696687")
    river = seed_acknowledged(db, "riverside-medical", sid="CA" + "0" * 30 + "03",
                              route="urgent", answering="+17735550100")
    return {"acme": acme.dispatch_id, "withheld": withheld.dispatch_id,
            "river": river.dispatch_id}


def test_pages_need_login(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/admin/dispatches")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]


def test_login_sets_safe_cookie(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    response = login(client, "viewer@acme.example")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=Lax" in cookie


def test_wrong_password_is_401(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    response = login(client, "viewer@acme.example", "wrong password!!")
    assert response.status_code == 401
    assert "Email or password is wrong" in response.get_data(as_text=True)


def test_login_rate_limited(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    for _ in range(5):
        assert login(client, "viewer@acme.example", "wrong password!!").status_code == 401
    blocked = login(client, "viewer@acme.example")
    assert blocked.status_code == 429
    assert "Too many failed logins" in blocked.get_data(as_text=True)


def test_login_without_csrf_rejected(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    client.get("/admin/login")
    response = client.post("/admin/login", data={"email": "viewer@acme.example",
                                                  "password": "correct horse battery"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_idle_session_logged_out(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    with client.session_transaction() as session:
        session["last_seen"] = session["last_seen"] - 31 * 60
    response = client.get("/admin/dispatches")
    assert response.status_code == 302
    followed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "30 minutes without activity" in followed


def test_list_shows_own_account(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    html = client.get("/admin/dispatches").get_data(as_text=True)
    assert f'/admin/dispatches/{seeded["acme"]}"' in html
    assert f'/admin/dispatches/{seeded["river"]}"' not in html
    assert "acknowledged" in html
    assert "40 s" in html


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2025-13-01", "from"),
        ("to=yesterday", "to"),
        ("to=9999-12-31", "to"),
        ("from=0001-01-01", "from"),
        ("cursor=99999999999999999999.1", "cursor"),
        ("status=done", "status"),
        ("caller=12", "caller"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
        ("route=Bad Route", "route"),
        ("from=2025-06-11&to=2025-06-10", "to"),
        ("account=riverside-medical", "account"),
    ],
)
def test_bad_filter_is_400(app: Flask, seeded: dict[str, int], query: str, field: str) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    response = client.get(f"/admin/dispatches?{query}")
    assert response.status_code == 400
    assert f"invalid filter '{field}'" in html.unescape(response.get_data(as_text=True))


def test_filters_narrow_list(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "root@service.example")
    by_caller = client.get("/admin/dispatches?caller=(312) 555-0150").get_data(as_text=True)
    assert f'/admin/dispatches/{seeded["acme"]}"' in by_caller
    assert f'/admin/dispatches/{seeded["withheld"]}"' not in by_caller

    withheld = client.get("/admin/dispatches?caller=withheld").get_data(as_text=True)
    assert f'/admin/dispatches/{seeded["withheld"]}"' in withheld
    assert f'/admin/dispatches/{seeded["acme"]}"' not in withheld

    by_route = client.get("/admin/dispatches?route=urgent").get_data(as_text=True)
    assert f'/admin/dispatches/{seeded["river"]}"' in by_route
    assert f'/admin/dispatches/{seeded["acme"]}"' not in by_route


def test_date_filter_uses_local_day(app: Flask, seeded: dict[str, int]) -> None:
    # 23:00 UTC on June 10 is 18:00 on June 10 in Chicago, but already June 11 in UTC+1.
    client = app.test_client()
    login(client, "root@service.example")
    same_day = client.get("/admin/dispatches?from=2025-06-10&to=2025-06-10")
    assert f'/admin/dispatches/{seeded["acme"]}"' in same_day.get_data(as_text=True)
    next_day = client.get("/admin/dispatches?from=2025-06-11")
    assert f'/admin/dispatches/{seeded["acme"]}"' not in next_day.get_data(as_text=True)


def test_list_pages_by_cursor(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "root@service.example")
    first = client.get("/admin/dispatches?limit=2").get_data(as_text=True)
    assert 'rel="next"' in first
    cursor = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(cursor).get_data(as_text=True)
    ids = [seeded["acme"], seeded["withheld"], seeded["river"]]
    shown = [i for i in ids if f'/admin/dispatches/{i}"' in first]
    rest = [i for i in ids if f'/admin/dispatches/{i}"' in second]
    assert len(shown) == 2
    assert len(rest) == 1
    assert not set(shown) & set(rest)


def test_timeline_shows_evidence(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    html = client.get(f'/admin/dispatches/{seeded["acme"]}').get_data(as_text=True)
    assert "Call from +13125550150 to +13125550100" in html
    assert "route emergency" in html
    assert "2025-06-10 23:00:00 UTC" in html
    assert "2025-06-10 18:00:00 CDT" in html
    assert "ended as busy" in html
    assert "30003: unreachable handset" in html
    assert "accepted by voice, 40 s after the dispatch came in" in html
    assert "/admin/profiles/acme-plumbing/versions/1" in html
    assert ">1<" in html or "1</td>" in html  # the digit pressed, from the gather receipt
    assert 'media="print"' in html


def test_timeline_withheld_caller(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    html = client.get(f'/admin/dispatches/{seeded["withheld"]}').get_data(as_text=True)
    assert "Call from withheld" in html
    assert "266696687" not in html


def test_other_account_is_404(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    assert client.get(f'/admin/dispatches/{seeded["river"]}').status_code == 404
    assert client.get("/admin/dispatches/999999").status_code == 404
    assert client.get("/admin/dispatches/99999999999999999999").status_code == 404
    assert client.get("/admin/profiles/riverside-medical").status_code == 404
    assert client.get("/admin/accounts/riverside-medical/dashboard").status_code == 404


def test_csv_escapes_and_scopes(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    response = client.get("/admin/dispatches.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {int(row["id"]) for row in rows} == {seeded["acme"], seeded["withheld"]}
    acme = next(row for row in rows if int(row["id"]) == seeded["acme"])
    assert acme["caller"] == "'+13125550150"
    assert acme["created_at"] == "2025-06-10T23:00:00+00:00"
    assert acme["created_at_local"] == "2025-06-10T18:00:00-05:00"
    assert acme["seconds_to_acknowledge"] == "40.0"


def test_phi_view_is_recorded(app: Flask, db: Database, seeded: dict[str, int]) -> None:
    from sqlalchemy import select

    from dispatch.models import Event

    client = app.test_client()
    login(client, "nurse@riverside.example")
    html = client.get(f'/admin/dispatches/{seeded["river"]}').get_data(as_text=True)
    assert "protected health information" in html
    with db.read() as session:
        kinds = session.execute(
            select(Event.kind).where(Event.dispatch_id == seeded["river"])
        ).scalars().all()
    assert "phi_dispatch_viewed" in kinds


def test_dashboard_figures(app: Flask, seeded: dict[str, int]) -> None:
    client = app.test_client()
    login(client, "viewer@acme.example")
    app.extensions["rrd"].clock = FixedClock(AFTER_HOURS + timedelta(hours=1))
    html = client.get("/admin/accounts/acme-plumbing/dashboard").get_data(as_text=True)
    assert "Last 7 days" in html
    assert "Last 30 days" in html
    assert "<svg" in html
    assert "100%" in html
    assert "Bob Martinez" in html or "Carol Jensen" in html or "Dave Okafor" in html
    assert "<script" not in html

