"""Verification of the ``X-Twilio-Signature`` header on Twilio webhooks.

Twilio signs the exact URL it requested plus the POST parameters with the account's auth
token. Behind a TLS-terminating proxy the app sees plain http on an internal host, so the URL
is rebuilt from ``PUBLIC_BASE_URL`` when it is configured, and otherwise from forwarded headers
only as far as the configured number of trusted proxy hops allows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from flask import Request
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.http import parse_list_header

logger = logging.getLogger(__name__)

SIGNATURE_MISSING = "signature_missing"
SIGNATURE_MISMATCH = "signature_mismatch"
NO_AUTH_TOKEN = "no_auth_token"
ALGORITHM_UNSUPPORTED = "signature_algorithm_unsupported"

# Characters that RFC 3986 allows unescaped in a path, besides letters, digits and "-._~".
# Werkzeug decodes the path, so it is escaped again before signing.
# NOTE: an escaped "/" (%2F) in a path cannot be restored and fails the check. The app's own
# Twilio routes contain only names and numeric ids.
_PATH_SAFE = "/:@!$&'()*+,;=~"

# At most one warning per failure reason in this interval, so a flood of forged requests
# cannot flood the log.
WARNING_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of a signature check, with the URL that was verified.

    ``token_index`` is the position in ``tokens`` of the token that matched: 0 for the primary
    token, 1 for the secondary token during a rotation.
    """

    ok: bool
    url: str
    reason: str | None = None
    token_index: int | None = None


class _WarningLimiter:
    """Count failures per reason and let one warning per reason through each interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, reason: str) -> tuple[bool, int]:
        """Return whether to log now, and how many warnings were suppressed since the last."""
        now = time.monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self.interval:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return False, 0

        self._last_logged[reason] = now
        return True, self._suppressed.pop(reason, 0)


_warnings = _WarningLimiter(WARNING_INTERVAL_SECONDS)


def public_url_for(
    request: Request, public_base_url: str | None, trusted_proxy_hops: int = 0
) -> str:
    """Rebuild the URL that Twilio requested and signed.

    With ``public_base_url`` the URL is that base plus the request path and the raw query
    string, so the base must include any path prefix that the proxy strips. Without it, the
    scheme and host come from ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` when
    ``trusted_proxy_hops`` is at least 1, taking the value that the last trusted hop added
    (as Werkzeug's ProxyFix does), else from the request itself. Do not combine a nonzero
    ``trusted_proxy_hops`` with ProxyFix on the same app, which would apply the headers twice.
    """
    path = quote(request.path, safe=_PATH_SAFE)
    query = _raw_query(request)
    suffix = path + ("?" + query if query else "")

    if public_base_url:
        return public_base_url.rstrip("/") + suffix

    scheme = _forwarded_value(request, "X-Forwarded-Proto", trusted_proxy_hops) or request.scheme
    host = _forwarded_value(request, "X-Forwarded-Host", trusted_proxy_hops) or request.host
    return f"{scheme}://{host}{quote(request.script_root, safe=_PATH_SAFE)}{suffix}"


def verify_twilio_request(
    request: Request,
    tokens: Sequence[str],
    public_base_url: str | None,
    trusted_proxy_hops: int = 0,
) -> SignatureCheck:
    """Check the request's Twilio signature against each token in order.

    Pass the primary auth token first and the secondary one, used during a rotation, second.
    Empty tokens are skipped. The parameters are the whole form with every value of a repeated
    key, or the raw body when the URL carries Twilio's ``bodySHA256`` (JSON webhooks). The
    ``X-Twilio-Webhooks-Signature-Settings`` header selects HMAC-SHA256 for webhooks signed
    with a shared key, whose secret must then be one of ``tokens``.
    """
    url = public_url_for(request, public_base_url, trusted_proxy_hops)
    if not any(tokens):
        return _reject(url, NO_AUTH_TOKEN, logging.ERROR)

    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return _reject(url, SIGNATURE_MISSING, logging.WARNING)

    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if algorithm.upper() not in (HMAC_SHA1, HMAC_SHA256):
        return _reject(url, ALGORITHM_UNSUPPORTED, logging.WARNING)

    params = _signed_params(request)
    for index, token in enumerate(tokens):
        if not token or not RequestValidator(token).validate(url, params, signature, algorithm):
            continue
        if index > 0:
            logger.info("Twilio signature for %s matched auth token number %d", url, index + 1)
        return SignatureCheck(ok=True, url=url, token_index=index)

    return _reject(url, SIGNATURE_MISMATCH, logging.WARNING)


def _signed_params(request: Request) -> str | ImmutableMultiDict[str, str]:
    # RequestValidator reads repeated keys through MultiDict.getlist, so the form is passed
    # as it is. A plain dict would keep only one value per key.
    if "bodySHA256" in request.args:
        return request.get_data(as_text=True)
    return request.form


def _raw_query(request: Request) -> str:
    # request.url and request.args decode escapes such as %2F, which changes the signed text.
    raw = request.query_string
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _forwarded_value(request: Request, header: str, trusted_proxy_hops: int) -> str | None:
    if trusted_proxy_hops < 1:
        return None

    value = request.headers.get(header)
    if not value:
        return None

    values = parse_list_header(value)
    if len(values) < trusted_proxy_hops:
        return None
    return values[-trusted_proxy_hops].strip() or None


def _reject(url: str, reason: str, level: int) -> SignatureCheck:
    allowed, suppressed = _warnings.allow(reason)
    if allowed:
        logger.log(
            level,
            "Twilio signature check failed for %s: %s (%d similar failures not logged)",
            url,
            reason,
            suppressed,
        )
    return SignatureCheck(ok=False, url=url, reason=reason)
