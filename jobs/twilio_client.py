"""Build the twilio REST client, optionally pointed at a stand-in server such as fake_twilio."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

logger = logging.getLogger(__name__)


class RedirectingHttpClient(TwilioHttpClient):
    """Send every request meant for a ``*.twilio.com`` host to ``base_url``, same path and query.

    The twilio library still builds the requests and parses the errors, so callers see
    the same ``TwilioRestException`` (with ``.code`` and ``.status``) as against Twilio.
    Proxy settings from the environment are ignored because the target is a local server.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self._base_parts = urlsplit(self.base_url)
        if not self._base_parts.scheme or not self._base_parts.netloc:
            raise ValueError(
                f"base_url {base_url!r} is not an absolute URL; pass e.g. http://127.0.0.1:8801"
            )
        if self.session is not None:
            self.session.trust_env = False

    def rewrite_url(self, url: str) -> str:
        """Return ``url`` with a Twilio host replaced by ``base_url``; other URLs are unchanged."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url

        path = self._base_parts.path.rstrip("/") + parts.path
        return urlunsplit(
            (self._base_parts.scheme, self._base_parts.netloc, path, parts.query, parts.fragment)
        )

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request to the rewritten URL with the library's own request handling."""
        target = self.rewrite_url(url)
        logger.debug("Twilio request %s %s sent to %s", method, urlsplit(url).path, self.base_url)
        return super().request(
            method, target, params, data, headers, auth, timeout, allow_redirects
        )


def make_twilio_client(
    account_sid: str,
    auth_token: str,
    base_url: str | None = None,
    timeout: float = 10.0,
) -> Client:
    """Create a twilio REST client with a REST ``timeout`` in seconds.

    With ``base_url`` (e.g. ``http://127.0.0.1:8801``), requests go to that server instead
    of ``api.twilio.com`` and the other Twilio hosts.
    """
    if base_url:
        http_client: TwilioHttpClient = RedirectingHttpClient(base_url, timeout)
    else:
        http_client = TwilioHttpClient(timeout=timeout)
    return Client(account_sid, auth_token, http_client=http_client)
