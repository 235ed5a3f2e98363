"""Load ``POST /twilio/voice`` at a fixed rate under gunicorn, then a bare Flask route the same way.

Each request is a new call (new CallSid) from a new caller number, signed as Twilio signs it.
So every request passes the signature check and creates a dispatch in intake, and no rate limit
or follow-up detection cuts the work short. The app runs against a throwaway PostgreSQL database
and Redis key prefix. No worker runs, so the dispatches stay in intake.

Example (about 2.5 minutes)::

    .venv/bin/python -m bench.webhook_load --rate 100 --duration 60
"""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.loadgen import SignedPost, run_open_loop, signed_post, summarize_load
from bench.stack import (
    ACCOUNT_SID,
    ANSWERING_NUMBER,
    AUTH_TOKEN,
    app_environment,
    bench_database,
    busy_percent,
    caller_number,
    child_pids,
    cpu_seconds,
    free_port,
    load_bench_profile,
    machine_cpu_ticks,
    machine_info,
    new_run_id,
    print_table,
    process_tree_rss,
    redis_prefix,
    start_gunicorn,
    write_result,
)
from dispatch.db import Database
from dispatch.models import Dispatch, Event, Receipt

logger = logging.getLogger(__name__)

TARGETS = {"app": "app:create_app()", "bare": "bench.bare_app:create_app()"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="requests per second (default 100)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of measured load per target (default 60)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of unmeasured load at a quarter of the rate first "
                             "(default 3)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per gthread worker (default 4)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds each request may take before it counts as failed "
                             "(default 10, as Twilio's webhook timeout is 15)")
    parser.add_argument("--targets", default="app,bare",
                        help="comma-separated targets to run: app, bare (default both)")
    parser.add_argument("--name", default="webhook_load",
                        help="result file name under bench/results/, without .json")
    return parser.parse_args(argv)


def voice_form(index: int) -> dict[str, str]:
    """Return the form of an inbound call as Twilio posts it, with a new CallSid and caller."""
    caller = caller_number(index)
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": f"CA{index:032x}",
        "CallStatus": "ringing",
        "Called": ANSWERING_NUMBER,
        "CalledCity": "CHICAGO",
        "CalledCountry": "US",
        "CalledState": "IL",
        "CalledZip": "60601",
        "Caller": caller,
        "CallerCity": "CHICAGO",
        "CallerCountry": "US",
        "CallerState": "IL",
        "CallerZip": "60601",
        "Direction": "inbound",
        "From": caller,
        "FromCity": "CHICAGO",
        "FromCountry": "US",
        "FromState": "IL",
        "FromZip": "60601",
        "To": ANSWERING_NUMBER,
        "ToCity": "CHICAGO",
        "ToCountry": "US",
        "ToState": "IL",
        "ToZip": "60601",
    }


def measure(target: str, args: argparse.Namespace, env: dict[str, str], port: int,
            log_dir: Path, first_index: int) -> dict[str, Any]:
    """Start one target under gunicorn, warm it up, load it, and return the numbers."""
    base_url = f"http://127.0.0.1:{port}"
    url = f"{base_url}/twilio/voice"
    env = {**env, "PUBLIC_BASE_URL": base_url}
    server = start_gunicorn(f"gunicorn-{target}", TARGETS[target], port, env, log_dir,
                            workers=args.workers, threads=args.threads)
    try:
        warmup_rate = max(args.rate / 4, 1.0)
        warmup_count = int(warmup_rate * args.warmup)

        def warmup_request(index: int) -> SignedPost:
            return signed_post(url, voice_form(first_index + index), AUTH_TOKEN)

        warm = run_open_loop(warmup_request, rate=warmup_rate, count=warmup_count,
                             max_seconds=args.warmup + 1, timeout_seconds=args.timeout)
        measured_from = first_index + warmup_count
        count = int(args.rate * args.duration)

        def request(index: int) -> SignedPost:
            return signed_post(url, voice_form(measured_from + index), AUTH_TOKEN)

        workers_before = {pid: cpu_seconds(pid) for pid in child_pids(server.pid)}
        ticks_before = machine_cpu_ticks()
        result = run_open_loop(request, rate=args.rate, count=count,
                               max_seconds=args.duration + 1, timeout_seconds=args.timeout)
        ticks_after = machine_cpu_ticks()
        workers_cpu = sum(cpu_seconds(pid) - used for pid, used in workers_before.items())

        summary = summarize_load(result)
        summary["warmup"] = {"sent": len(warm.samples),
                             "non_2xx": sum(not s.first.ok for s in warm.samples)}
        summary["machine_busy_percent"] = busy_percent(ticks_before, ticks_after)
        summary["app_workers_cpu_seconds"] = round(workers_cpu, 2)
        summary["failed_bodies"] = sorted({s.first.body[:200] for s in result.samples
                                           if not s.first.ok})[:5]
        summary["rss_after_mib"] = process_tree_rss(server)
        summary["next_index"] = measured_from + len(result.samples)
        return summary
    finally:
        server.stop()


def database_counts(database_url: str) -> dict[str, Any]:
    """Count receipts by outcome, dispatches and events, to check every request did its work."""
    database = Database(database_url)
    try:
        with database.read() as session:
            outcomes = dict(session.execute(
                select(Receipt.outcome, func.count()).group_by(Receipt.outcome)).all())
            dispatches = session.execute(select(func.count(Dispatch.id))).scalar_one()
            events = session.execute(select(func.count(Event.id))).scalar_one()
    finally:
        database.dispose()
    return {"receipts_by_outcome": outcomes, "dispatches": dispatches, "events": events}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    # SIGTERM (as from `timeout`) unwinds like Ctrl-C, so the servers and the database go away.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target {', '.join(unknown)}; use app, bare or both")

    run_id = new_run_id()
    log_dir = Path(tempfile.mkdtemp(prefix=f"rrd-bench-{run_id}-"))
    started = datetime.now(UTC)
    results: dict[str, Any] = {}
    with bench_database(run_id) as database_url, redis_prefix(run_id) as prefix:
        load_bench_profile(database_url)
        env = app_environment(database_url=database_url, public_base_url="",
                              queue_name=f"{prefix}:queue", spool_dir=log_dir / "spool")
        next_index = 0
        for target in targets:
            results[target] = measure(target, args, env, free_port(), log_dir, next_index)
            next_index = results[target]["next_index"]
            time.sleep(1)
        if "app" in targets:
            results["app"]["database"] = database_counts(database_url)

    report = {
        "benchmark": "webhook_load",
        "started": started.isoformat(timespec="seconds"),
        "settings": vars(args),
        "machine": machine_info(),
        "logs": str(log_dir),
        "results": results,
    }
    path = write_result(args.name, report)
    print_report(results)
    print(f"\nresults written to {path}; server logs in {log_dir}")


def print_report(results: dict[str, Any]) -> None:
    rows = []
    for target, summary in results.items():
        latency = summary["latency_ms"]
        workers = summary["rss_after_mib"]["children"]
        rows.append({
            "target": target,
            "sent": summary["sent"],
            "rate/s": summary["achieved_rate"],
            "non-2xx": summary["non_2xx"],
            "p50 ms": latency.get("p50"),
            "p90 ms": latency.get("p90"),
            "p99 ms": latency.get("p99"),
            "max ms": latency.get("max"),
            "busy %": summary["machine_busy_percent"],
            "worker RSS MiB": ", ".join(str(w["rss_mib"]) for w in workers),
        })
    print()
    print_table(rows, list(rows[0]) if rows else [])


if __name__ == "__main__":
    main()
