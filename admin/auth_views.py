"""Login and logout of admin users, with failed logins limited per email and per address."""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from admin import audit
from admin.ratelimit import LoginLimiter
from admin.users import authenticate
from admin.web import (
    check_csrf,
    client_address,
    csrf_token,
    load_principal,
    now,
    principal,
    runtime,
    start_session,
)

logger = logging.getLogger(__name__)

bp = Blueprint(
    "admin_auth", __name__, url_prefix="/admin", static_folder="static",
    static_url_path="/static", template_folder="templates",
)


def limiter() -> LoginLimiter:
    rt = runtime()
    return LoginLimiter(rt.redis, f"{rt.settings.QUEUE_NAME}:admin")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    if request.method == "GET":
        csrf_token()
        return render_template("admin/login.html", message=session.pop("login_message", None),
                               next=_safe_next(request.args.get("next")))

    check_csrf()
    email = request.form.get("email", "").strip().lower()[:200]
    password = request.form.get("password", "")
    address = client_address()
    wait = limiter().blocked_for(email, address)
    if wait:
        logger.warning("login for %s from %s blocked for %d s after repeated failures",
                       email, address, wait)
        minutes = max(1, (wait + 59) // 60)
        message = f"Too many failed logins. Try again in {minutes} minute(s)."
        return render_template("admin/login.html", message=message, next=None), 429

    with runtime().db.write("admin login") as db_session:
        user = authenticate(db_session, email, password) if email and password else None
        if user is None:
            audit.record_admin(db_session, audit.LOGIN_FAILED, at=now(), account_id=None,
                               actor="anonymous", email=email, address=address)
        else:
            audit.record_admin(db_session, audit.LOGIN, at=now(), account_id=user.account_id,
                               actor=f"user:{user.email}", address=address)
    if user is None:
        limiter().record_failure(email, address)
        logger.info("failed login for %s from %s", email, address)
        return render_template("admin/login.html", message="Email or password is wrong.",
                               next=_safe_next(request.form.get("next"))), 401

    limiter().reset(email)
    start_session(user)
    target = _safe_next(request.form.get("next"))
    return redirect(target or url_for("admin_dispatches.dispatch_list"))


@bp.post("/logout")
def logout() -> Response:
    failed = load_principal()
    if failed is not None:
        return failed
    who = principal()
    with runtime().db.write("admin logout") as db_session:
        audit.record_admin(db_session, audit.LOGOUT, at=now(), account_id=who.account_id,
                           actor=who.actor)
    session.clear()
    session["login_message"] = "You are logged out."
    return redirect(url_for("admin_auth.login"))


def _safe_next(target: str | None) -> str | None:
    """Return ``target`` only when it is a path of the admin pages, never another site."""
    if not target or not target.startswith("/admin/") or target.startswith("//"):
        return None
    if "\\" in target or "\n" in target or "\r" in target:
        return None
    return target
