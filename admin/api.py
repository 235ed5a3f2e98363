"""The read-only JSON API under ``/api/v1/``, authenticated by bearer tokens."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, NotFound, Unauthorized
from werkzeug.wrappers import Response

from admin.dispatch_views import check_filters, csv_response, filters_or_400
from admin.queries import callback_text, caller_text, list_page
from admin.scope import MAX_ID, AccountScope, Principal
from admin.timefmt import local_iso, utc_iso
from admin.timeline import build_timeline
from admin.tokens import principal_for_token
from admin.web import client_address, now, runtime
from dispatch.models import Account, Dispatch, ProfileVersion
from dispatch.store import current_version, version_by_number

logger = logging.getLogger(__name__)

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send an API token as 'Authorization: Bearer <token>'")
    with runtime().db.read() as session:
        found = principal_for_token(session, secret.strip(), now())
    if found is None:
        logger.info("API request to %s from %s with an unknown, expired or revoked token",
                    request.path, client_address())
        raise Unauthorized("the API token is unknown, expired or revoked")
    g.principal = found


@bp.errorhandler(HTTPException)
def json_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    response = jsonify(error={"status": status, "message": error.description})
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response, status


def _principal() -> Principal:
    who: Principal = g.principal
    return who


@bp.get("/accounts")
def accounts() -> Response:
    with runtime().db.read() as session:
        rows = AccountScope(session, _principal()).accounts()
        data = [_account_json(session, account) for account in rows]
    return jsonify(accounts=data)


@bp.get("/dispatches")
def dispatches() -> Response:
    flt = filters_or_400(request.args.to_dict())
    with runtime().db.read() as session:
        scope = AccountScope(session, _principal())
        check_filters(scope, flt)
        page = list_page(session, scope, flt)
    return jsonify(
        dispatches=[row.as_json() for row in page.rows],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@bp.get("/dispatches.csv")
def dispatches_csv() -> Response:
    flt = filters_or_400(request.args.to_dict())
    return csv_response(_principal(), flt)


@bp.get("/dispatches/<int:dispatch_id>")
def dispatch_detail(dispatch_id: int) -> Response:
    with runtime().db.read() as session:
        scope = AccountScope(session, _principal())
        dispatch = scope.dispatch(dispatch_id)
        account = scope.account_by_id(dispatch.account_id)
        timeline = build_timeline(session, dispatch, account)
        version = timeline.version
        data = {
            **_dispatch_json(dispatch, account),
            "reason": dispatch.reason,
            "profile_version": version.version if version else None,
            "events": [entry.as_json() for entry in timeline.entries],
            "offers": [
                {
                    "id": view.offer.id,
                    "seq": view.offer.seq,
                    "kind": str(view.offer.kind),
                    "round": view.offer.round,
                    "member": view.offer.member_key,
                    "member_name": view.offer.member_name,
                    "state": str(view.offer.state),
                    "close_reason": view.offer.close_reason,
                    "created_at": utc_iso(view.offer.created_at),
                    "deadline": utc_iso(view.offer.deadline),
                    "closed_at": utc_iso(view.offer.closed_at),
                    "channels": [
                        {
                            "channel": str(c.row.channel),
                            "to": c.row.to_number,
                            "sid": c.row.provider_sid,
                            "state": str(c.row.state),
                            "error_code": c.row.error_code,
                            "error_meaning": c.error_meaning or None,
                            "deliveries": [d.as_json() for d in c.deliveries],
                        }
                        for c in view.channels
                    ],
                }
                for view in timeline.offers
            ],
            "other_deliveries": [d.as_json() for d in timeline.other_deliveries],
        }
    return jsonify(dispatch=data)


@bp.get("/accounts/<key>/profile")
def profile_current(key: str) -> Response:
    with runtime().db.read() as session:
        account = AccountScope(session, _principal()).account(key)
        row = current_version(session, account.id)
        if row is None:
            raise NotFound(f"account {key!r} has no profile yet")
        return jsonify(profile=_version_json(row, with_document=True))


@bp.get("/accounts/<key>/profile/versions")
def profile_versions(key: str) -> Response:
    with runtime().db.read() as session:
        account = AccountScope(session, _principal()).account(key)
        rows = session.execute(
            select(ProfileVersion).where(ProfileVersion.account_id == account.id)
            .order_by(ProfileVersion.version.desc())
        ).scalars()
        return jsonify(versions=[_version_json(row, with_document=False) for row in rows])


@bp.get("/accounts/<key>/profile/versions/<int:number>")
def profile_version(key: str, number: int) -> Response:
    with runtime().db.read() as session:
        account = AccountScope(session, _principal()).account(key)
        row = version_by_number(session, account.id, number) if number <= MAX_ID else None
        if row is None:
            raise NotFound(f"profile version {number} of account {key!r} not found")
        return jsonify(profile=_version_json(row, with_document=True))


@bp.route("/<path:unknown>")
def not_found(unknown: str) -> Response:
    raise NotFound(f"no API endpoint /api/v1/{unknown[:100]}")


def _account_json(session: Session, account: Account) -> dict[str, Any]:
    current = current_version(session, account.id)
    return {
        "key": account.key,
        "name": account.name,
        "time_zone": account.time_zone,
        "profile_version": current.version if current else None,
    }


def _dispatch_json(dispatch: Dispatch, account: Account) -> dict[str, Any]:
    return {
        "id": dispatch.id,
        "account": account.key,
        "created_at": utc_iso(dispatch.created_at),
        "created_at_local": local_iso(dispatch.created_at, account.time_zone),
        "source": str(dispatch.source),
        "state": str(dispatch.state),
        "state_reason": dispatch.state_reason,
        "route": dispatch.route_key,
        "code": dispatch.code,
        "caller": caller_text(dispatch.caller_number, dispatch.caller_withheld),
        "callback": callback_text(dispatch.callback_number, dispatch.callback_supplied,
                                  dispatch.caller_withheld),
        "menu_choice": dispatch.menu_choice,
        "first_offer_at": utc_iso(dispatch.first_offer_at),
        "acknowledged_at": utc_iso(dispatch.acknowledged_at),
        "settled_at": utc_iso(dispatch.settled_at),
    }


def _version_json(row: ProfileVersion, *, with_document: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": row.version,
        "author": row.author,
        "reason": row.reason,
        "created_at": utc_iso(row.created_at),
        "sha256": row.canonical_sha256,
    }
    if with_document:
        data["document"] = row.document
    return data

