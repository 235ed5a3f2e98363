"""Set up what a benchmark runs against: a throwaway database, server processes, RSS readings.

Everything listens on 127.0.0.1. Each run creates its own PostgreSQL database and Redis key
prefix and removes them afterwards, so benchmarks and test runs can share one server.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
import redis
import requests
import yaml

from dispatch.db import Database
from dispatch.migrate import upgrade
from dispatch.store import import_profile

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
VENV_BIN = Path(sys.executable).parent

PG_ADMIN_DSN = os.environ.get("RRD_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RRD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

ACCOUNT_SID = "AC" + "be" * 16
AUTH_TOKEN = "bench-auth-token"
ANSWERING_NUMBER = "+13125550100"
MEMBER_NUMBERS = ("+13125550101", "+13125550102", "+13125550103", "+13125550104")

# Callers are 555-1000 to 555-9999 in these area codes: valid to libphonenumber, and clear of
# the member and answering numbers (555-01xx).
CALLER_AREA_CODES = ("312", "773", "872", "630", "708")
CALLERS_PER_AREA_CODE = 9000

BENCH_PROFILE: dict[str, Any] = {
    "account": {
        "key": "bench",
        "name": "Bench Plumbing",
        "time_zone": "America/Chicago",
        "answering_numbers": [ANSWERING_NUMBER],
        "promised_response_minutes": 15,
    },
    "caller_script": {
        "greeting": "Thank you for calling Bench Plumbing.",
        "reason_prompt": "Please tell us what is wrong.",
    },
    "members": [
        {"key": f"m{index}", "name": f"Member {index}", "phones": {"voice": number, "sms": number}}
        for index, number in enumerate(MEMBER_NUMBERS, start=1)
    ],
    "pools": [{"key": "techs", "members": [f"m{i}" for i in range(1, len(MEMBER_NUMBERS) + 1)]}],
    "routes": [
        {
            "key": "emergency",
            "action": "page",
            "pool": "techs",
            "channels": ["sms"],
            "ack_window_voice_seconds": 120,
            "ack_window_sms_seconds": 120,
            "rounds": 2,
        }
    ],
}


def caller_number(index: int) -> str:
    """Return a distinct valid US caller number for each index below 45,000."""
    area, offset = divmod(index, CALLERS_PER_AREA_CODE)
    if area >= len(CALLER_AREA_CODES):
        raise ValueError(f"caller index {index} is past the {len(CALLER_AREA_CODES) * 9000} "
                         "distinct caller numbers; lower the rate or the duration")
    return f"+1{CALLER_AREA_CODES[area]}555{1000 + offset}"


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


# -- database ----------------------------------------------------------------------------------


@contextmanager
def bench_database(run_id: str) -> Iterator[str]:
    """Create and migrate a database named ``rrd_bench_<run_id>``; drop it on exit."""
    name = f"rrd_bench_{run_id}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        _drop_database(name)


def _drop_database(name: str, attempts: int = 10) -> None:
    """Drop a database after ending its sessions, which can take a moment to exit."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for attempt in range(1, attempts + 1):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            except psycopg.errors.ObjectInUse:
                if attempt == attempts:
                    logger.error("database %s still in use after %d attempts; drop it by hand",
                                 name, attempts)
                    return
                time.sleep(1)
                continue
            logger.info("database %s dropped", name)
            return


def load_bench_profile(database_url: str) -> None:
    """Store the benchmark account's profile: one paging route over four SMS members."""
    database = Database(database_url)
    try:
        with database.write("bench import") as session:
            import_profile(session, yaml.safe_dump(BENCH_PROFILE, sort_keys=False),
                           author="bench", reason="benchmark setup", now=datetime.now(UTC))
    finally:
        database.dispose()


@contextmanager
def redis_prefix(run_id: str) -> Iterator[str]:
    """Yield ``rrdbench:<run_id>``; delete every Redis key under it on exit."""
    prefix = f"rrdbench:{run_id}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{prefix}*", count=1000):
            client.delete(key)
        client.close()


