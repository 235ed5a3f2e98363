"""Time the admin dispatch list over 100,000 dispatches on PostgreSQL.

Creates a scratch database on the local server (``RRD_BENCH_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``) and migrates it. Bulk-inserts the dispatches of
two accounts spread over 90 days. Then requests list pages of 50 rows through the Flask test
client (no network) and prints the median and 95th percentile per case. The scratch database is
dropped at the end. Needs Redis on 127.0.0.1:6379 for the login rate limit.

    .venv/bin/python bench/bench_admin_list.py [--rows 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch.db import Database  # noqa: E402
from dispatch.migrate import upgrade  # noqa: E402
from dispatch.models import Channel, Dispatch, DispatchState  # noqa: E402
from dispatch.store import current_version  # noqa: E402
from tests.test_admin_support import (  # noqa: E402
    PASSWORD,
    add_user,
    import_example,
    login,
    make_app,
)

ADMIN_DSN = os.environ.get("RRD_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
END = datetime(2025, 6, 10, 23, 0, tzinfo=UTC)
BATCH = 5000
DAY = "2025-05-01"
STATES = [DispatchState.ACKNOWLEDGED] * 8 + [
    DispatchState.UNACKNOWLEDGED, DispatchState.ABANDONED, DispatchState.NO_ONE_AVAILABLE,
]


def dispatch_rows(
    account_id: int, version_id: int, count: int, seed: int
) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        created = END - timedelta(seconds=rng.uniform(0, 90 * 86400))
        state = rng.choice(STATES)
        acknowledged = state == DispatchState.ACKNOWLEDGED
        rows.append({
            "account_id": account_id,
            "profile_version_id": version_id,
            "route_key": rng.choice(["emergency", "after-hours-default", "take-a-message"]),
            "source": rng.choice([Channel.VOICE, Channel.SMS]),
            "source_sid": f"CA{seed:04d}{n:028d}",
            "answering_number": "+13125550100",
            "state": state,
            "code": f"{rng.randrange(1000, 10000)}",
            "caller_number": f"+1312555{rng.randrange(1000, 10000)}",
            "caller_withheld": False,
            "callback_number": None,
            "callback_supplied": False,
            "current_round": 1,
            "created_at": created,
            "first_offer_at": created + timedelta(seconds=rng.uniform(1, 45)),
            "acknowledged_at": created + timedelta(seconds=rng.uniform(20, 600))
            if acknowledged else None,
            "settled_at": created + timedelta(seconds=600),
        })
    return rows


def seed(database: Database, total: int) -> None:
    acme = import_example(database, "acme-plumbing")
    river = import_example(database, "riverside-medical")
    with database.read() as session:
        versions = {}
        for account_id in (acme, river):
            version = current_version(session, account_id)
            assert version is not None
            versions[account_id] = version.id
    started = time.perf_counter()
    for account_id, share, offset in ((acme, 0.8, 0), (river, 0.2, 5000)):
        count = int(total * share)
        for start in range(0, count, BATCH):
            rows = dispatch_rows(account_id, versions[account_id], min(BATCH, count - start),
                                 offset + start // BATCH)
            with database.write("bench seed") as session:
                session.execute(insert(Dispatch), rows)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE dispatches")
    print(f"seeded {total} dispatches in {time.perf_counter() - started:.1f} s")


def measure(client: FlaskClient, path: str, repeat: int) -> tuple[float, float]:
    client.get(path)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    timings.sort()
    p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
    return statistics.median(timings), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="dispatches to insert")
    parser.add_argument("--repeat", type=int, default=30, help="requests per case")
    args = parser.parse_args()

    name = f"rrd_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        app = make_app(url, f"rrdbench:{name}")
        database: Database = app.extensions["rrd"].db
        seed(database, args.rows)
        add_user(database, "viewer@acme.example", "viewer", "acme-plumbing")
        add_user(database, "root@service.example", "admin", None)
        run_cases(app, args.repeat)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def run_cases(app: Flask, repeat: int) -> None:
    viewer = app.test_client()
    login(viewer, "viewer@acme.example", PASSWORD)
    service = app.test_client()
    login(service, "root@service.example", PASSWORD)
    deep = _cursor_after(viewer, pages=200)
    cases = [
        ("account viewer, first page", viewer, "/admin/dispatches"),
        ("account viewer, page 201 (keyset)", viewer, deep),
        ("account viewer, one local day", viewer, f"/admin/dispatches?from={DAY}&to={DAY}"),
        ("account viewer, status filter", viewer, "/admin/dispatches?status=unacknowledged"),
        # NOTE: the seed inserts no offers, so the member filter's EXISTS finds nothing here.
        ("account viewer, member filter", viewer, "/admin/dispatches?member=bob"),
        ("service admin, all accounts", service, "/admin/dispatches"),
        ("service admin, status filter", service, "/admin/dispatches?status=abandoned"),
    ]
    print(f"{'case':45} {'median ms':>10} {'p95 ms':>8}  (50 rows a page, {repeat} requests)")
    for label, client, path in cases:
        median, p95 = measure(client, path, repeat)
        print(f"{label:45} {median:10.1f} {p95:8.1f}")

    started = time.perf_counter()
    body = viewer.get("/admin/dispatches.csv").get_data()
    lines = body.count(b"\n") - 1
    print(f"CSV export of {lines} rows: {time.perf_counter() - started:.2f} s")


def _cursor_after(client: FlaskClient, pages: int) -> str:
    path = "/admin/dispatches"
    for _ in range(pages):
        html = client.get(path).get_data(as_text=True)
        path = html.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    return path


if __name__ == "__main__":
    main()
