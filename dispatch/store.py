"""Persistence of accounts and profile versions, and account-scoped lookups.

Every query that touches tenant data goes through a function here that takes the account id,
so webhooks, jobs and admin pages share one notion of "this account's rows".
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import events
from dispatch.models import (
    Account,
    AccountNumber,
    ChainHead,
    Member,
    ProfileVersion,
)
from dispatch.profile import (
    LoadedProfile,
    Profile,
    canonical_json,
    diff_profiles,
    dump_profile_yaml,
    load_profile,
)

logger = logging.getLogger(__name__)


@dataclass
class ImportResult:
    account_id: int
    version: int
    created: bool
    diff: str
    warnings: list[str] = field(default_factory=list)


def import_profile(
    session: Session, text: str, *, author: str, reason: str, now: datetime
) -> ImportResult:
    """Validate a profile document and store it as the account's next version.

    Raises ``ProfileError`` listing every problem, and stores nothing in that case. The same
    document twice creates no new version.
    """
    loaded = load_profile(text)
    return store_profile(session, loaded, author=author, reason=reason, now=now)


def store_profile(
    session: Session, loaded: LoadedProfile, *, author: str, reason: str, now: datetime
) -> ImportResult:
    profile = loaded.profile
    digest = hashlib.sha256(canonical_json(profile).encode()).hexdigest()
    account = session.execute(
        select(Account).where(Account.key == profile.account.key).with_for_update()
    ).scalar_one_or_none()
    if account is None:
        account = Account(
            key=profile.account.key,
            name=profile.account.name,
            time_zone=profile.account.time_zone,
            created_at=now,
        )
        session.add(account)
        session.flush()
        session.add(ChainHead(chain=account.id, seq=0, hash=events.GENESIS_HASH))
        session.flush()

    current = current_version(session, account.id)
    if current is not None and current.canonical_sha256 == digest:
        return ImportResult(account.id, current.version, False, "", list(loaded.warnings))

    document = dump_profile_yaml(profile)
    diff = diff_profiles(current.document if current else "", document)
    version = ProfileVersion(
        account_id=account.id,
        version=(current.version + 1) if current else 1,
        document=document,
        canonical_sha256=digest,
        author=author,
        reason=reason,
        created_at=now,
    )
    session.add(version)
    session.flush()

    _apply_account_fields(account, profile, version.id)
    _sync_numbers(session, account.id, profile)
    _sync_members(session, account.id, profile)
    events.record(
        session,
        "profile_imported",
        at=now,
        account_id=account.id,
        actor=author,
        version=version.version,
        reason=reason,
        warnings=list(loaded.warnings),
    )
    logger.info("account %s: profile version %d stored by %s", account.key, version.version, author)
    return ImportResult(account.id, version.version, True, diff, list(loaded.warnings))


def _apply_account_fields(account: Account, profile: Profile, version_id: int) -> None:
    account.name = profile.account.name
    account.time_zone = profile.account.time_zone
    twilio = profile.account.twilio
    account.twilio_account_sid = twilio.account_sid if twilio else None
    account.auth_token_env = twilio.auth_token_env if twilio else None
    account.current_version_id = version_id


def _sync_numbers(session: Session, account_id: int, profile: Profile) -> None:
    wanted = set(profile.account.answering_numbers)
    rows = (
        session.execute(select(AccountNumber).where(AccountNumber.number.in_(wanted)))
        .scalars()
        .all()
    )
    taken = {row.number: row for row in rows}
    for number, row in taken.items():
        if row.account_id != account_id:
            raise ValueError(
                f"answering number {number} already belongs to another account; "
                "remove it there first"
            )
    for row in session.execute(
        select(AccountNumber).where(AccountNumber.account_id == account_id)
    ).scalars():
        if row.number not in wanted:
            session.delete(row)
    for number in wanted - set(taken):
        session.add(AccountNumber(number=number, account_id=account_id))


def _sync_members(session: Session, account_id: int, profile: Profile) -> None:
    existing = {
        m.key: m
        for m in session.execute(select(Member).where(Member.account_id == account_id)).scalars()
    }
    for spec in profile.members:
        row = existing.pop(spec.key, None)
        if row is None:
            row = Member(account_id=account_id, key=spec.key)
            session.add(row)
        row.name = spec.name
        row.voice_number = spec.phones.voice
        row.sms_number = spec.phones.sms
        row.active = spec.active
        row.on_roster = True
    # Members are never deleted: past dispatches and offers point at them.
    for row in existing.values():
        row.on_roster = False
        row.active = False


def current_version(session: Session, account_id: int) -> ProfileVersion | None:
    return session.execute(
        select(ProfileVersion)
        .where(ProfileVersion.account_id == account_id)
        .order_by(ProfileVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def version_by_number(session: Session, account_id: int, version: int) -> ProfileVersion | None:
    return session.execute(
        select(ProfileVersion).where(
            ProfileVersion.account_id == account_id, ProfileVersion.version == version
        )
    ).scalar_one_or_none()


def account_by_key(session: Session, key: str) -> Account | None:
    return session.execute(select(Account).where(Account.key == key)).scalar_one_or_none()


def account_for_number(session: Session, number: str | None) -> Account | None:
    """Return the account that owns an answering number."""
    if not number:
        return None
    return session.execute(
        select(Account)
        .join(AccountNumber, AccountNumber.account_id == Account.id)
        .where(AccountNumber.number == number)
    ).scalar_one_or_none()


class ProfileCache:
    """Parsed profiles by version id, per database engine.

    Versions never change, so entries never go stale; keying by engine keeps two databases
    (a test's fresh one, a benchmark's) from sharing ids.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._profiles: weakref.WeakKeyDictionary[Any, dict[int, Profile]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, session: Session, version_id: int) -> Profile:
        engine = session.get_bind()
        with self._lock:
            cached = self._profiles.get(engine, {}).get(version_id)
        if cached is not None:
            return cached
        row = session.get(ProfileVersion, version_id)
        if row is None:
            raise LookupError(f"profile version id {version_id} not found")
        profile = load_profile(row.document).profile
        with self._lock:
            entries = self._profiles.setdefault(engine, {})
            if len(entries) >= self._max:
                entries.pop(next(iter(entries)))
            entries[version_id] = profile
        return profile


profile_cache = ProfileCache()
