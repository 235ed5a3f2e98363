"""Run the fake as a loopback server.

Example: ``python -m fake_twilio --port 8801 --account AC...:token``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from datetime import UTC, datetime

import redis

from dispatch.clock import RedisClock
from fake_twilio.runner import start_in_thread
from fake_twilio.server import FakeTwilio

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fake_twilio", description="Serve a loopback stand-in for Twilio."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8801, help="TCP port to listen on (default 8801)"
    )
    parser.add_argument(
        "--webhook-target",
        help="loopback base URL of the app that receives webhooks, e.g. http://127.0.0.1:8000",
    )
    parser.add_argument(
        "--account",
        action="append",
        required=True,
        metavar="SID:TOKEN",
        help="account SID and auth token; repeat for subaccounts",
    )
    parser.add_argument(
        "--numbers", help="JSON file mapping incoming numbers to {voice_url, sms_url, account_sid}"
    )
    parser.add_argument(
        "--redis-url",
        help="share the project's RedisClock through this Redis URL; default: the system clock",
    )
    parser.add_argument(
        "--clock-key", default="rrd:clock", help="Redis key of the shared clock (default rrd:clock)"
    )
    parser.add_argument(
        "--pump-interval",
        type=float,
        default=0.1,
        help="seconds between runs of due tasks (default 0.1)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    accounts = dict(item.split(":", 1) for item in args.account)
    numbers = None
    if args.numbers:
        with open(args.numbers, encoding="utf-8") as handle:
            numbers = json.load(handle)

    clock = (
        RedisClock(redis.Redis.from_url(args.redis_url), args.clock_key) if args.redis_url else None
    )
    fake = FakeTwilio(
        clock if clock is not None else (lambda: datetime.now(UTC)),
        accounts,
        args.webhook_target,
        numbers,
    )
    server, base_url = start_in_thread(fake, args.host, args.port, pump_interval=args.pump_interval)
    logger.info(
        "fake_twilio serving %s for %d account(s); webhooks go to %s",
        base_url,
        len(accounts),
        args.webhook_target,
    )

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.shutdown()
    logger.info("fake_twilio stopped")


if __name__ == "__main__":
    main()
