"""Admin pages of the call-and-dispatch log: the filtered list, its CSV export and a timeline."""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from admin import audit
from admin.csvexport import stream_csv
from admin.filters import DispatchFilter, FilterError, parse_filters
from admin.queries import list_page, list_statement
from admin.scope import AccountScope, Principal
from admin.timefmt import duration_text, local_text, utc_text
from admin.timeline import build_timeline
from admin.web import client_address, load_principal, now, principal, requires, runtime
from dispatch.engine import DispatchEngine
from dispatch.models import Dispatch, DispatchState
from dispatch.outcomes import cancel
from dispatch.store import profile_cache
from jobs.enqueue import apply_effects

logger = logging.getLogger(__name__)

bp = Blueprint("admin_dispatches", __name__, url_prefix="/admin")
bp.before_request(load_principal)


def filters_or_400(args: dict[str, str]) -> DispatchFilter:
    """Parse list filters; a malformed one is a 400 that names the field."""
    try:
        return parse_filters(args)
    except FilterError as exc:
        logger.info("rejected dispatch filter %s from %s: %s", exc.field, client_address(),
                    exc.message)
        raise BadRequest(f"invalid filter {exc.field!r}: {exc.message}") from None


def check_filters(scope: AccountScope, flt: DispatchFilter) -> None:
    """Raise BadRequest when a filter names something this principal cannot see."""
    try:
        list_statement(scope, flt)
    except FilterError as exc:
        raise BadRequest(f"invalid filter {exc.field!r}: {exc.message}") from None


@bp.get("/")
def index() -> Response:
    return redirect(url_for("admin_dispatches.dispatch_list"))


@bp.get("/dispatches")
def dispatch_list() -> str:
    flt = filters_or_400(request.args.to_dict())
    with runtime().db.read() as session:
        scope = AccountScope(session, principal())
        check_filters(scope, flt)
        page = list_page(session, scope, flt)
        accounts = scope.accounts()
    return render_template(
        "admin/dispatches.html", page=page, flt=flt, accounts=accounts,
        states=[state.value for state in DispatchState], duration=duration_text,
        local=local_text, utc=utc_text,
    )


@bp.get("/dispatches.csv")
def dispatch_csv() -> Response:
    flt = filters_or_400(request.args.to_dict())
    return csv_response(principal(), flt)


def csv_response(who: Principal, flt: DispatchFilter) -> Response:
    """Record the export, then stream the filtered rows as CSV."""
    database = runtime().db
    with database.read() as session:
        scope = AccountScope(session, who)
        check_filters(scope, flt)
        account_id = scope.account(flt.account).id if flt.account else who.account_id
    with database.write("admin export") as session:
        audit.record_admin(
            session, audit.EXPORTED, at=now(), account_id=account_id, actor=who.actor,
            format="csv", filters=flt.query_args(),
        )
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_csv(database, who, flt),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="dispatches-{stamp}.csv"'},
    )


@bp.get("/dispatches/<int:dispatch_id>")
def dispatch_detail(dispatch_id: int) -> str:
    with runtime().db.read() as session:
        scope = AccountScope(session, principal())
        dispatch = scope.dispatch(dispatch_id)
        account = scope.account_by_id(dispatch.account_id)
        timeline = build_timeline(session, dispatch, account)
        phi = _is_phi(session, dispatch)
    if phi:
        _record_phi_view(dispatch)
    return render_template(
        "admin/dispatch.html", t=timeline, phi=phi, duration=duration_text, utc=utc_text,
    )


def _is_phi(session: Session, dispatch: Dispatch) -> bool:
    try:
        return profile_cache.get(session, dispatch.profile_version_id).account.phi
    except LookupError:
        return False


def _record_phi_view(dispatch: Dispatch) -> None:
    with runtime().db.write("admin phi view") as session:
        audit.record_admin(
            session, audit.PHI_VIEWED, at=now(), account_id=dispatch.account_id,
            actor=principal().actor, dispatch_id=dispatch.id,
        )


@bp.post("/dispatches/<int:dispatch_id>/cancel")
@requires("manager")
def dispatch_cancel(dispatch_id: int) -> Response:
    """Cancel an open dispatch; its live offers are stood down and nobody more is paged."""
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        raise BadRequest("a reason is required to cancel a dispatch")
    rt = runtime()
    with rt.db.read() as session:
        AccountScope(session, principal()).dispatch(dispatch_id)
    with rt.db.write("admin cancel") as session:
        engine = DispatchEngine(session, now(), rt.engine_config())
        dispatch = engine.lock_dispatch(dispatch_id)
        assert dispatch is not None
        cancelled = cancel(engine, dispatch, actor=principal().actor, reason=reason[:500])
        effects = engine.effects
    apply_effects(rt, effects)
    if not cancelled:
        raise BadRequest(f"dispatch {dispatch_id} is already settled and cannot be cancelled")
    return redirect(url_for("admin_dispatches.dispatch_detail", dispatch_id=dispatch_id))
