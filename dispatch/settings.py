"""Service settings: defaults in code, overridden by environment variables or a test dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


class ConfigurationError(RuntimeError):
    """A setting is missing or invalid; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    DATABASE_URL: str = "sqlite:///instance/dispatch.sqlite3"
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    TWILIO_ACCOUNT_SID: str = ""
    TWILIO_AUTH_TOKEN: str = ""
    TWILIO_AUTH_TOKEN_SECONDARY: str = ""
    # Unset in production (the twilio library's own hosts); fake_twilio's URL for tests and demo.
    TWILIO_API_BASE_URL: str = ""
    PUBLIC_BASE_URL: str = ""
    TRUSTED_PROXY_HOPS: int = 0
    SECRET_KEY: str = ""
    SMTP_URL: str = ""
    OPERATOR_DESK_NUMBER: str = ""
    QUEUE_NAME: str = "dispatch"
    # "system" reads the real time; "redis" shares a test clock between processes.
    CLOCK: str = "system"
    CLOCK_KEY: str = "rrd:clock"
    REST_TIMEOUT_SECONDS: float = 10.0
    # Outbound calls started per second per Twilio account (Twilio's default limit is 1).
    CALLS_PER_SECOND: int = 1
    SENDING_LEASE_SECONDS: int = 15
    RECONCILE_INTERVAL_SECONDS: float = 2.0
    INTAKE_SECONDS: int = 45
    LATE_ACCEPT_SECONDS: int = 7200
    FOLLOWUP_SECONDS: int = 7200
    MAX_DISPATCHES_PER_CALLER_PER_HOUR: int = 5
    MAX_AUTO_REPLIES_PER_SENDER_PER_HOUR: int = 5
    SPOOL_DIR: str = "instance/spool"
    MAX_FORM_BYTES: int = 64 * 1024
    TESTING: bool = False

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from defaults, then the environment, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name in environ:
                values[field.name] = _coerce(field.name, field.type, environ[field.name])
        for name, value in (overrides or {}).items():
            if name in {f.name for f in fields(cls)}:
                values[name] = value
        return cls(**values)

    def require_twilio_token(self) -> None:
        """Raise unless an auth token is configured, because webhooks cannot be verified."""
        if not self.TWILIO_AUTH_TOKEN and not self.TESTING:
            raise ConfigurationError(
                "TWILIO_AUTH_TOKEN is not set: Twilio webhook signatures cannot be verified. "
                "Set TWILIO_AUTH_TOKEN (and TWILIO_ACCOUNT_SID) in the environment."
            )


def _coerce(name: str, type_name: Any, raw: str) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "str")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a valid {kind}") from exc
    return raw
