"""Admin users: creation, deactivation and password login."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin import audit
from admin.passwords import MIN_PASSWORD_LENGTH, hash_password, needs_rehash, verify_password
from admin.scope import ROLES, Principal
from dispatch.models import User

logger = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class UserError(ValueError):
    """Invalid input for a new user: a malformed email, an unknown role or a taken email."""


def normalize_email(email: str) -> str:
    text = email.strip().lower()
    if len(text) > 200 or not EMAIL_PATTERN.fullmatch(text):
        raise UserError(f"{email.strip()[:80]!r} is not a valid email address")
    return text


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: str,
    account_id: int | None,
    now: datetime,
    actor: str,
) -> User:
    """Store a new user with a hashed password and record who created it.

    Raise UserError for a bad email, role or taken email, and PasswordPolicyError for a weak
    password.
    """
    address = normalize_email(email)
    if role not in ROLES:
        raise UserError(f"role {role!r} is invalid: use one of {', '.join(ROLES)}")
    taken = session.execute(
        select(func.count()).where(User.email == address)
    ).scalar_one()
    if taken:
        raise UserError(f"a user with email {address} already exists")

    user = User(
        email=address, password_hash=hash_password(password), account_id=account_id, role=role,
        active=True, created_at=now,
    )
    session.add(user)
    session.flush()
    audit.record_admin(
        session, audit.USER_CREATED, at=now, account_id=account_id, actor=actor,
        user_id=user.id, email=address, role=role,
    )
    return user


def deactivate_user(session: Session, user: User, *, now: datetime, actor: str) -> None:
    if not user.active:
        return
    user.active = False
    audit.record_admin(
        session, audit.USER_DEACTIVATED, at=now, account_id=user.account_id, actor=actor,
        user_id=user.id, email=user.email,
    )


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Return the active user with this email and password, or None; rehash outdated hashes."""
    address = email.strip().lower()
    user = session.execute(select(User).where(User.email == address)).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.active else None
    if not verify_password(stored, password):
        return None
    assert user is not None
    if needs_rehash(user.password_hash) and len(password) >= MIN_PASSWORD_LENGTH:
        user.password_hash = hash_password(password)
    return user


def principal_for_user(user: User) -> Principal:
    return Principal(
        actor=f"user:{user.email}", role=user.role, account_id=user.account_id, user_id=user.id
    )


def users_for(session: Session, principal: Principal) -> list[User]:
    statement = select(User).order_by(User.email)
    if not principal.is_service:
        statement = statement.where(User.account_id == principal.account_id)
    return list(session.execute(statement).scalars())