def app_environment(
    *, database_url: str, public_base_url: str, queue_name: str, spool_dir: Path,
    api_base_url: str | None = None,
) -> dict[str, str]:
    """Return the environment for the app, worker and reconciler processes of a run."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAME": queue_name,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": public_base_url,
        "SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "SPOOL_DIR": str(spool_dir),
        "FLASK_APP": "app",
    })
    if api_base_url:
        env["TWILIO_API_BASE_URL"] = api_base_url
    return env


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A child process whose output goes to a log file; ``stop`` ends it by its own pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT)
        logger.info("%s started, pid %d, log %s", name, self.popen.pid, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        """Send SIGTERM, wait ``timeout`` seconds, then SIGKILL it and any child it left."""
        children = child_pids(self.pid)
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) ignored SIGTERM for %.0fs; killed", self.name,
                               self.pid, timeout)
                self.popen.kill()
                self.popen.wait(timeout=5)
        for pid in children:
            if rss_mib(pid) is not None:
                logger.warning("%s: child pid %d outlived its parent; killed", self.name, pid)
                _kill_quietly(pid)
        self._log.close()
        logger.info("%s stopped with exit code %s", self.name, self.popen.returncode)


def _kill_quietly(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def start_gunicorn(
    name: str, app_spec: str, port: int, env: dict[str, str], log_dir: Path, *,
    workers: int, threads: int,
) -> Process:
    """Start gunicorn with gthread workers on 127.0.0.1:``port`` and wait until it responds."""
    argv = [
        str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads), "--log-level", "warning",
        # Workers still busy with a backlog get this long to finish before they are killed.
        "--graceful-timeout", "5",
        app_spec,
    ]
    process = Process(name, argv, env, log_dir / f"{name}.log")
    wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
    return process


def start_flask_command(
    name: str, command: list[str], env: dict[str, str], log_dir: Path
) -> Process:
    """Start ``flask --app app <command>`` from the project root."""
    argv = [sys.executable, "-m", "flask", "--app", "app", *command]
    return Process(name, argv, env, log_dir / f"{name}.log")


def start_simple_rq_worker(
    name: str, queue_name: str, env: dict[str, str], log_dir: Path
) -> Process:
    """Start ``rq worker`` with RQ's SimpleWorker, which runs jobs in its own process.

    Unlike ``flask rq-worker``, it forks no work horse per job, so imports, the database
    pool and the twilio client stay warm between jobs.
    """
    argv = [str(VENV_BIN / "rq"), "worker", "--url", REDIS_URL, "--serializer", "json",
            "--worker-class", "rq.worker.SimpleWorker", "--with-scheduler", queue_name]
    return Process(name, argv, env, log_dir / f"{name}.log")


def start_warm_rq_worker(
    name: str, queue_name: str, env: dict[str, str], log_dir: Path
) -> Process:
    """Start RQ's forking worker with the job modules imported before the first fork."""
    argv = [sys.executable, "-m", "bench.warm_rq_worker", queue_name]
    return Process(name, argv, env, log_dir / f"{name}.log")


def wait_for_http(url: str, process: Process, timeout: float = 30.0) -> None:
    """Poll ``url`` until any HTTP response arrives; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode} before "
                               f"responding; see {process.log_path}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(f"{process.name} did not respond to {url} within {timeout:.0f}s; "
                       f"see {process.log_path}")


def child_pids(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid``, read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in field 2 may contain spaces, so fields are counted after its ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return sorted(children)


def rss_mib(pid: int) -> float | None:
    """Return the resident set size of ``pid`` in MiB, or None when it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def process_tree_rss(process: Process) -> dict[str, Any]:
    """Return the RSS of a process and of each of its children, in MiB."""
    children = child_pids(process.pid)
    return {
        "pid": process.pid,
        "rss_mib": _round(rss_mib(process.pid)),
        "children": [{"pid": pid, "rss_mib": _round(rss_mib(pid))} for pid in children],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- reporting ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Describe the machine: cores, memory, CPU model, Python and PostgreSQL versions."""
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(PG_ADMIN_DSN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    redis_info = redis.Redis.from_url(REDIS_URL).info("server")
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "postgresql": row[0] if row else "unknown",
        "redis": redis_info.get("redis_version", "unknown"),
        "kernel": platform.release(),
        "revision": source_revision(),
    }


def source_revision() -> str:
    """Return the project's git commit, with ``+dirty`` when tracked files have local changes."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, check=False)
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of values sorted ascending."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(values_ms: list[float]) -> dict[str, float | int]:
    """Return count, mean, p50, p90, p95, p99 and max of latencies in milliseconds."""
    ordered = sorted(values_ms)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 2),
        "p50": round(percentile(ordered, 0.50), 2),
        "p90": round(percentile(ordered, 0.90), 2),
        "p95": round(percentile(ordered, 0.95), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2),
    }


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print rows as a Markdown table with the given columns."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row.get(column, "")) for column in columns) + " |")


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``bench/results/<name>.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds that ``pid`` has used, or 0.0 once it exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int]:
    """Return (busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Return how busy all cores were between two ``machine_cpu_ticks`` readings, in percent."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100.0 * busy / total, 1) if total else 0.0
