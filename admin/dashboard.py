"""Dashboard figures of one account over the last N days, and the page that shows them."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Blueprint, render_template
from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from admin.scope import AccountScope
from admin.svg import bar_chart, column_chart
from admin.timefmt import duration_text, zone
from admin.web import load_principal, now, principal, runtime
from dispatch.models import Account, Dispatch, DispatchState, Event, Offer, OfferKind, OfferState

PERIODS_DAYS = (7, 30)

bp = Blueprint("admin_dashboard", __name__, url_prefix="/admin/accounts")
bp.before_request(load_principal)


@dataclass(frozen=True)
class MemberFigures:
    name: str
    offers: int
    accepts: int


@dataclass(frozen=True)
class PeriodFigures:
    """Figures of one account's dispatches created in the ``days`` before ``until``."""

    days: int
    dispatches: int
    by_route: list[tuple[str, int]]
    acknowledged: int
    median_ack_seconds: float | None
    p90_ack_seconds: float | None
    rollovers_per_dispatch: float | None
    abandoned: int
    unacknowledged: int
    no_one_available: int
    members: list[MemberFigures]
    per_day: list[tuple[str, int]]

    @property
    def acknowledged_share(self) -> float | None:
        return self.acknowledged / self.dispatches if self.dispatches else None


def percentile(values: list[float], share: float) -> float | None:
    """Return the nearest-rank percentile of ``values`` (``share`` from 0 to 1)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def period_figures(session: Session, account: Account, until: datetime, days: int) -> PeriodFigures:
    """Compute the dashboard figures of ``account`` for the ``days`` before ``until``."""
    since = until - timedelta(days=days)
    rows = session.execute(
        select(Dispatch.route_key, Dispatch.state, Dispatch.created_at, Dispatch.acknowledged_at)
        .where(Dispatch.account_id == account.id, Dispatch.created_at >= since,
               Dispatch.created_at < until)
    ).all()
    states = Counter(row.state for row in rows)
    ack_seconds = [(row.acknowledged_at - row.created_at).total_seconds()
                   for row in rows if row.acknowledged_at is not None]
    return PeriodFigures(
        days=days,
        dispatches=len(rows),
        by_route=Counter(row.route_key or "(none)" for row in rows).most_common(),
        acknowledged=len(ack_seconds),
        median_ack_seconds=percentile(ack_seconds, 0.5),
        p90_ack_seconds=percentile(ack_seconds, 0.9),
        rollovers_per_dispatch=_rollovers_per_dispatch(session, account.id, since, until),
        abandoned=states[DispatchState.ABANDONED],
        unacknowledged=_ever_unacknowledged(session, account.id, since, until),
        no_one_available=states[DispatchState.NO_ONE_AVAILABLE],
        members=_member_figures(session, account.id, since, until),
        per_day=_per_day([row.created_at for row in rows], account.time_zone, until, days),
    )


def _rollovers_per_dispatch(
    session: Session, account_id: int, since: datetime, until: datetime
) -> float | None:
    """Return rollovers per dispatch, counting each offer to staff after a dispatch's first."""
    offers, dispatches = session.execute(
        select(func.count(Offer.id), func.count(distinct(Offer.dispatch_id)))
        .join(Dispatch, Dispatch.id == Offer.dispatch_id)
        .where(Dispatch.account_id == account_id, Dispatch.created_at >= since,
               Dispatch.created_at < until, Offer.kind != OfferKind.ESCALATION)
    ).one()
    if not dispatches:
        return None
    return round((offers - dispatches) / dispatches, 2)


def _ever_unacknowledged(
    session: Session, account_id: int, since: datetime, until: datetime
) -> int:
    """Count dispatches whose chain ran out, including those accepted late afterwards."""
    return session.execute(
        select(func.count(distinct(Event.dispatch_id))).where(
            Event.account_id == account_id, Event.kind == "dispatch_unacknowledged",
            Event.at >= since, Event.at < until,
        )
    ).scalar_one()


def _member_figures(
    session: Session, account_id: int, since: datetime, until: datetime
) -> list[MemberFigures]:
    accepted = func.sum(case((Offer.state == OfferState.ACCEPTED, 1), else_=0))
    rows = session.execute(
        select(Offer.member_name, func.count(Offer.id), accepted)
        .where(Offer.account_id == account_id, Offer.created_at >= since,
               Offer.created_at < until, Offer.kind != OfferKind.ESCALATION)
        .group_by(Offer.member_name)
        .order_by(func.count(Offer.id).desc(), Offer.member_name)
    ).all()
    return [MemberFigures(name, int(offers), int(accepts or 0)) for name, offers, accepts in rows]


def _per_day(
    created: list[datetime], time_zone: str, until: datetime, days: int
) -> list[tuple[str, int]]:
    tz = zone(time_zone)
    counts = Counter(at.astimezone(tz).date() for at in created)
    last = until.astimezone(tz).date()
    first = last - timedelta(days=days - 1)
    return [(_day_label(first + timedelta(days=n)), counts[first + timedelta(days=n)])
            for n in range(days)]


def _day_label(day: date) -> str:
    return day.strftime("%b %d")


@bp.get("/<key>/dashboard")
def dashboard(key: str) -> str:
    until = now()
    with runtime().db.read() as session:
        account = AccountScope(session, principal()).account(key)
        periods = [period_figures(session, account, until, days) for days in PERIODS_DAYS]
    charts = {
        period.days: {
            "routes": bar_chart("Dispatches by route", period.by_route),
            "members": bar_chart("Offers per member",
                                 [(m.name, m.offers) for m in period.members]),
            "accepts": bar_chart("Accepts per member",
                                 [(m.name, m.accepts) for m in period.members]),
            "days": column_chart("Dispatches per day", period.per_day),
        }
        for period in periods
    }
    return render_template("admin/dashboard.html", account=account, periods=periods,
                           charts=charts, duration=duration_text)
