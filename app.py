"""Flask application factory for Round-Robin Dispatch."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from dispatch.settings import ConfigurationError, Settings
from jobs.runtime import Runtime, set_runtime

logger = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. Settings come from code defaults, then the environment, then ``config``."""
    settings = Settings.load(config)
    settings.require_twilio_token()
    if not settings.SECRET_KEY and not settings.TESTING:
        raise ConfigurationError(
            "SECRET_KEY is not set: admin sessions cannot be signed. Set SECRET_KEY to a long "
            "random string, for example the output of:\n"
            "  python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    _configure_logging(settings)

    app = Flask(__name__, instance_path=str(Path("instance").resolve()))
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY or "testing-only-secret",
        TESTING=settings.TESTING,
        MAX_CONTENT_LENGTH=settings.MAX_FORM_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.PUBLIC_BASE_URL.startswith("https://"),
        RRD_SETTINGS=settings,
    )
    runtime = Runtime.build(settings)
    set_runtime(runtime)
    app.extensions["rrd"] = runtime

    _register_blueprints(app)
    _register_commands(app)
    if not settings.OPERATOR_DESK_NUMBER:
        logger.warning(
            "OPERATOR_DESK_NUMBER is not set: a dispatch whose chain runs out alerts nobody "
            "unless its account's profile names a final_escalation line"
        )
    return app


def _configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The twilio library logs every request's parameters (full phone numbers) at INFO.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def _register_blueprints(app: Flask) -> None:
    from webhooks.health import bp as health_bp
    from webhooks.routes import bp as twilio_bp

    app.register_blueprint(twilio_bp)
    app.register_blueprint(health_bp)
    try:
        from admin import register as register_admin
    except ImportError:
        logger.debug("admin package not available")
    else:
        register_admin(app)


def _register_commands(app: Flask) -> None:
    from jobs.cli import register as register_job_commands

    register_job_commands(app)
    try:
        from cli.profile import register as register_profile_commands
    except ImportError:
        logger.debug("profile commands not available")
    else:
        register_profile_commands(app)
    try:
        from admin.cli import register as register_admin_commands
    except ImportError:
        logger.debug("admin commands not available")
    else:
        register_admin_commands(app)
