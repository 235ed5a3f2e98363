"""Shared fixtures: real PostgreSQL and Redis, a fresh database per test, the shared clock.

Each test run creates its own PostgreSQL database and Redis key prefix, so several runs can
share one server. Without a reachable server the dependent tests are skipped with a loud
reason, except under CI=true, where a skip of that kind fails the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from sqlalchemy import text

from dispatch.db import Database
from dispatch.migrate import upgrade
from dispatch.models import Base

PG_ADMIN_DSN = os.environ.get("RRD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RRD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = datetime(2025, 6, 10, 15, 0, 0, tzinfo=UTC)
RUN_ID = uuid.uuid4().hex[:8]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_redis_target = urlsplit(REDIS_URL)
PG_UP = _reachable("127.0.0.1", 5432)
REDIS_UP = _reachable(_redis_target.hostname or "127.0.0.1", _redis_target.port or 6379)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(service: str) -> None:
    message = f"{service} is not reachable on 127.0.0.1; these tests were SKIPPED"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires every service)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not PG_UP:
        _missing("PostgreSQL")
    name = f"rrd_test_{RUN_ID}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dispatch.sqlite3'}"
        database = Database(url)
        Base.metadata.create_all(database.engine)
        database.dispose()
        return url
    url = request.getfixturevalue("pg_url")
    database = Database(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    database.dispose()
    return url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    if not REDIS_UP:
        _missing("Redis")
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A unique prefix for this test's Redis keys and queue names, deleted afterwards."""
    prefix = f"rrdtest:{RUN_ID}:{uuid.uuid4().hex[:8]}"
    yield prefix
    for key in redis_client.scan_iter(f"*{prefix}*", count=1000):
        redis_client.delete(key)
