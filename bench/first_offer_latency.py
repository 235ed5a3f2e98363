"""Measure the time from an inbound webhook to the first offer's REST request at fake_twilio.

The whole path runs as in production: the app under gunicorn, ``flask rq-worker`` and
``flask reconciler`` as separate processes, PostgreSQL and Redis, with the twilio library
pointed at fake_twilio on loopback. fake_twilio runs in this process, so the time a webhook
was sent and the time fake_twilio received the REST create come from one monotonic clock.

Two sources start an offer at once:

- ``sms``: a new caller texts the answering number; the webhook makes the first offer.
- ``voice``: a new caller rings (``POST /twilio/voice``), and the reason webhook
  (``POST /twilio/voice/reason``) follows as soon as the first reply arrives. The latency is
  measured from the reason webhook.

The offer goes to a member by SMS, so its REST request is ``Messages.json`` with the
channel's status callback URL, which ties it to the dispatch. The SMS reply to the caller
("we have your request") is reported as well, for the sms source.

Example (about 1.5 minutes)::

    .venv/bin/python -m bench.first_offer_latency --source sms --rate 2 --duration 60
"""

from __future__ import annotations

import argparse
import html
import logging
import re
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.loadgen import Exchange, LoadResult, SignedPost, run_open_loop, signed_post
from bench.stack import (
    ACCOUNT_SID,
    ANSWERING_NUMBER,
    AUTH_TOKEN,
    Process,
    app_environment,
    bench_database,
    caller_number,
    free_port,
    load_bench_profile,
    machine_info,
    new_run_id,
    print_table,
    process_tree_rss,
    redis_prefix,
    start_flask_command,
    start_gunicorn,
    start_simple_rq_worker,
    start_warm_rq_worker,
    summarize_ms,
    write_result,
)
from bench.webhook_load import voice_form
from dispatch.db import Database
from dispatch.models import Dispatch, Offer, OfferChannel
from fake_twilio import FakeTwilio, start_in_thread
from fake_twilio.server import RequestLogEntry

logger = logging.getLogger(__name__)

CHANNEL_CALLBACK = re.compile(r"/twilio/status/(?:sms|call)/(\d+)$")
REASON_ACTION = re.compile(r'action="([^"]*/twilio/voice/reason\?[^"]*)"')
CREATE_PATHS = ("/Messages.json", "/Calls.json")


class TimedFakeTwilio(FakeTwilio):
    """fake_twilio that also stores the ``time.monotonic()`` at which each REST request came in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.request_times: list[float] = []
        super().__init__(*args, **kwargs)

    def log_request(self, entry: RequestLogEntry) -> None:
        at = time.monotonic()
        with self.lock:
            self.requests.append(entry)
            self.request_times.append(at)

    def creates(self) -> list[tuple[float, RequestLogEntry]]:
        """Return the (time, entry) of every create request for a call or a message."""
        with self.lock:
            pairs = list(zip(self.request_times, self.requests, strict=True))
        return [(at, entry) for at, entry in pairs
                if entry.method == "POST" and entry.path.endswith(CREATE_PATHS)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.first_offer_latency",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("sms", "voice"), default="sms",
                        help="what starts the offer: an inbound text or a captured call reason "
                             "(default sms)")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="new dispatches per second (default 2)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of measured load (default 60)")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds to wait after the load for the last offers (default 60)")
    parser.add_argument("--rq-worker", choices=("fork", "warm-fork", "simple"), default="fork",
                        help="fork: 'flask rq-worker', which forks a work horse per job; "
                             "warm-fork: the same after importing the job modules "
                             "(bench/warm_rq_worker.py); "
                             "simple: 'rq worker' with SimpleWorker, no fork (default fork)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per gthread worker (default 4)")
    parser.add_argument("--name", default=None,
                        help="result file name under bench/results/, without .json "
                             "(default first_offer_<source>_<rate>[_<rq worker>])")
    return parser.parse_args(argv)


def sms_form(index: int) -> dict[str, str]:
    """Return the form of an inbound SMS as Twilio posts it, from a new caller."""
    caller = caller_number(index)
    sid = f"SM{index:032x}"
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": "Burst pipe in the basement, water everywhere",
        "From": caller,
        "FromCity": "CHICAGO",
        "FromCountry": "US",
        "FromState": "IL",
        "FromZip": "60601",
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": ANSWERING_NUMBER,
        "ToCity": "CHICAGO",
        "ToCountry": "US",
        "ToState": "IL",
        "ToZip": "60601",
    }


def reason_request(index: int, first: Exchange) -> SignedPost | None:
    """Build the reason webhook from the Gather action in the call's first TwiML reply."""
    match = REASON_ACTION.search(first.body)
    if match is None:
        return None
    url = html.unescape(match.group(1))
    caller = caller_number(index)
    form = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": f"CA{index:032x}",
        "CallStatus": "in-progress",
        "Confidence": "0.91",
        "Direction": "inbound",
        "From": caller,
        "SpeechResult": "Burst pipe in the basement",
        "To": ANSWERING_NUMBER,
    }
    return signed_post(url, form, AUTH_TOKEN)


