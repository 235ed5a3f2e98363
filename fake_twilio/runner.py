"""Serve the fake on a loopback port, in a background thread or as a process."""

from __future__ import annotations

import ipaddress
import logging
import threading
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from fake_twilio.app import create_app
from fake_twilio.server import FakeTwilio

logger = logging.getLogger(__name__)


class MaskedRequestHandler(WSGIRequestHandler):
    """Log each request without its query string, which can contain phone numbers."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info("%s %s %s", self.command, urlsplit(self.path).path, code)


class Pump:
    """A thread that calls ``fake.run_pending()`` every ``interval`` seconds of real time."""

    def __init__(self, fake: FakeTwilio, interval: float) -> None:
        self._fake = fake
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-twilio-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._fake.run_pending()


def require_loopback(host: str) -> None:
    """Raise ValueError unless ``host`` is localhost or a loopback address."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"host {host!r} is not a loopback address; use 127.0.0.1")


def start_in_thread(
    fake: FakeTwilio, host: str = "127.0.0.1", port: int = 0, pump_interval: float | None = None
) -> tuple[BaseWSGIServer, str]:
    """Serve the fake's REST API from a daemon thread and return the server and its base URL.

    ``port=0`` picks a free port. With ``pump_interval`` (seconds), a second thread runs
    ``run_pending`` in a loop, as the standalone server does. Stop with ``server.shutdown()``.
    """
    require_loopback(host)
    server = make_server(
        host, port, create_app(fake), threaded=True, request_handler=MaskedRequestHandler
    )
    base_url = f"http://{host}:{server.server_port}"
    threading.Thread(target=server.serve_forever, name="fake-twilio-http", daemon=True).start()

    if pump_interval is not None:
        pump = Pump(fake, pump_interval)
        pump.start()
        stop_server = server.shutdown

        def shutdown() -> None:
            pump.stop()
            stop_server()

        setattr(server, "shutdown", shutdown)  # noqa: B010
    logger.info("fake_twilio listening on %s", base_url)
    return server, base_url
