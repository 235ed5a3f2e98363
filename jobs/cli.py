"""Flask CLI commands for the background side: worker, reconciler, database upgrade."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from types import FrameType

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from dispatch import migrate
from jobs.runtime import Runtime

logger = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 2.0


def register(app: Flask) -> None:
    app.cli.add_command(worker_command)
    app.cli.add_command(rq_worker_command)
    app.cli.add_command(reconciler_command)
    app.cli.add_command(watchdog_command)
    app.cli.add_command(db_group)


db_group = AppGroup("db", help="Database schema commands.")


@db_group.command("upgrade", help="Apply the Alembic migrations to DATABASE_URL.")
def db_upgrade() -> None:
    runtime: Runtime = current_app.extensions["rrd"]
    migrate.upgrade(runtime.settings.DATABASE_URL)
    click.echo(
        f"database at {runtime.db.engine.url.render_as_string(hide_password=True)} is up to date"
    )


@click.command("rq-worker", help="Run one RQ worker with its scheduler (no reconciler).")
@with_appcontext
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option(
    "--fork/--no-fork",
    default=False,
    help="Run each job in a forked work horse (RQ's default) instead of in this process.",
)
def rq_worker_command(burst: bool, fork: bool) -> None:
    runtime: Runtime = current_app.extensions["rrd"]
    # Jobs are short and only wait on Twilio and the database, so by default they run in this
    # process: forking a work horse per job re-imports the twilio REST modules each time, which
    # cost most of a job's time in the first-offer benchmark. Import them once, up front.
    from twilio.rest.api.v2010.account import AccountContext  # noqa: F401

    import jobs.tasks  # noqa: F401

    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([runtime.queue], connection=runtime.redis, serializer=JSONSerializer)
    worker.work(with_scheduler=True, burst=burst, logging_level="INFO")


@click.command("reconciler", help="Run the reconciler loop (rollovers, stalled sends).")
@with_appcontext
@click.option("--interval", type=float, default=None, help="Seconds between ticks (default 2).")
def reconciler_command(interval: float | None) -> None:
    from jobs.reconciler import run_forever

    run_forever(interval)


@click.command("watchdog", help="Page the operator desk when the reconciler or Twilio fails.")
@with_appcontext
@click.option(
    "--interval", type=float, default=15.0, show_default=True, help="Seconds between checks."
)
def watchdog_command(interval: float) -> None:
    from jobs.watchdog import run_forever

    run_forever(interval)


@click.command("worker", help="Run RQ workers and the reconciler, restarting any that dies.")
@click.option(
    "--processes",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="Number of RQ worker processes; one of them runs the scheduler at a time.",
)
def worker_command(processes: int) -> None:
    rq_worker = [sys.executable, "-m", "flask", "--app", "app", "rq-worker"]
    children = {f"rq-worker-{n}": rq_worker for n in range(1, processes + 1)}
    children["reconciler"] = [sys.executable, "-m", "flask", "--app", "app", "reconciler"]
    running: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for name, argv in children.items():
            process = running.get(name)
            if process is None or process.poll() is not None:
                if process is not None:
                    logger.warning(
                        "worker: %s exited with %s; restarting", name, process.returncode
                    )
                running[name] = subprocess.Popen(argv)
                logger.info("worker: started %s, pid %d", name, running[name].pid)
        time.sleep(RESTART_DELAY_SECONDS)
    for process in running.values():
        process.terminate()
    for name, process in running.items():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        logger.info("worker: %s stopped", name)