class Stack:
    """fake_twilio, the app under gunicorn, the RQ worker and the reconciler of one run."""

    def __init__(self, args: argparse.Namespace, database_url: str, prefix: str,
                 log_dir: Path) -> None:
        self.app_port = free_port()
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.fake = TimedFakeTwilio(lambda: datetime.now(UTC), {ACCOUNT_SID: AUTH_TOKEN},
                                    webhook_target=self.app_url)
        self.fake_server, self.fake_url = start_in_thread(self.fake, pump_interval=0.1)
        env = app_environment(database_url=database_url, public_base_url=self.app_url,
                              queue_name=f"{prefix}:queue", spool_dir=log_dir / "spool",
                              api_base_url=self.fake_url)
        self.processes: list[Process] = []
        try:
            self.processes.append(start_gunicorn("gunicorn-app", "app:create_app()",
                                                 self.app_port, env, log_dir,
                                                 workers=args.workers, threads=args.threads))
            if args.rq_worker == "simple":
                self.processes.append(start_simple_rq_worker("rq-worker", f"{prefix}:queue",
                                                             env, log_dir))
            elif args.rq_worker == "warm-fork":
                self.processes.append(start_warm_rq_worker("rq-worker", f"{prefix}:queue",
                                                           env, log_dir))
            else:
                self.processes.append(start_flask_command("rq-worker", ["rq-worker"], env,
                                                          log_dir))
            self.processes.append(start_flask_command("reconciler", ["reconciler"], env,
                                                      log_dir))
        except BaseException:
            # Includes KeyboardInterrupt, so an interrupted start leaves no server running.
            self.stop()
            raise

    def rss(self) -> dict[str, Any]:
        return {process.name: process_tree_rss(process) for process in self.processes}

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.fake_server.shutdown()


def send_load(stack: Stack, args: argparse.Namespace, first_index: int, count: int,
              rate: float) -> LoadResult:
    """Send ``count`` new dispatches at ``rate`` per second from callers after ``first_index``."""
    if args.source == "sms":
        url = f"{stack.app_url}/twilio/sms"

        def request(index: int) -> SignedPost:
            return signed_post(url, sms_form(first_index + index), AUTH_TOKEN)

        return run_open_loop(request, rate=rate, count=count, max_seconds=count / rate + 1)

    url = f"{stack.app_url}/twilio/voice"

    def call(index: int) -> SignedPost:
        return signed_post(url, voice_form(first_index + index), AUTH_TOKEN)

    def reason(index: int, first: Exchange) -> SignedPost | None:
        return reason_request(first_index + index, first)

    return run_open_loop(call, rate=rate, count=count, max_seconds=count / rate + 1,
                         follow_up=reason)


def start_times(result: LoadResult, args: argparse.Namespace,
                first_index: int) -> dict[str, tuple[float, str]]:
    """Map each dispatch's source SID to (time its offer-starting webhook was sent, caller)."""
    starts: dict[str, tuple[float, str]] = {}
    for sample in result.samples:
        index = first_index + sample.index
        if args.source == "sms":
            exchange: Exchange | None = sample.first
            sid = f"SM{index:032x}"
        else:
            exchange = sample.follow_up
            sid = f"CA{index:032x}"
        if exchange is not None and exchange.ok:
            starts[sid] = (exchange.sent, caller_number(index))
    return starts


def channel_sources(database_url: str) -> dict[int, tuple[str, int]]:
    """Map each offer channel id to (its dispatch's source SID, the offer's sequence number)."""
    database = Database(database_url)
    try:
        with database.read() as session:
            rows = session.execute(
                select(OfferChannel.id, Dispatch.source_sid, Offer.seq)
                .join(Offer, Offer.id == OfferChannel.offer_id)
                .join(Dispatch, Dispatch.id == Offer.dispatch_id)
            ).all()
    finally:
        database.dispose()
    return {channel_id: (sid, seq) for channel_id, sid, seq in rows}


