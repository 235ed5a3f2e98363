"""Request plumbing shared by the admin pages: login state, idle logout, CSRF and roles."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, request, session, url_for
from werkzeug.exceptions import BadRequest, Forbidden
from werkzeug.wrappers import Response

from admin.scope import Principal
from admin.users import principal_for_user
from dispatch.models import User
from jobs.runtime import Runtime

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 30 * 60
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

F = TypeVar("F", bound=Callable[..., Any])


def runtime() -> Runtime:
    return cast(Runtime, current_app.extensions["rrd"])


def now() -> datetime:
    return runtime().clock.now()


def client_address() -> str:
    return request.remote_addr or "unknown"


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Reject a state-changing request whose CSRF token does not match the session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        logger.warning("CSRF token missing or wrong on %s %s from %s",
                       request.method, request.path, client_address())
        raise BadRequest("the form's CSRF token is missing or expired; reload the page and retry")


def start_session(user: User) -> None:
    """Begin a fresh session for ``user``, so no value from before the login survives."""
    session.clear()
    session["user_id"] = user.id
    session["last_seen"] = now().timestamp()
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def load_principal() -> Response | None:
    """Load the logged-in user into ``g.principal``; redirect to the login page otherwise."""
    user_id = session.get("user_id")
    last_seen = session.get("last_seen")
    if not isinstance(user_id, int) or not isinstance(last_seen, (int, float)):
        return _to_login(None)

    current = now().timestamp()
    if current - last_seen > IDLE_TIMEOUT_SECONDS:
        logger.info("admin user %d logged out after %d s idle", user_id, int(current - last_seen))
        session.clear()
        return _to_login("You were logged out after 30 minutes without activity.")

    with runtime().db.read() as db_session:
        user = db_session.get(User, user_id)
    if user is None or not user.active:
        session.clear()
        return _to_login("Your account is no longer active.")

    session["last_seen"] = current
    g.principal = principal_for_user(user)
    g.user_email = user.email
    check_csrf()
    return None


def principal() -> Principal:
    return cast(Principal, g.principal)


def requires(role: str) -> Callable[[F], F]:
    """Allow a view only to principals holding ``role`` or a higher one."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not principal().can(role):
                logger.warning("%s lacks role %s for %s", principal().actor, role, request.path)
                raise Forbidden(f"this page needs the {role} role")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _to_login(message: str | None) -> Response:
    if message:
        session["login_message"] = message
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("admin_auth.login", next=target))
