"""Who is asking, and the account-scoped lookups that every admin page and API call uses.

A principal is a logged-in user or an API token. One bound to an account sees only that
account's rows. One without an account (a service admin or a service-wide token) sees every
account. A row of another account is reported exactly like a missing row: 404, never 403, so
ids of other tenants cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from dispatch.models import Account, Dispatch

AnySelect: TypeAlias = Select[*tuple[Any, ...]]

ROLES: tuple[str, ...] = ("viewer", "manager", "admin")

# Ids beyond a 32-bit integer cannot exist, and PostgreSQL rejects them with an error.
MAX_ID = 2**31 - 1

@dataclass(frozen=True)
class Principal:
    """A logged-in user or an API token, with its role and account (None: service-wide)."""

    actor: str
    role: str
    account_id: int | None
    user_id: int | None = None
    token_id: int | None = None

    @property
    def is_service(self) -> bool:
        return self.account_id is None

    def can(self, role: str) -> bool:
        """Return whether this principal has ``role`` or a higher one for its accounts."""
        if self.is_service:
            return True
        return ROLES.index(self.role) >= ROLES.index(role)


class AccountScope:
    """Queries restricted to the accounts one principal may see."""

    def __init__(self, session: Session, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    def restrict(self, statement: AnySelect, account_column: Any) -> AnySelect:
        """Add the principal's account condition to a query on ``account_column``."""
        if self.principal.is_service:
            return statement
        return statement.where(account_column == self.principal.account_id)

    def accounts(self) -> list[Account]:
        statement = self.restrict(select(Account), Account.id).order_by(Account.key)
        return list(self.session.execute(statement).scalars())

    def account(self, key: str) -> Account:
        """Return the visible account with ``key``; raise NotFound otherwise."""
        statement = self.restrict(select(Account).where(Account.key == key), Account.id)
        account = self.session.execute(statement).scalar_one_or_none()
        if account is None:
            raise NotFound(f"account {key!r} not found")
        return account

    def account_by_id(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None or not self.sees(account.id):
            raise NotFound(f"account id {account_id} not found")
        return account

    def dispatch(self, dispatch_id: int) -> Dispatch:
        """Return the visible dispatch with ``dispatch_id``; raise NotFound otherwise."""
        if not 0 < dispatch_id <= MAX_ID:
            raise NotFound(f"dispatch {dispatch_id} not found")
        statement = self.restrict(
            select(Dispatch).where(Dispatch.id == dispatch_id), Dispatch.account_id
        )
        dispatch = self.session.execute(statement).scalar_one_or_none()
        if dispatch is None:
            raise NotFound(f"dispatch {dispatch_id} not found")
        return dispatch

    def sees(self, account_id: int | None) -> bool:
        return self.principal.is_service or account_id == self.principal.account_id
