"""Engines and sessions for PostgreSQL and SQLite.

Writers serialise on SQLite with ``BEGIN IMMEDIATE`` (taken when the transaction starts, so two
writers never deadlock on a lock upgrade) and on PostgreSQL with row locks. SQLite runs in WAL mode
with a busy timeout longer than any write we make, so readers never block writers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_SECONDS = 30
SLOW_LOCK_WAIT_SECONDS = 1.0
POOL_RECYCLE_SECONDS = 1800


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and explicit BEGIN handling."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
        )
        _configure_sqlite(engine)
        return engine
    # Connections are recycled instead of pinged before each use: a ping is one more round trip
    # on every webhook, and a connection the server dropped fails one request, which Twilio
    # retries.
    return create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=POOL_RECYCLE_SECONDS
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get("sqlite_immediate"):
            connection.exec_driver_sql("BEGIN")
            return
        started = time.monotonic()
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        waited = time.monotonic() - started
        if waited > SLOW_LOCK_WAIT_SECONDS:
            logger.warning(
                "sqlite write lock wait %.2fs for %s",
                waited,
                connection.get_execution_options().get("purpose", "unknown"),
            )


class Database:
    """Sessions for one engine: ``write()`` for state changes, ``read()`` for queries."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_options)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._write = sessionmaker(write_engine, expire_on_commit=False)

    @contextmanager
    def write(self, purpose: str = "write") -> Iterator[Session]:
        """Run one write transaction: commit on success, roll back on any error."""
        session = self._write()
        session.connection(execution_options={"purpose": purpose})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        session = self._read()
        try:
            yield session
        finally:
            # close() ends the transaction without expiring loaded objects, so callers may
            # keep reading what they loaded after the block.
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
