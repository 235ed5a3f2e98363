"""Run RQ's forking worker after importing the job modules, to measure that change alone.

``flask rq-worker`` forks a work horse per job, and each horse imports ``jobs.tasks`` and the
twilio REST modules on first use because the parent never did. This entry point imports them
in the parent first, so every horse inherits them. Everything else matches ``flask rq-worker``:
the app is created first (which builds the runtime and so imports the database driver), then
RQ's default ``Worker`` runs with the JSON serializer and the scheduler.

Usage: ``python -m bench.warm_rq_worker QUEUE_NAME``, with the app's environment variables.
"""

from __future__ import annotations

import logging
import sys

from rq import Worker
from rq.serializers import JSONSerializer
from twilio.rest import Client

import jobs.tasks  # noqa: F401  (imported for its side effect: horses inherit the module)
from app import create_app
from jobs.runtime import get_runtime

logger = logging.getLogger(__name__)


def preload_twilio_modules() -> None:
    """Import the REST modules that ``client.messages`` and ``client.calls`` load lazily."""
    client = Client("AC" + "0" * 32, "unused")
    _ = client.api.v2010.account.messages
    _ = client.api.v2010.account.calls


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.warm_rq_worker QUEUE_NAME")
    create_app()
    preload_twilio_modules()
    runtime = get_runtime()
    worker = Worker([args[0]], connection=runtime.redis, serializer=JSONSerializer)
    logger.info("forking RQ worker with preloaded job modules on queue %s", args[0])
    worker.work(with_scheduler=True, logging_level="INFO")


if __name__ == "__main__":
    main()