def wait_for_offers(fake: TimedFakeTwilio, expected: int, timeout: float) -> float:
    """Wait until ``expected`` REST creates arrived or ``timeout`` passed; return seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout and len(fake.creates()) < expected:
        time.sleep(0.2)
    return time.monotonic() - started


def match_offers(fake: TimedFakeTwilio, starts: dict[str, tuple[float, str]],
                 channels: dict[int, tuple[str, int]]) -> dict[str, Any]:
    """Pair each dispatch's start with its first offer request and its reply to the caller."""
    offer_at: dict[str, float] = {}
    reply_at: dict[str, float] = {}
    callers = {caller: sid for sid, (_, caller) in starts.items()}
    for at, entry in fake.creates():
        callback = (entry.form.get("StatusCallback") or [""])[0]
        match = CHANNEL_CALLBACK.search(callback)
        if match is not None:
            sid, seq = channels.get(int(match.group(1)), ("", 0))
            if seq == 1 and sid in starts:
                offer_at[sid] = min(at, offer_at.get(sid, at))
            continue
        to = (entry.form.get("To") or [""])[0]
        if to in callers:
            sid = callers[to]
            reply_at[sid] = min(at, reply_at.get(sid, at))

    offer_ms = [(offer_at[sid] - sent) * 1000 for sid, (sent, _) in starts.items()
                if sid in offer_at]
    reply_ms = [(reply_at[sid] - sent) * 1000 for sid, (sent, _) in starts.items()
                if sid in reply_at]
    return {
        "dispatches_started": len(starts),
        "offers_seen": len(offer_ms),
        "offers_missing": len(starts) - len(offer_ms),
        "first_offer_ms": summarize_ms(offer_ms),
        "caller_reply_ms": summarize_ms(reply_ms),
    }


def run(args: argparse.Namespace, database_url: str, prefix: str,
        log_dir: Path) -> dict[str, Any]:
    """Start the stack, warm it up, send the load, wait for the offers and match them."""
    stack = Stack(args, database_url, prefix, log_dir)
    try:
        warm = send_load(stack, args, 0, 4, 2.0)
        wait_for_offers(stack.fake, 8 if args.source == "sms" else 4, 30)
        first_index = len(warm.samples)
        count = int(args.rate * args.duration)
        creates_before = len(stack.fake.creates())
        result = send_load(stack, args, first_index, count, args.rate)
        starts = start_times(result, args, first_index)
        # An SMS dispatch makes two creates: the offer and the reply to the caller.
        expected = creates_before + len(starts) * (2 if args.source == "sms" else 1)
        waited = wait_for_offers(stack.fake, expected, args.drain)
        rss = stack.rss()
    finally:
        stack.stop()
    summary = match_offers(stack.fake, starts, channel_sources(database_url))
    webhook_failures = sum(not s.first.ok or (s.follow_up is not None and not s.follow_up.ok)
                           for s in result.samples)
    statuses: dict[str, int] = {}
    for sample in result.samples:
        for exchange in (sample.first, sample.follow_up):
            if exchange is not None:
                key = str(exchange.status) if exchange.status else f"error:{exchange.error}"
                statuses[key] = statuses.get(key, 0) + 1
    summary.update({
        "webhooks_sent": len(result.samples),
        "webhook_statuses": statuses,
        "webhook_failures": webhook_failures,
        "drain_seconds": round(waited, 1),
        "rss_after_mib": rss,
    })
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    logging.getLogger("fake_twilio").setLevel(logging.WARNING)
    # SIGTERM (as from `timeout`) unwinds like Ctrl-C, so the servers and the database go away.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args = parse_args(argv)
    suffix = "" if args.rq_worker == "fork" else "_" + args.rq_worker.replace("-", "_")
    name = args.name or f"first_offer_{args.source}_{args.rate:g}{suffix}"
    run_id = new_run_id()
    log_dir = Path(tempfile.mkdtemp(prefix=f"rrd-bench-{run_id}-"))
    started = datetime.now(UTC)
    with bench_database(run_id) as database_url, redis_prefix(run_id) as prefix:
        load_bench_profile(database_url)
        summary = run(args, database_url, prefix, log_dir)

    report = {
        "benchmark": "first_offer_latency",
        "started": started.isoformat(timespec="seconds"),
        "settings": vars(args),
        "machine": machine_info(),
        "logs": str(log_dir),
        "results": summary,
    }
    path = write_result(name, report)
    print_report(args, summary)
    print(f"\nresults written to {path}; process logs in {log_dir}")


def print_report(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    rows = []
    for label, key in (("first offer", "first_offer_ms"), ("reply to caller", "caller_reply_ms")):
        stats = summary[key]
        if not stats.get("count"):
            continue
        rows.append({"request": label, "source": args.source, "rate/s": args.rate,
                     "count": stats["count"], "p50 ms": stats["p50"], "p95 ms": stats["p95"],
                     "p99 ms": stats["p99"], "max ms": stats["max"]})
    print()
    print(f"dispatches started {summary['dispatches_started']}, offers seen "
          f"{summary['offers_seen']}, missing {summary['offers_missing']}, webhook failures "
          f"{summary['webhook_failures']}")
    if rows:
        print_table(rows, list(rows[0]))
    rss_rows = []
    for name, tree in summary["rss_after_mib"].items():
        rss_rows.append({"process": name, "pid": tree["pid"], "RSS MiB": tree["rss_mib"],
                         "children RSS MiB": ", ".join(str(c["rss_mib"])
                                                       for c in tree["children"])})
    print()
    print_table(rss_rows, ["process", "pid", "RSS MiB", "children RSS MiB"])


if __name__ == "__main__":
    main()
