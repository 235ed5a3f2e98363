"""Evidence: the append-only trigger, `flask audit verify`, and admin actions as events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from dispatch.db import Database
from dispatch.models import ApiToken, Base, Event, User
from tests.test_admin_support import (
    PASSWORD,
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
    import_example(database, "acme-plumbing")
    seed_acknowledged(database)
    return database


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    database.dispose()


def test_verify_passes_untouched(app: Flask, db: Database) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "account acme-plumbing: OK" in result.output
    assert "BROKEN" not in result.output


def test_verify_unknown_account(app: Flask, db: Database) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify", "nobody"])
    assert result.exit_code == 1
    assert "account 'nobody' not found" in result.output


def test_verify_catches_tampering(app: Flask, db: Database) -> None:
    with db.read() as session:
        target = session.execute(
            select(Event.id, Event.seq).where(Event.kind == "acknowledged")
        ).one()
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            # Only a superuser can lift the append-only trigger, as an attacker with that
            # access could; the chain still shows the edit.
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        conn.execute(text("UPDATE events SET actor = 'Someone Else' WHERE id = :id"),
                     {"id": target.id})
        if not db.is_sqlite:
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))

    result = app.test_cli_runner().invoke(args=["audit", "verify", "acme-plumbing"])
    assert result.exit_code == 1
    assert f"BROKEN at seq {target.seq} (event id {target.id})" in result.output
    assert "hash does not match" in result.output


def test_verify_catches_deletion(app: Flask, db: Database) -> None:
    with db.read() as session:
        target = session.execute(
            select(Event.id, Event.seq).where(Event.kind == "offer_made").limit(1)
        ).one()
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        conn.execute(text("DELETE FROM events WHERE id = :id"), {"id": target.id})
        if not db.is_sqlite:
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))

    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at seq {target.seq}" in result.output
    assert "missing" in result.output


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "UPDATE events SET actor = 'x'",
    "DELETE FROM events",
    "UPDATE profile_versions SET reason = 'x'",
    "DELETE FROM profile_versions",
])
def test_trigger_rejects_change(pg_database: Database, statement: str) -> None:
    import_example(pg_database, "acme-plumbing")
    with pytest.raises(DBAPIError, match="append-only"), pg_database.engine.begin() as conn:
        conn.execute(text(statement))


def test_user_create_command(app: Flask, db: Database) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["user", "create", "Manager@Acme.example", "--account", "acme-plumbing",
              "--role", "manager", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    with db.read() as session:
        user = session.execute(select(User)).scalar_one()
        kinds = session.execute(select(Event.kind).where(Event.kind == "user_created")).all()
    assert user.email == "manager@acme.example"
    assert user.role == "manager"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert len(kinds) == 1


def test_user_create_rejects_bad_role(app: Flask, db: Database) -> None:
    result = app.test_cli_runner().invoke(
        args=["user", "create", "a@b.example", "--role", "owner", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 2
    assert "owner" in result.output


def test_token_commands(app: Flask, db: Database) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(args=["token", "create", "--account", "acme-plumbing",
                                  "--name", "billing", "--days", "30"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("rrd_")
    with db.read() as session:
        token = session.execute(select(ApiToken)).scalar_one()
    assert token.token_sha256 != secret
    assert (token.expires_at - token.created_at).days == 30

    revoked = runner.invoke(args=["token", "revoke", str(token.id)])
    assert revoked.exit_code == 0, revoked.output
    with db.read() as session:
        kinds = set(session.execute(select(Event.kind)).scalars())
        assert session.get(ApiToken, token.id).revoked_at is not None  # type: ignore[union-attr]
    assert {"api_token_created", "api_token_revoked"} <= kinds


def test_token_needs_scope_choice(app: Flask, db: Database) -> None:
    result = app.test_cli_runner().invoke(args=["token", "create", "--name", "x"])
    assert result.exit_code == 2
    assert "--account KEY or --service-wide" in result.output


def test_logins_are_events(app: Flask, db: Database) -> None:
    add_user(db, "viewer@acme.example", "viewer", "acme-plumbing")
    client = app.test_client()
    login(client, "viewer@acme.example", "not the password")
    login(client, "viewer@acme.example")
    client.get("/admin/dispatches.csv").get_data()
    with db.read() as session:
        rows = session.execute(select(Event.kind, Event.chain, Event.actor)).all()
    by_kind = {row.kind: row for row in rows}
    assert by_kind["admin_login_failed"].chain == 0
    assert by_kind["admin_login"].actor == "user:viewer@acme.example"
    assert by_kind["dispatches_exported"].chain != 0
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "service-wide events: OK" in result.output
