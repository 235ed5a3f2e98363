"""The dispatch list: one query for pages, the JSON API and the CSV export.

Rows come newest first and are paged by keyset on ``(created_at, id)``, so a page costs the
same at row 100,000 as at row 1, given an index that starts with ``account_id, created_at``
(or ``created_at`` for service-wide lists).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, false, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from admin.filters import WITHHELD, Cursor, DispatchFilter, FilterError, day_bounds
from admin.scope import AccountScope, AnySelect
from admin.timefmt import local_iso, seconds_between, utc_iso
from dispatch.models import Account, Dispatch, Offer

CSV_BATCH_ROWS = 500

_AckOffer = aliased(Offer)

LIST_COLUMNS = (
    Dispatch.id,
    Account.key.label("account_key"),
    Account.time_zone,
    Dispatch.created_at,
    Dispatch.source,
    Dispatch.state,
    Dispatch.state_reason,
    Dispatch.route_key,
    Dispatch.code,
    Dispatch.caller_number,
    Dispatch.caller_withheld,
    Dispatch.callback_number,
    Dispatch.callback_supplied,
    Dispatch.menu_choice,
    Dispatch.first_offer_at,
    Dispatch.acknowledged_at,
    Dispatch.settled_at,
    _AckOffer.member_name.label("acknowledged_by"),
)


@dataclass(frozen=True)
class DispatchRow:
    """One dispatch as listed: what came in, its state and how fast it was placed."""

    id: int
    account_key: str
    time_zone: str
    created_at: datetime
    source: str
    state: str
    state_reason: str | None
    route: str | None
    code: str
    caller: str
    callback: str
    menu_choice: str | None
    first_offer_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    settled_at: datetime | None

    @property
    def seconds_to_first_offer(self) -> float | None:
        return seconds_between(self.created_at, self.first_offer_at)

    @property
    def seconds_to_acknowledge(self) -> float | None:
        return seconds_between(self.created_at, self.acknowledged_at)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account_key,
            "created_at": utc_iso(self.created_at),
            "created_at_local": local_iso(self.created_at, self.time_zone),
            "source": self.source,
            "state": self.state,
            "state_reason": self.state_reason,
            "route": self.route,
            "code": self.code,
            "caller": self.caller,
            "callback": self.callback,
            "menu_choice": self.menu_choice,
            "first_offer_at": utc_iso(self.first_offer_at),
            "seconds_to_first_offer": self.seconds_to_first_offer,
            "acknowledged_at": utc_iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "seconds_to_acknowledge": self.seconds_to_acknowledge,
            "settled_at": utc_iso(self.settled_at),
        }


@dataclass(frozen=True)
class Page:
    rows: list[DispatchRow]
    next_cursor: Cursor | None


def caller_text(number: str | None, withheld: bool) -> str:
    """Return a caller as shown to admins: ``withheld`` for a withheld ID, never a placeholder."""
    if withheld:
        return WITHHELD
    return number or ""


def callback_text(number: str | None, supplied: bool, withheld: bool) -> str:
    if number is None:
        return "none" if withheld else ""
    return f"{number} (caller-supplied)" if supplied else number


def list_statement(scope: AccountScope, flt: DispatchFilter) -> AnySelect:
    """Build the filtered, newest-first query of the dispatch list, without a limit."""
    statement: AnySelect = (
        select(*LIST_COLUMNS)
        .join(Account, Account.id == Dispatch.account_id)
        .outerjoin(_AckOffer, _AckOffer.id == Dispatch.acknowledged_offer_id)
    )
    statement = scope.restrict(statement, Dispatch.account_id)
    for condition in _conditions(scope, flt):
        statement = statement.where(condition)
    return statement.order_by(Dispatch.created_at.desc(), Dispatch.id.desc())


def list_page(session: Session, scope: AccountScope, flt: DispatchFilter) -> Page:
    """Return one page of the filtered list and the cursor of the next page, if any."""
    statement = list_statement(scope, flt).limit(flt.limit + 1)
    rows = [to_row(row) for row in session.execute(statement)]
    if len(rows) <= flt.limit:
        return Page(rows, None)
    shown = rows[: flt.limit]
    last = shown[-1]
    return Page(shown, Cursor(last.created_at, last.id))


def iter_rows(session: Session, scope: AccountScope, flt: DispatchFilter) -> Iterator[DispatchRow]:
    """Yield every filtered row in batches, never holding the whole result in memory."""
    statement = list_statement(scope, flt).execution_options(yield_per=CSV_BATCH_ROWS)
    for row in session.execute(statement):
        yield to_row(row)


def to_row(row: Row[Any]) -> DispatchRow:
    return DispatchRow(
        id=row.id,
        account_key=row.account_key,
        time_zone=row.time_zone,
        created_at=row.created_at,
        source=str(row.source),
        state=str(row.state),
        state_reason=row.state_reason,
        route=row.route_key,
        code=row.code,
        caller=caller_text(row.caller_number, row.caller_withheld),
        callback=callback_text(row.callback_number, row.callback_supplied, row.caller_withheld),
        menu_choice=row.menu_choice,
        first_offer_at=row.first_offer_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        settled_at=row.settled_at,
    )


def _conditions(scope: AccountScope, flt: DispatchFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    accounts = scope.accounts()
    if flt.account is not None:
        accounts = [a for a in accounts if a.key == flt.account]
        if not accounts:
            raise FilterError("account", f"account {flt.account!r} not found")
        conditions.append(Dispatch.account_id == accounts[0].id)

    if flt.date_from or flt.date_to:
        conditions.append(_date_condition(accounts, flt))
    if flt.status is not None:
        conditions.append(Dispatch.state == flt.status)
    if flt.route is not None:
        conditions.append(Dispatch.route_key == flt.route)
    if flt.member is not None:
        conditions.append(
            exists().where(Offer.dispatch_id == Dispatch.id, Offer.member_key == flt.member)
        )
    if flt.caller == WITHHELD:
        conditions.append(Dispatch.caller_withheld.is_(True))
    elif flt.caller is not None:
        conditions.append(
            or_(Dispatch.caller_number == flt.caller, Dispatch.callback_number == flt.caller)
        )
    if flt.cursor is not None:
        conditions.append(
            tuple_(Dispatch.created_at, Dispatch.id)
            < tuple_(flt.cursor.created_at, flt.cursor.dispatch_id)
        )
    return conditions


def _date_condition(accounts: list[Account], flt: DispatchFilter) -> ColumnElement[bool]:
    """Match the date range in each account's own time zone, one clause per time zone."""
    clauses: list[ColumnElement[bool]] = []
    by_zone = sorted(accounts, key=lambda account: account.time_zone)
    for time_zone, group in groupby(by_zone, key=lambda account: account.time_zone):
        start, end = day_bounds(flt.date_from, flt.date_to, time_zone)
        parts: list[ColumnElement[bool]] = [Dispatch.account_id.in_([a.id for a in group])]
        if start is not None:
            parts.append(Dispatch.created_at >= start)
        if end is not None:
            parts.append(Dispatch.created_at < end)
        clauses.append(and_(*parts))
    if not clauses:
        return false()
    return or_(*clauses)
