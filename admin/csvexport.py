"""CSV export of the filtered dispatch list, streamed row by row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from admin.filters import DispatchFilter
from admin.queries import DispatchRow, iter_rows
from admin.scope import AccountScope, Principal
from dispatch.db import Database

HEADER = (
    "id", "account", "created_at", "created_at_local", "source", "state", "state_reason",
    "route", "code", "caller", "callback", "menu_choice", "first_offer_at",
    "seconds_to_first_offer", "acknowledged_at", "acknowledged_by", "seconds_to_acknowledge",
    "settled_at",
)

# Spreadsheets run a cell that starts with one of these as a formula. Tab and carriage return
# are included because some spreadsheets strip them before looking at the first character.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

FLUSH_EVERY_ROWS = 200


def escape_cell(value: object) -> str:
    """Return a cell as text, with a leading ``'`` when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def row_values(row: DispatchRow) -> list[str]:
    data = row.as_json()
    return [escape_cell(data[column]) for column in HEADER]


def stream_csv(database: Database, principal: Principal, flt: DispatchFilter) -> Iterator[str]:
    """Yield the CSV text of every filtered row, reading rows in batches inside one session."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    yield _drain(buffer)

    with database.read() as session:
        scope = AccountScope(session, principal)
        for count, row in enumerate(iter_rows(session, scope, flt), start=1):
            writer.writerow(row_values(row))
            if count % FLUSH_EVERY_ROWS == 0:
                yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
