"""SQLAlchemy models for accounts, profile versions, dispatches, offers and the dispatch log.

Profile versions hold the runbook as written. The tables here also keep the run-time state that
must survive profile edits: pool pointers, opt-outs, number flags and channel pauses.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend; SQLite stores it without a zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


intpk = Annotated[int, mapped_column(Integer, primary_key=True, autoincrement=True)]
utc = Annotated[datetime, mapped_column(UTCDateTime())]
utc_created = Annotated[datetime, mapped_column(UTCDateTime(), default=_utcnow)]
account_fk = Annotated[int, mapped_column(ForeignKey("accounts.id"), index=True)]

naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=naming_convention)


def str_enum(enum_cls: type[enum.Enum]) -> Enum:
    """Store an enum by its string value in a VARCHAR, so reordering members changes nothing."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class DispatchState(enum.StrEnum):
    INTAKE = "intake"
    OFFERING = "offering"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    NO_ONE_AVAILABLE = "no_one_available"
    MESSAGE_TAKEN = "message_taken"
    FORWARDED = "forwarded"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATES


OPEN_STATES = frozenset(
    {DispatchState.INTAKE, DispatchState.OFFERING, DispatchState.UNACKNOWLEDGED}
)


class OfferKind(enum.StrEnum):
    POOL = "pool"
    BACKUP = "backup"
    ESCALATION = "escalation"


class OfferState(enum.StrEnum):
    LIVE = "live"
    ACCEPTED = "accepted"
    PASSED = "passed"
    ENDED = "ended"  # every channel ended without an answer
    TIMED_OUT = "timed_out"
    STOOD_DOWN = "stood_down"


class ChannelState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    UNCERTAIN = "uncertain"
    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    SENT = "sent"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    PASSED = "passed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    NO_KEYPRESS = "no_keypress"
    MACHINE = "machine"
    FAILED = "failed"
    OPTED_OUT = "opted_out"
    TIMED_OUT = "timed_out"
    STOOD_DOWN = "stood_down"
    PAUSED = "paused"  # not sent because the account's channel is paused

    @property
    def is_live(self) -> bool:
        return self in LIVE_CHANNEL_STATES


LIVE_CHANNEL_STATES = frozenset(
    {
        ChannelState.PENDING,
        ChannelState.SENDING,
        ChannelState.UNCERTAIN,
        ChannelState.QUEUED,
        ChannelState.RINGING,
        ChannelState.IN_PROGRESS,
        ChannelState.SENT,
        ChannelState.DELIVERED,
    }
)


class Channel(enum.StrEnum):
    VOICE = "voice"
    SMS = "sms"


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    twilio_account_sid: Mapped[str | None] = mapped_column(String(34), index=True)
    auth_token_env: Mapped[str | None] = mapped_column(String(100))
    current_version_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[utc_created]


class AccountNumber(Base):
    """An answering number of an account, kept in step with the current profile version."""

    __tablename__ = "account_numbers"

    id: Mapped[intpk]
    number: Mapped[str] = mapped_column(String(20), unique=True)
    account_id: Mapped[account_fk]


class ProfileVersion(Base):
    __tablename__ = "profile_versions"
    __table_args__ = (UniqueConstraint("account_id", "version"),)

    id: Mapped[intpk]
    account_id: Mapped[account_fk]
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    canonical_sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[utc_created]


