"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from dispatch.migrate import upgrade
from dispatch.models import Base
from tests.conftest import PG_ADMIN_DSN, RUN_ID


def schema_differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_sqlite_migrations_match_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    upgrade(url)
    assert schema_differences(url) == []


@pytest.mark.postgres
def test_postgres_migrations_match_models(pg_url: str) -> None:
    name = f"rrd_migrations_{RUN_ID}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        assert schema_differences(url) == []
        engine = create_engine(url)
        tables = inspect(engine).get_table_names()
        engine.dispose()
        assert "events" in tables
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
