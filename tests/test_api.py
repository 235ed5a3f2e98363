"""The JSON API: bearer tokens, tenant isolation, filters, dispatch detail, profiles and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from dispatch.clock import FixedClock
from dispatch.db import Database
from tests.test_admin_support import (
    AFTER_HOURS,
    add_token,
    import_example,
    make_app,
    seed_acknowledged,
)

NOW = AFTER_HOURS + timedelta(hours=1)


@pytest.fixture
def app(db_url: str, redis_prefix: str, redis_client: redis.Redis) -> Iterator[Flask]:
    app = make_app(db_url, redis_prefix)
    app.extensions["rrd"].clock = FixedClock(NOW)
    yield app
    app.extensions["rrd"].db.dispose()


@dataclass(frozen=True)
class ApiSeed:
    acme: int
    river: int
    acme_token: tuple[int, str]
    service_token: tuple[int, str]
    expired_token: tuple[int, str]


@pytest.fixture
def seeded(app: Flask) -> ApiSeed:
    db: Database = app.extensions["rrd"].db
    import_example(db, "acme-plumbing")
    import_example(db, "riverside-medical")
    acme = seed_acknowledged(db)
    river = seed_acknowledged(db, "riverside-medical", sid="CA" + "0" * 30 + "03",
                              route="urgent", answering="+17735550100")
    acme_token = add_token(db, "acme-plumbing", AFTER_HOURS)
    service_token = add_token(db, None, AFTER_HOURS)
    expired_token = add_token(db, "acme-plumbing", AFTER_HOURS - timedelta(days=2), days=1)
    return ApiSeed(acme.dispatch_id, river.dispatch_id, acme_token, service_token, expired_token)


def get(client: FlaskClient, path: str, token: tuple[int, str]) -> TestResponse:
    return client.get(path, headers={"Authorization": f"Bearer {token[1]}"})


def test_missing_token_is_401(app: Flask, seeded: ApiSeed) -> None:
    response = app.test_client().get("/api/v1/dispatches")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["status"] == 401


def test_expired_token_is_401(app: Flask, seeded: ApiSeed) -> None:
    response = get(app.test_client(), "/api/v1/accounts", seeded.expired_token)
    assert response.status_code == 401


def test_revoked_token_is_401(app: Flask, seeded: ApiSeed) -> None:
    from admin.tokens import revoke_token

    token_id, _ = seeded.acme_token
    with app.extensions["rrd"].db.write() as session:
        revoke_token(session, token_id, now=NOW, actor="test")
    response = get(app.test_client(), "/api/v1/accounts", seeded.acme_token)
    assert response.status_code == 401


def test_token_stored_hashed(app: Flask, seeded: ApiSeed) -> None:
    from sqlalchemy import select

    from dispatch.models import ApiToken

    _, secret = seeded.acme_token
    with app.extensions["rrd"].db.read() as session:
        stored = session.execute(select(ApiToken.token_sha256, ApiToken.prefix)).all()
    assert all(secret not in row.token_sha256 for row in stored)
    assert all(len(row.token_sha256) == 64 for row in stored)


def test_accounts_scoped_to_token(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    own = get(client, "/api/v1/accounts", seeded.acme_token).get_json()
    assert [a["key"] for a in own["accounts"]] == ["acme-plumbing"]
    every = get(client, "/api/v1/accounts", seeded.service_token).get_json()
    assert {a["key"] for a in every["accounts"]} == {"acme-plumbing", "riverside-medical"}


def test_dispatch_rows_scoped(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    body = get(client, "/api/v1/dispatches", seeded.acme_token).get_json()
    assert [row["id"] for row in body["dispatches"]] == [seeded.acme]
    row = body["dispatches"][0]
    assert row["created_at"] == "2025-06-10T23:00:00+00:00"
    assert row["created_at_local"] == "2025-06-10T18:00:00-05:00"
    assert row["seconds_to_acknowledge"] == 40.0
    assert row["state"] == "acknowledged"


def test_other_tenant_dispatch_404(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    response = get(client, f"/api/v1/dispatches/{seeded.river}", seeded.acme_token)
    assert response.status_code == 404
    missing = get(client, "/api/v1/dispatches/424242", seeded.acme_token)
    assert missing.status_code == 404
    profile = get(client, "/api/v1/accounts/riverside-medical/profile", seeded.acme_token)
    assert profile.status_code == 404


def test_bad_filter_names_field(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    response = get(client, "/api/v1/dispatches?status=nope", seeded.acme_token)
    assert response.status_code == 400
    assert "'status'" in response.get_json()["error"]["message"]


def test_dispatch_detail_has_events(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    response = get(client, f"/api/v1/dispatches/{seeded.acme}", seeded.acme_token)
    detail = response.get_json()["dispatch"]
    kinds = [event["kind"] for event in detail["events"]]
    assert kinds[0] == "dispatch_created"
    assert "offer_made" in kinds
    assert "acknowledged" in kinds
    assert detail["profile_version"] == 1
    voice = next(c for c in detail["offers"][0]["channels"] if c["channel"] == "voice")
    assert voice["state"] == "busy"
    assert voice["deliveries"][0]["status"] == "busy"


def test_profile_endpoints(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    current = get(client, "/api/v1/accounts/acme-plumbing/profile", seeded.acme_token)
    assert current.get_json()["profile"]["version"] == 1
    assert "acme-plumbing" in current.get_json()["profile"]["document"]
    versions = get(client, "/api/v1/accounts/acme-plumbing/profile/versions",
                   seeded.acme_token).get_json()
    assert [v["version"] for v in versions["versions"]] == [1]


def test_csv_rows_scoped(app: Flask, seeded: ApiSeed) -> None:
    client = app.test_client()
    response = get(client, "/api/v1/dispatches.csv", seeded.acme_token)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(row["id"]) for row in rows] == [seeded.acme]


def test_unknown_endpoint_json_404(app: Flask, seeded: ApiSeed) -> None:
    response = get(app.test_client(), "/api/v1/nothing-here", seeded.acme_token)
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404