class Member(Base):
    """A person on an account's roster; rows outlive profile versions and are never deleted."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[intpk]
    account_id: Mapped[account_fk]
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    voice_number: Mapped[str | None] = mapped_column(String(20), index=True)
    sms_number: Mapped[str | None] = mapped_column(String(20), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    on_roster: Mapped[bool] = mapped_column(Boolean, default=True)


class PoolState(Base):
    """The round-robin pointer of one pool: the last-offered member and its position hint."""

    __tablename__ = "pool_states"
    __table_args__ = (UniqueConstraint("account_id", "pool_key"),)

    id: Mapped[intpk]
    account_id: Mapped[account_fk]
    pool_key: Mapped[str] = mapped_column(String(64))
    last_member_key: Mapped[str | None] = mapped_column(String(64))
    last_position: Mapped[int | None] = mapped_column(Integer)
    offers_made: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[utc_created]


class Dispatch(Base):
    __tablename__ = "dispatches"
    __table_args__ = (
        UniqueConstraint("account_id", "source_sid"),
        Index("ix_dispatches_account_created", "account_id", "created_at"),
        Index("ix_dispatches_caller", "account_id", "caller_number"),
        Index("ix_dispatches_created_id", "created_at", "id"),
        Index("ix_dispatches_account_code", "account_id", "code"),
    )

    id: Mapped[intpk]
    account_id: Mapped[account_fk]
    profile_version_id: Mapped[int] = mapped_column(ForeignKey("profile_versions.id"))
    route_key: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[Channel] = mapped_column(str_enum(Channel))
    source_sid: Mapped[str] = mapped_column(String(64))
    answering_number: Mapped[str] = mapped_column(String(20))
    state: Mapped[DispatchState] = mapped_column(str_enum(DispatchState), index=True)
    state_reason: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str] = mapped_column(String(8))
    caller_number: Mapped[str | None] = mapped_column(String(20))
    caller_raw: Mapped[str | None] = mapped_column(String(64))
    caller_withheld: Mapped[bool] = mapped_column(Boolean, default=False)
    callback_number: Mapped[str | None] = mapped_column(String(20))
    callback_supplied: Mapped[bool] = mapped_column(Boolean, default=False)
    menu_choice: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    current_round: Mapped[int] = mapped_column(Integer, default=1)
    escalation_line: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[utc_created]
    intake_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_offer_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    chain_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_offer_id: Mapped[int | None] = mapped_column(Integer)
    acknowledged_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    offers: Mapped[list[Offer]] = relationship(
        back_populates="dispatch", order_by="Offer.seq", lazy="selectin"
    )

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class Offer(Base):
    """One try to place a dispatch with one person, over one or more channels."""

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("dispatch_id", "seq"),
        Index("ix_offers_live_deadline", "state", "deadline"),
    )

    id: Mapped[intpk]
    dispatch_id: Mapped[int] = mapped_column(ForeignKey("dispatches.id"), index=True)
    account_id: Mapped[account_fk]
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[OfferKind] = mapped_column(str_enum(OfferKind))
    round: Mapped[int] = mapped_column(Integer)
    pool_key: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    member_key: Mapped[str | None] = mapped_column(String(64))
    member_name: Mapped[str] = mapped_column(String(200))
    pointer_before: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[OfferState] = mapped_column(str_enum(OfferState))
    close_reason: Mapped[str | None] = mapped_column(String(64))
    window_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[utc_created]
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    help_replies: Mapped[int] = mapped_column(Integer, default=0)

    dispatch: Mapped[Dispatch] = relationship(back_populates="offers")
    channels: Mapped[list[OfferChannel]] = relationship(
        back_populates="offer", order_by="OfferChannel.id", lazy="selectin"
    )

    @property
    def is_live(self) -> bool:
        return self.state == OfferState.LIVE


class OfferChannel(Base):
    """One channel (a call or a text) of an offer, with its provider SID and status."""

    __tablename__ = "offer_channels"
    __table_args__ = (
        UniqueConstraint("offer_id", "channel"),
        Index("ix_offer_channels_state_lease", "state", "lease_until"),
    )

    id: Mapped[intpk]
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    account_id: Mapped[account_fk]
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    to_number: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str | None] = mapped_column(String(34))
    body: Mapped[str | None] = mapped_column(Text)
    state: Mapped[ChannelState] = mapped_column(str_enum(ChannelState))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    accepted_by_twilio_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sequence: Mapped[int] = mapped_column(Integer, default=-1)
    answered_by: Mapped[str | None] = mapped_column(String(32))
    prompts: Mapped[int] = mapped_column(Integer, default=0)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[utc_created]
    updated_at: Mapped[utc_created]

    offer: Mapped[Offer] = relationship(back_populates="channels")

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_CHANNEL_STATES


class OutboxMessage(Base):
    """A text or call-control request to send after the transaction that created it commits."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_lease", "state", "lease_until"),)

    id: Mapped[intpk]
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    dispatch_id: Mapped[int | None] = mapped_column(ForeignKey("dispatches.id"), index=True)
    offer_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # sms | call | call_update
    purpose: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(20))
    from_number: Mapped[str | None] = mapped_column(String(34))
    body: Mapped[str | None] = mapped_column(Text)
    target_sid: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[OutboxState] = mapped_column(str_enum(OutboxState))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[utc_created]
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Receipt(Base):
    """One webhook delivery as received, duplicates included; never unique."""

    __tablename__ = "receipts"

    id: Mapped[intpk]
    received_at: Mapped[utc_created]
    route: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    provider_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature_ok: Mapped[bool] = mapped_column(Boolean)
    signature_url: Mapped[str | None] = mapped_column(Text)
    claim_key: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(64), default="received")
    dispatch_id: Mapped[int | None] = mapped_column(Integer, index=True)


class Claim(Base):
    """The first receipt to insert a key takes its effect; later copies are duplicates."""

    __tablename__ = "claims"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    receipt_id: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc_created]


class Event(Base):
    """One append-only row of the dispatch log, chained by hash per account."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        Index("ix_events_dispatch", "dispatch_id", "id"),
    )

    id: Mapped[intpk]
    chain: Mapped[int] = mapped_column(Integer)  # the account id, or 0 for service-wide events
    seq: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    at: Mapped[utc]
    kind: Mapped[str] = mapped_column(String(64), index=True)
    dispatch_id: Mapped[int | None] = mapped_column(Integer)
    offer_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChainHead(Base):
    """The last event of each chain, locked while an event is appended."""

    __tablename__ = "chain_heads"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class OptOut(Base):
    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("number", "sender"),)

    id: Mapped[intpk]
    number: Mapped[str] = mapped_column(String(20), index=True)
    sender: Mapped[str] = mapped_column(String(34))  # answering number or Messaging Service SID
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[utc_created]
    updated_at: Mapped[utc_created]


class NumberFlag(Base):
    """A member's number that failed on a channel; skipped until an admin clears it."""

    __tablename__ = "number_flags"
    __table_args__ = (UniqueConstraint("account_id", "number", "channel"),)

    id: Mapped[intpk]
    account_id: Mapped[account_fk]
    number: Mapped[str] = mapped_column(String(20))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    error_code: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[utc_created]


class ChannelPause(Base):
    """A channel paused for an account after an account or configuration error from Twilio."""

    __tablename__ = "channel_pauses"
    __table_args__ = (UniqueConstraint("account_id", "channel"),)

    id: Mapped[intpk]
    account_id: Mapped[account_fk]
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    error_code: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[utc_created]


class Heartbeat(Base):
    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    at: Mapped[utc]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[utc_created]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[intpk]
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[utc_created]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
