"""Sign and deliver webhooks the way Twilio does, to loopback hosts only."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

logger = logging.getLogger(__name__)

Params = Sequence[tuple[str, str]]

# Twilio waits up to 15 s for a webhook response before it gives up.
WEBHOOK_TIMEOUT_SECONDS = 15.0


class WebhookError(RuntimeError):
    """A webhook could not be delivered (refused host or connection failure)."""


def is_loopback(url: str) -> bool:
    """Return whether ``url`` names localhost or a loopback address."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_idempotency_token() -> str:
    """Return a fresh value for the I-Twilio-Idempotency-Token header."""
    return secrets.token_hex(16)


def sign(url: str, params: Params, auth_token: str) -> str:
    """Return the X-Twilio-Signature for a request to ``url`` with the form ``params``."""
    return RequestValidator(auth_token).compute_signature(url, MultiDict(list(params)))


class WebhookSender:
    """Send signed webhooks, delivering public URLs to a loopback ``webhook_target``.

    The signature covers the URL the app configured (e.g. its public https URL), as
    Twilio signs it. The request itself goes to ``webhook_target`` with the same path
    and query. Without a target the URL is used as given, and it must be loopback.
    """

    def __init__(self, webhook_target: str | None) -> None:
        self.webhook_target = webhook_target.rstrip("/") if webhook_target else None
        if self.webhook_target and not is_loopback(self.webhook_target):
            raise ValueError(
                f"webhook target {webhook_target!r} is not a loopback URL; use http://127.0.0.1:<port>"
            )
        self._session = requests.Session()
        self._session.trust_env = False

    def delivery_url(self, url: str) -> str:
        """Return the loopback URL that a webhook meant for ``url`` is sent to."""
        if self.webhook_target is None:
            return url
        parts = urlsplit(url)
        target = urlsplit(self.webhook_target)
        path = target.path.rstrip("/") + parts.path
        return urlunsplit((target.scheme, target.netloc, path, parts.query, ""))

    def send(
        self,
        url: str,
        params: Params,
        auth_token: str,
        method: str = "POST",
        idempotency_token: str | None = None,
    ) -> requests.Response:
        """Send one signed webhook and return the response.

        Copies of one delivery share ``idempotency_token``, as Twilio's retries do.
        Raises WebhookError when the delivery host is not loopback or the request fails.
        """
        method = method.upper()
        signed_url = url
        body: Params | None = params
        if method == "GET":
            separator = "&" if urlsplit(url).query else "?"
            signed_url = url + separator + urlencode(list(params)) if params else url
            body = None

        headers = {
            "X-Twilio-Signature": sign(signed_url, body or [], auth_token),
            "I-Twilio-Idempotency-Token": idempotency_token or new_idempotency_token(),
            "User-Agent": "TwilioProxy/1.1",
        }
        target = self.delivery_url(signed_url)
        if not is_loopback(target):
            raise WebhookError(
                f"rejected webhook to {target}: only loopback hosts are allowed; "
                "set webhook_target to the app's loopback URL"
            )

        try:
            response = self._session.request(
                method,
                target,
                data=list(body) if body else None,
                headers=headers,
                timeout=WEBHOOK_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise WebhookError(f"webhook {method} {target} failed: {exc}") from exc
        logger.debug(
            "Webhook %s %s returned %s", method, urlsplit(target).path, response.status_code
        )
        return response
