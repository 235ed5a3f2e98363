"""Admin pages for an account's users and API tokens (the admin role)."""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, render_template, request, session, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.wrappers import Response

from admin.passwords import MIN_PASSWORD_LENGTH, PasswordPolicyError
from admin.scope import MAX_ID, ROLES, AccountScope
from admin.tokens import DEFAULT_DAYS, create_token, revoke_token, tokens_for
from admin.users import UserError, create_user, deactivate_user, users_for
from admin.web import load_principal, now, principal, requires, runtime
from dispatch.models import ApiToken, User

logger = logging.getLogger(__name__)

bp = Blueprint("admin_accounts", __name__, url_prefix="/admin")
bp.before_request(load_principal)


@bp.get("/users")
@requires("admin")
def users() -> str:
    with runtime().db.read() as db_session:
        rows = users_for(db_session, principal())
        accounts = AccountScope(db_session, principal()).accounts()
    return render_template("admin/users.html", users=rows, accounts=accounts, roles=ROLES,
                           message=session.pop("users_message", None),
                           min_length=MIN_PASSWORD_LENGTH)


@bp.post("/users")
@requires("admin")
def add_user() -> Response:
    who = principal()
    form = request.form
    with runtime().db.write("admin add user") as db_session:
        account_id = _account_id(db_session, form.get("account", "").strip())
        try:
            user = create_user(
                db_session, email=form.get("email", ""), password=form.get("password", ""),
                role=form.get("role", ""), account_id=account_id, now=now(), actor=who.actor,
            )
        except (UserError, PasswordPolicyError) as exc:
            logger.info("user not created by %s: %s", who.actor, exc)
            raise BadRequest(str(exc)) from None
        session["users_message"] = f"User {user.email} created."
    return redirect(url_for("admin_accounts.users"))


@bp.post("/users/<int:user_id>/deactivate")
@requires("admin")
def remove_user(user_id: int) -> Response:
    who = principal()
    with runtime().db.write("admin deactivate user") as db_session:
        user = db_session.get(User, user_id) if user_id <= MAX_ID else None
        if user is None or not AccountScope(db_session, who).sees(user.account_id):
            raise NotFound(f"user {user_id} not found")
        if user.id == who.user_id:
            raise BadRequest("you cannot deactivate your own user")
        deactivate_user(db_session, user, now=now(), actor=who.actor)
        session["users_message"] = f"User {user.email} deactivated."
    return redirect(url_for("admin_accounts.users"))


@bp.get("/tokens")
@requires("admin")
def tokens() -> str:
    return _tokens_page(None)


def _tokens_page(secret: str | None) -> str:
    who = principal()
    with runtime().db.read() as db_session:
        rows = tokens_for(db_session, who.account_id, service=who.is_service)
        accounts = AccountScope(db_session, who).accounts()
    names = {account.id: account.key for account in accounts}
    return render_template("admin/tokens.html", tokens=rows, accounts=accounts, names=names,
                           secret=secret, default_days=DEFAULT_DAYS,
                           current=now())


@bp.post("/tokens")
@requires("admin")
def add_token() -> str:
    who = principal()
    days_text = request.form.get("days", str(DEFAULT_DAYS)).strip()
    if not days_text.isdigit():
        raise BadRequest(f"days={days_text[:20]!r} is not a whole number of days")
    with runtime().db.write("admin add token") as db_session:
        account_id = _account_id(db_session, request.form.get("account", "").strip())
        try:
            issued = create_token(db_session, account_id=account_id,
                                  name=request.form.get("name", ""), days=int(days_text),
                                  now=now(), actor=who.actor)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    # The secret is shown in this response only; the database keeps its hash.
    return _tokens_page(issued.secret)


@bp.post("/tokens/<int:token_id>/revoke")
@requires("admin")
def remove_token(token_id: int) -> Response:
    who = principal()
    with runtime().db.write("admin revoke token") as db_session:
        token = db_session.get(ApiToken, token_id) if token_id <= MAX_ID else None
        if token is None or not AccountScope(db_session, who).sees(token.account_id):
            raise NotFound(f"API token {token_id} not found")
        revoke_token(db_session, token.id, now=now(), actor=who.actor)
    return redirect(url_for("admin_accounts.tokens"))


def _account_id(db_session: Session, key: str) -> int | None:
    """Return the account a new user or token belongs to.

    An account admin can only add to their own account. A service admin names the account, or
    leaves it empty for a service-wide user or token.
    """
    who = principal()
    if not who.is_service:
        return who.account_id
    if not key:
        return None
    try:
        return AccountScope(db_session, who).account(key).id
    except NotFound:
        raise BadRequest(f"account {key[:64]!r} not found") from None
