"""Admin pages for an account's profile: the current document, its history, diffs and edits."""

from __future__ import annotations

import difflib
import logging

from flask import Blueprint, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, Conflict, NotFound
from werkzeug.wrappers import Response

from admin import audit
from admin.profile_edits import Edit, EditError, parse_edit, preview_edit
from admin.scope import MAX_ID, AccountScope
from admin.web import load_principal, now, principal, requires, runtime
from dispatch.models import Account, ProfileVersion
from dispatch.profile import ProfileError, diff_profiles
from dispatch.store import current_version, store_profile, version_by_number

logger = logging.getLogger(__name__)

bp = Blueprint("admin_profiles", __name__, url_prefix="/admin/profiles")
bp.before_request(load_principal)

EDIT_PREFIX = "edit_"


@bp.get("/<key>")
def profile(key: str) -> str:
    with runtime().db.read() as db_session:
        account, current, history = _load(db_session, key)
    return render_template(
        "admin/profile.html", account=account, current=current, history=history,
        message=session.pop("profile_message", None), errors=[],
        can_edit=principal().can("manager"),
    )


@bp.get("/<key>/versions/<int:number>")
def version(key: str, number: int) -> str:
    with runtime().db.read() as db_session:
        account = AccountScope(db_session, principal()).account(key)
        row = _version(db_session, account, number)
    return render_template("admin/profile_version.html", account=account, version=row)


@bp.get("/<key>/diff")
def diff(key: str) -> str:
    first = _version_number(request.args.get("a"), "a")
    second = _version_number(request.args.get("b"), "b")
    with runtime().db.read() as db_session:
        account = AccountScope(db_session, principal()).account(key)
        old = _version(db_session, account, first)
        new = _version(db_session, account, second)
    return render_template("admin/profile_diff.html", account=account, old=old, new=new,
                           diff=_diff(old.document, new.document))


@bp.post("/<key>/preview")
@requires("manager")
def preview(key: str) -> tuple[str, int] | str:
    with runtime().db.read() as db_session:
        account, current, history = _load(db_session, key)
    try:
        edit = parse_edit(request.form.to_dict())
        result = preview_edit(current.document, edit)
    except EditError as exc:
        logger.info("profile edit of %s rejected: %s", key, exc)
        raise BadRequest(str(exc)) from None
    except ProfileError as exc:
        logger.info("profile edit of %s would be invalid: %d error(s)", key, len(exc.errors))
        return render_template(
            "admin/profile.html", account=account, current=current, history=history,
            message="The edit was not saved because the profile would be invalid.",
            errors=exc.errors, can_edit=True,
        ), 422
    return render_template(
        "admin/profile_preview.html", account=account, current=current, edit=edit,
        prefix=EDIT_PREFIX, preview=result,
    )


@bp.post("/<key>/save")
@requires("manager")
def save(key: str) -> Response:
    edit = _parsed_or_400(request.form.to_dict())
    reason = request.form.get("reason", "").strip()
    base = _version_number(request.form.get("base_version"), "base_version")
    if not reason:
        raise BadRequest("reason is missing: say why the profile changes")

    who = principal()
    with runtime().db.write("admin profile edit") as db_session:
        account = AccountScope(db_session, who).account(key)
        current = current_version(db_session, account.id)
        if current is None or current.version != base:
            raise Conflict(
                f"the profile changed since version {base} was shown; reload it and edit again"
            )
        try:
            result = preview_edit(current.document, edit)
        except (EditError, ProfileError) as exc:
            raise BadRequest(f"the edit is no longer valid: {exc}") from None
        stored = store_profile(db_session, result.loaded, author=who.actor, reason=reason,
                               now=now())
        audit.record_admin(
            db_session, audit.PROFILE_EDITED, at=now(), account_id=account.id, actor=who.actor,
            edit=edit.describe(), version=stored.version, reason=reason,
        )
    session["profile_message"] = (
        f"Saved as version {stored.version}." if stored.created else "Nothing changed."
    )
    return redirect(url_for("admin_profiles.profile", key=key))


def _parsed_or_400(form: dict[str, str]) -> Edit:
    try:
        return parse_edit(form, EDIT_PREFIX)
    except EditError as exc:
        raise BadRequest(str(exc)) from None


def _load(
    db_session: Session, key: str
) -> tuple[Account, ProfileVersion, list[ProfileVersion]]:
    account = AccountScope(db_session, principal()).account(key)
    current = current_version(db_session, account.id)
    if current is None:
        raise NotFound(f"account {key!r} has no profile yet")
    history = db_session.execute(
        select(ProfileVersion).where(ProfileVersion.account_id == account.id)
        .order_by(ProfileVersion.version.desc())
    ).scalars()
    return account, current, list(history)


def _version(db_session: Session, account: Account, number: int) -> ProfileVersion:
    row = version_by_number(db_session, account.id, number)
    if row is None:
        raise NotFound(f"profile version {number} of account {account.key!r} not found")
    return row


def _version_number(raw: str | None, name: str) -> int:
    text = (raw or "").strip()
    if not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise BadRequest(f"{name}={text[:20]!r} is not a version number")
    return int(text)


def _diff(old: str, new: str) -> str:
    """Diff two stored documents; fall back to a plain text diff if one no longer validates."""
    try:
        return diff_profiles(old, new)
    except ProfileError:
        lines = difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), "old", "new"
        )
        return "".join(lines)
