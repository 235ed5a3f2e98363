"""Run the test suite, making sure Redis is reachable and saying loudly what is skipped.

With no Redis on 127.0.0.1:6379 it starts a private ``redis-server`` on a free port, when one is
installed. PostgreSQL tests run only where a server is reachable; otherwise they are skipped
and the summary says so. Under CI=true nothing may be skipped for a missing service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private_redis() -> subprocess.Popen[bytes] | None:
    server = shutil.which("redis-server")
    if server is None:
        return None
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="rrd-redis-")
    process = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if reachable("127.0.0.1", port):
            os.environ["RRD_TEST_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            print(f"run_tests: started a private redis-server on 127.0.0.1:{port}")
            return process
        time.sleep(0.1)
    process.terminate()
    return None


def main() -> int:
    private = None
    if not reachable("127.0.0.1", 6379):
        private = start_private_redis()
        if private is None:
            print(
                "run_tests: WARNING: no Redis on 127.0.0.1:6379 and no redis-server installed; "
                "Redis tests will be SKIPPED (install redis-server to run them)",
                flush=True,
            )
    if not reachable("127.0.0.1", 5432):
        print(
            "run_tests: WARNING: no PostgreSQL on 127.0.0.1:5432; PostgreSQL tests will be SKIPPED",
            flush=True,
        )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *sys.argv[1:]], cwd=ROOT
        )
        return result.returncode
    finally:
        if private is not None:
            private.terminate()


if __name__ == "__main__":
    sys.exit(main())
