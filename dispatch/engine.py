"""The dispatch state machine: offers, rollover, exhaustion and the final escalation.

Every function runs inside the caller's write transaction and touches only the database. Work
that needs the network (a call, a text, a rollover timer) is recorded in ``Effects`` and carried
out by the caller after the commit, so a rolled-back transaction never pages anybody.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dispatch import events, messages
from dispatch.eligibility import (
    NOT_SENT_CONFIG,
    AccountChannelState,
    members_busy_elsewhere,
    offered_this_round,
    skip_reason,
)
from dispatch.models import (
    Account,
    Channel,
    ChannelPause,
    ChannelState,
    Dispatch,
    DispatchState,
    Member,
    Offer,
    OfferChannel,
    OfferKind,
    OfferState,
    OutboxMessage,
    OutboxState,
    PoolState,
)
from dispatch.phones import mask
from dispatch.profile import Profile, Route
from dispatch.rotation import pick_next
from dispatch.schedule import on_call_status
from dispatch.store import profile_cache

logger = logging.getLogger(__name__)

CODE_UNIQUE_DAYS = 2
CODE_TRIES = 20


@dataclass
class Effects:
    """Work to hand to the queue once the transaction has committed."""

    send_channels: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)
    rollovers: list[tuple[int, datetime]] = field(default_factory=list)
    # Rollover jobs, as (offer id, deadline), that no longer need to run. Deleting them only
    # saves work, because a rollover job checks the offer's state before it acts.
    cancelled_rollovers: list[tuple[int, datetime]] = field(default_factory=list)

    def extend(self, other: Effects) -> None:
        self.send_channels.extend(other.send_channels)
        self.outbox.extend(other.outbox)
        self.rollovers.extend(other.rollovers)
        self.cancelled_rollovers.extend(other.cancelled_rollovers)


@dataclass
class EngineConfig:
    operator_desk: str | None = None
    late_accept_seconds: int = 7200
    followup_seconds: int = 7200
    intake_seconds: int = 45
    max_dispatches_per_caller_per_hour: int = 5
    max_auto_replies_per_sender_per_hour: int = 5


class DispatchEngine:
    """Applies state changes to dispatches of one account inside one transaction."""

    def __init__(self, session: Session, now: datetime, config: EngineConfig | None = None) -> None:
        self.session = session
        self.now = now
        self.config = config or EngineConfig()
        self.effects = Effects()

    # -- lookups --------------------------------------------------------------------------

    def profile_for(self, account: Account) -> Profile:
        if account.current_version_id is None:
            raise LookupError(f"account {account.key} has no profile version")
        return profile_cache.get(self.session, account.current_version_id)

    def account(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None:
            raise LookupError(f"account id {account_id} not found")
        return account

    def route_for(self, dispatch: Dispatch, profile: Profile) -> Route | None:
        for route in profile.routes:
            if route.key == dispatch.route_key:
                return route
        return None

    def escalation_line(self, profile: Profile) -> str | None:
        return profile.final_escalation_line(self.config.operator_desk or None)

    def lock_dispatch(self, dispatch_id: int) -> Dispatch | None:
        """Lock a dispatch row for the rest of the transaction.

        Every change to a dispatch, its offers or their channels happens under this lock, taken
        before any of those rows is written, so two transactions cannot deadlock on them. The
        pool pointer and the event chain head are locked after it, in that order.
        """
        dispatch = self.session.get(Dispatch, dispatch_id)
        if dispatch is None:
            return None
        self.session.refresh(dispatch, with_for_update=True)
        return dispatch

    # -- creation -------------------------------------------------------------------------

    def new_code(self, account_id: int) -> str:
        """Return a random four-digit code no other recent dispatch of the account uses.

        Staff quote codes within the late-accept window, so a code is kept unique for
        ``CODE_UNIQUE_DAYS``; older dispatches may share it.
        """
        since = self.now - timedelta(days=CODE_UNIQUE_DAYS)
        for _ in range(CODE_TRIES):
            code = f"{secrets.randbelow(9000) + 1000}"
            taken = self.session.execute(
                select(Dispatch.id)
                .where(
                    Dispatch.account_id == account_id,
                    Dispatch.code == code,
                    Dispatch.created_at >= since,
                )
                .limit(1)
            ).first()
            if taken is None:
                return code
        logger.warning(
            "account %d: no free dispatch code in %d tries; reusing one", account_id, CODE_TRIES
        )
        return code

    def create_dispatch(
        self,
        *,
        account: Account,
        source: Channel,
        source_sid: str,
        answering_number: str,
        caller_number: str | None,
        caller_raw: str | None,
        caller_withheld: bool,
        route_key: str | None,
        reason: str | None = None,
        menu_choice: str | None = None,
        state: DispatchState = DispatchState.INTAKE,
        intake_seconds: int = 45,
    ) -> Dispatch:
        assert account.current_version_id is not None
        dispatch = Dispatch(
            account_id=account.id,
            profile_version_id=account.current_version_id,
            route_key=route_key,
            source=source,
            source_sid=source_sid,
            answering_number=answering_number,
            state=state,
            code=self.new_code(account.id),
            caller_number=caller_number,
            caller_raw=caller_raw,
            caller_withheld=caller_withheld,
            callback_number=caller_number,
            menu_choice=menu_choice,
            reason=reason,
            created_at=self.now,
            intake_deadline=self.now + timedelta(seconds=intake_seconds),
        )
        self.session.add(dispatch)
        self.session.flush()
        events.record(
            self.session,
            "dispatch_created",
            at=self.now,
            account_id=account.id,
            dispatch_id=dispatch.id,
            source=str(source),
            sid=source_sid,
            answering_number=answering_number,
            caller="withheld" if caller_withheld else caller_number,
            caller_raw=caller_raw,
            route=route_key,
            menu_choice=menu_choice,
            code=dispatch.code,
        )
        logger.info(
            "dispatch %d: created from %s %s caller %s route %s",
            dispatch.id,
            source,
            source_sid,
            mask(caller_number),
            route_key,
        )
        return dispatch

    # -- offering ------------------------------------------------------------------------

    def begin_offering(self, dispatch: Dispatch) -> None:
        """Move a dispatch out of intake and make its first offer."""
        if dispatch.state != DispatchState.INTAKE:
            logger.info(
                "dispatch %d: already %s, first offer not made again", dispatch.id, dispatch.state
            )
            return
        profile = self.profile_for(self.account(dispatch.account_id))
        route = self.route_for(dispatch, profile)
        if route is None:
            self.no_one_available(dispatch, "no_route")
            return
        dispatch.state = DispatchState.OFFERING
        dispatch.first_offer_at = self.now
        dispatch.chain_deadline = self.now + timedelta(minutes=route.max_chain_minutes)
        events.record(
            self.session,
            "offering_started",
            at=self.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            route=route.key,
            chain_deadline=dispatch.chain_deadline.isoformat(),
        )
        self.advance(dispatch, first=True)

    def advance(self, dispatch: Dispatch, *, first: bool = False) -> None:
        """Make the next offer of the chain: pool rounds, then backups, then escalation."""
        if dispatch.state != DispatchState.OFFERING:
            return
        account = self.account(dispatch.account_id)
        profile = self.profile_for(account)
        route = self.route_for(dispatch, profile)
        if route is None or route.pool is None:
            self.no_one_available(dispatch, "no_route")
            return
        if dispatch.chain_deadline and self.now >= dispatch.chain_deadline:
            events.record(
                self.session,
                "chain_cap_reached",
                at=self.now,
                account_id=account.id,
                dispatch_id=dispatch.id,
                cap_minutes=route.max_chain_minutes,
            )
            self.exhaust(dispatch, profile)
            return

        senders = sms_senders(profile)
        run_state = AccountChannelState.load(self.session, account.id, senders)
        if self._offer_from_pool(dispatch, account, profile, route, run_state):
            return
        if self._offer_backup(dispatch, account, profile, route, run_state):
            return
        if first and not dispatch.offers:
            reason = self._nobody_reason(dispatch, account, profile, route, run_state)
            self.no_one_available(dispatch, reason)
            return
        self.exhaust(dispatch, profile)

    def _members_by_key(self, account_id: int) -> dict[str, Member]:
        rows = self.session.execute(select(Member).where(Member.account_id == account_id))
        return {member.key: member for member in rows.scalars()}

    def _pool_state(self, account_id: int, pool_key: str) -> PoolState:
        """Lock the pool's pointer row, creating it first if two offers race to do so."""
        statement = (
            select(PoolState)
            .where(PoolState.account_id == account_id, PoolState.pool_key == pool_key)
            .with_for_update()
        )
        state = self.session.execute(statement).scalar_one_or_none()
        if state is not None:
            return state
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        self.session.execute(
            insert(PoolState)
            .values(account_id=account_id, pool_key=pool_key, offers_made=0, updated_at=self.now)
            .on_conflict_do_nothing()
        )
        return self.session.execute(statement).scalar_one()

    def _offer_from_pool(
        self,
        dispatch: Dispatch,
        account: Account,
        profile: Profile,
        route: Route,
        run_state: AccountChannelState,
    ) -> bool:
        assert route.pool is not None
        order = list(profile.pool(route.pool).members)
        members = self._members_by_key(account.id)
        wanted = [Channel(c) for c in route.channels]
        # Lock the pointer first: who is busy elsewhere must be read after every earlier
        # offer of this pool has committed.
        pool_state = self._pool_state(account.id, route.pool)
        busy_ids = members_busy_elsewhere(self.session, account.id, dispatch.id)

        while True:
            offered = offered_this_round(dispatch)
            pick = None
            for respect_busy in (True, False):
                reasons = self._skip_reasons(
                    order,
                    members,
                    profile,
                    run_state,
                    wanted,
                    offered,
                    busy_ids if respect_busy else set(),
                )
                pick = pick_next(
                    order, pool_state.last_member_key, pool_state.last_position, reasons
                )
                if pick is not None:
                    break
            if pick is not None:
                break
            if offered and dispatch.current_round < route.rounds:
                dispatch.current_round += 1
                events.record(
                    self.session,
                    "round_started",
                    at=self.now,
                    account_id=account.id,
                    dispatch_id=dispatch.id,
                    round=dispatch.current_round,
                )
                continue
            self._log_skips(dispatch, [(k, r) for k, r in reasons.items() if r])
            return False

        self._log_skips(dispatch, list(pick.skipped))
        member = members[pick.member_key]
        pointer_before = pool_state.last_member_key
        pool_state.last_member_key = member.key
        pool_state.last_position = pick.position
        pool_state.offers_made += 1
        pool_state.updated_at = self.now
        reach = run_state.reach(member, wanted)
        self._create_offer(
            dispatch,
            profile,
            route,
            kind=OfferKind.POOL,
            member=member,
            channels=list(reach.channels),
            pointer_before=pointer_before,
        )
        return True

    def _offer_backup(
        self,
        dispatch: Dispatch,
        account: Account,
        profile: Profile,
        route: Route,
        run_state: AccountChannelState,
    ) -> bool:
        members = self._members_by_key(account.id)
        tried: set[str] = {
            o.member_key
            for o in dispatch.offers
            if o.kind == OfferKind.BACKUP
            and o.close_reason != NOT_SENT_CONFIG
            and o.member_key is not None
        }
        wanted = [Channel(c) for c in route.channels]
        for key in route.backups:
            member = members.get(key)
            reach = run_state.reach(member, wanted) if member else None
            # Backups are people of last resort before the desk: shifts do not apply to them.
            reason = skip_reason(
                member=member,
                profile=profile,
                at=self.now,
                reach=reach,
                offered=tried,
                busy=False,
                check_shift=False,
            )
            if reason is not None:
                self._log_skips(dispatch, [(key, "backup " + reason)])
                continue
            assert member is not None and reach is not None
            self._create_offer(
                dispatch,
                profile,
                route,
                kind=OfferKind.BACKUP,
                member=member,
                channels=list(reach.channels),
                pointer_before=None,
            )
            return True
        return False

    def _nobody_reason(
        self,
        dispatch: Dispatch,
        account: Account,
        profile: Profile,
        route: Route,
        run_state: AccountChannelState,
    ) -> str:
        assert route.pool is not None
        order = list(profile.pool(route.pool).members)
        if not order:
            return "empty_pool"
        members = self._members_by_key(account.id)
        inactive = [k for k in order if k not in members or not members[k].active]
        if len(inactive) == len(order):
            return "all_inactive: " + ", ".join(inactive)
        wanted = [Channel(c) for c in route.channels]
        reasons = self._skip_reasons(order, members, profile, run_state, wanted, set(), set())
        active = [k for k in order if k not in inactive]
        if all(not on_call_status(profile, k, self.now)[0] for k in active):
            return "outside_schedule"
        details = ", ".join(f"{k} ({r})" for k, r in reasons.items() if r)
        return "nobody_eligible: " + details

    def _skip_reasons(
        self,
        order: list[str],
        members: dict[str, Member],
        profile: Profile,
        run_state: AccountChannelState,
        wanted: list[Channel],
        offered: set[str],
        busy_ids: set[int],
    ) -> dict[str, str | None]:
        """Map each pool member to why they cannot take the next offer, or None."""
        reasons: dict[str, str | None] = {}
        for key in order:
            member = members.get(key)
            reasons[key] = skip_reason(
                member=member,
                profile=profile,
                at=self.now,
                reach=run_state.reach(member, wanted) if member else None,
                offered=offered,
                busy=member is not None and member.id in busy_ids,
            )
        return reasons

    def _log_skips(self, dispatch: Dispatch, skipped: list[tuple[str, str]]) -> None:
        for key, reason in skipped:
            events.record(
                self.session,
                "member_skipped",
                at=self.now,
                account_id=dispatch.account_id,
                dispatch_id=dispatch.id,
                member=key,
                reason=reason,
            )
            logger.info("dispatch %d: skipped %s (%s)", dispatch.id, key, reason)

    def _create_offer(
        self,
        dispatch: Dispatch,
        profile: Profile,
        route: Route,
        *,
        kind: OfferKind,
        member: Member | None,
        channels: list[Channel],
        pointer_before: str | None,
        escalation_number: str | None = None,
    ) -> Offer:
        windows = {
            Channel.VOICE: route.ack_window_voice_seconds,
            Channel.SMS: route.ack_window_sms_seconds,
        }
        window = max(windows[c] for c in channels)
        offer = Offer(
            dispatch_id=dispatch.id,
            account_id=dispatch.account_id,
            seq=len(dispatch.offers) + 1,
            kind=kind,
            round=dispatch.current_round,
            pool_key=route.pool if kind == OfferKind.POOL else None,
            member_id=member.id if member else None,
            member_key=member.key if member else None,
            member_name=member.name if member else "operator desk",
            pointer_before=pointer_before,
            state=OfferState.LIVE,
            window_seconds=window,
            created_at=self.now,
            deadline=self.now + timedelta(seconds=window),
        )
        self.session.add(offer)
        dispatch.offers.append(offer)
        self.session.flush()
        for channel in channels:
            number = escalation_number
            if number is None and member is not None:
                number = member.voice_number if channel == Channel.VOICE else member.sms_number
            assert number is not None
            row = OfferChannel(
                offer_id=offer.id,
                account_id=dispatch.account_id,
                channel=channel,
                to_number=number,
                state=ChannelState.PENDING,
                created_at=self.now,
                updated_at=self.now,
                body=self._sms_body(dispatch, profile) if channel == Channel.SMS else None,
                from_number=sms_from(profile)
                if channel == Channel.SMS
                else dispatch.answering_number,
            )
            # Appending cascades the row into the session. Adding it first would let the
            # collection's lazy load autoflush it, and the append would then list it twice.
            offer.channels.append(row)
        self.session.flush()
        for row in offer.channels:
            self.effects.send_channels.append(row.id)
        self.effects.rollovers.append((offer.id, offer.deadline))
        events.record(
            self.session,
            "offer_made",
            at=self.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            offer_id=offer.id,
            actor=offer.member_name,
            seq=offer.seq,
            kind=str(kind),
            round=offer.round,
            member=offer.member_key,
            channels=[{"channel": str(c.channel), "to": c.to_number} for c in offer.channels],
            pointer_before=pointer_before,
            deadline=offer.deadline.isoformat(),
            window_seconds=window,
            # Offers follow the current profile, so a roster edit mid-chain takes effect; the
            # event records the version each offer was made under.
            profile_version_id=self.account(dispatch.account_id).current_version_id,
        )
        logger.info(
            "dispatch %d offer %d: %s to %s by %s, deadline %s",
            dispatch.id,
            offer.id,
            kind,
            offer.member_key or "desk",
            "+".join(str(c.channel) for c in offer.channels),
            offer.deadline.isoformat(),
        )
        return offer

    def _sms_body(self, dispatch: Dispatch, profile: Profile) -> str:
        return messages.fit_two_segments(self._offer_text(dispatch, profile))

    def _offer_text(self, dispatch: Dispatch, profile: Profile) -> str:
        return messages.sms_offer(
            account_name=profile.account.name,
            code=dispatch.code,
            phi=profile.account.phi,
            reason=dispatch.reason,
            callback=messages.callback_phrase(
                dispatch.callback_number, dispatch.callback_supplied, dispatch.caller_withheld
            ),
            answering_number=dispatch.answering_number,
        )

    # -- ending the chain -----------------------------------------------------------------

    def exhaust(self, dispatch: Dispatch, profile: Profile) -> None:
        """Stop paging staff; page the final escalation line once; tell a texting caller."""
        dispatch.state = DispatchState.UNACKNOWLEDGED
        dispatch.state_reason = "chain_exhausted"
        line = self.escalation_line(profile)
        dispatch.escalation_line = line
        events.record(
            self.session,
            "dispatch_unacknowledged",
            at=self.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            offers=len(dispatch.offers),
            escalation_line=mask(line) if line else None,
        )
        logger.info(
            "dispatch %d: chain exhausted after %d offers", dispatch.id, len(dispatch.offers)
        )
        if line is None:
            self._record_nobody_alerted(dispatch)
        else:
            route = self.route_for(dispatch, profile)
            assert route is not None
            channels = self._escalation_channels(dispatch.account_id, route)
            self._create_offer(
                dispatch,
                profile,
                route,
                kind=OfferKind.ESCALATION,
                member=None,
                channels=channels,
                pointer_before=None,
                escalation_number=line,
            )
        if dispatch.source == Channel.SMS and dispatch.caller_number:
            self.queue_sms(
                dispatch,
                to=dispatch.caller_number,
                purpose="caller_unacknowledged",
                body=messages.caller_unacknowledged(profile.account.name),
                from_number=dispatch.answering_number,
            )

    def _escalation_channels(self, account_id: int, route: Route) -> list[Channel]:
        """Return the route's channels that are not paused, or a call when every one of them is.

        The desk must hear about the dispatch even when, say, texting is paused for the
        account after a configuration error.
        """
        paused = {
            row.channel
            for row in self.session.execute(
                select(ChannelPause).where(
                    ChannelPause.account_id == account_id, ChannelPause.active
                )
            ).scalars()
        }
        usable = [Channel(c) for c in route.channels if Channel(c) not in paused]
        if usable:
            return usable
        return [c for c in (Channel.VOICE, Channel.SMS) if c not in paused][:1] or [Channel.VOICE]

    def no_one_available(self, dispatch: Dispatch, reason: str) -> None:
        """Settle a dispatch nobody can take, and alert the final escalation line."""
        account = self.account(dispatch.account_id)
        profile = self.profile_for(account)
        dispatch.state = DispatchState.NO_ONE_AVAILABLE
        dispatch.state_reason = reason
        dispatch.settled_at = self.now
        line = self.escalation_line(profile)
        dispatch.escalation_line = line
        events.record(
            self.session,
            "no_one_available",
            at=self.now,
            account_id=account.id,
            dispatch_id=dispatch.id,
            reason=reason,
        )
        logger.info("dispatch %d: no one available (%s)", dispatch.id, reason)
        if line is None:
            self._record_nobody_alerted(dispatch)
        else:
            self.queue_sms(
                dispatch,
                to=line,
                purpose="desk_alert",
                from_number=sms_from(profile),
                body=messages.desk_alert(
                    profile.account.name, dispatch.code, f"nobody available ({reason})"
                ),
            )
        if dispatch.source == Channel.SMS and dispatch.caller_number:
            self.queue_sms(
                dispatch,
                to=dispatch.caller_number,
                purpose="caller_no_one",
                body=messages.caller_no_one(profile.account.name),
                from_number=dispatch.answering_number,
            )

    def _record_nobody_alerted(self, dispatch: Dispatch) -> None:
        events.record(
            self.session,
            "no_escalation_line",
            at=self.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            detail="no final escalation line is configured, so nobody could be alerted",
        )
        logger.warning(
            "dispatch %d: no final escalation line configured; nobody alerted", dispatch.id
        )

    # -- outbox ----------------------------------------------------------------------------

    def queue_sms(
        self,
        dispatch: Dispatch | None,
        *,
        to: str,
        body: str,
        purpose: str,
        from_number: str | None,
        dedup_key: str | None = None,
        account_id: int | None = None,
        offer_id: int | None = None,
    ) -> OutboxMessage | None:
        """Queue a text for after the commit; a repeated ``dedup_key`` queues nothing."""
        return self._queue_outbox(
            dedup_key or f"{purpose}:{dispatch.id if dispatch else 'none'}:{to}",
            account_id=dispatch.account_id if dispatch else account_id,
            dispatch_id=dispatch.id if dispatch else None,
            offer_id=offer_id,
            kind="sms",
            purpose=purpose,
            to_number=to,
            from_number=from_number,
            body=messages.fit_two_segments(body),
        )

    def queue_call_alert(
        self, dispatch: Dispatch, *, to: str, text: str, purpose: str
    ) -> OutboxMessage | None:
        """Queue an alert call that reads ``text`` to the desk, once per dispatch and purpose."""
        return self._queue_outbox(
            f"{purpose}:{dispatch.id}:{to}",
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            kind="call",
            purpose=purpose,
            to_number=to,
            from_number=dispatch.answering_number,
            body=text,
        )

    def queue_call_update(
        self,
        channel: OfferChannel,
        *,
        purpose: str,
        status: str | None = None,
        twiml: str | None = None,
    ) -> None:
        """Queue a change to a live call: cancel it (``status``) or switch its ``twiml``."""
        self._queue_outbox(
            f"{purpose}:{channel.id}",
            account_id=channel.account_id,
            dispatch_id=channel.offer.dispatch_id,
            offer_id=channel.offer_id,
            kind="call_update",
            purpose=purpose,
            target_sid=channel.provider_sid,
            to_number=channel.to_number,
            payload={"status": status, "twiml": twiml, "channel_id": channel.id},
        )

    def _queue_outbox(self, dedup_key: str, **fields: Any) -> OutboxMessage | None:
        existing = self.session.execute(
            select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key)
        ).scalar_one_or_none()
        if existing is not None:
            return None
        fields.setdefault("payload", {})
        row = OutboxMessage(
            dedup_key=dedup_key, state=OutboxState.PENDING, created_at=self.now, **fields
        )
        self.session.add(row)
        self.session.flush()
        self.effects.outbox.append(row.id)
        return row


def sms_from(profile: Profile) -> str:
    """Return the Messaging Service SID or number that account texts go out from."""
    twilio = profile.account.twilio
    if twilio and twilio.messaging_service_sid:
        return twilio.messaging_service_sid
    if twilio and twilio.sms_from:
        return twilio.sms_from
    return profile.account.answering_numbers[0]


def sms_senders(profile: Profile) -> list[str]:
    """Return every sender that an opt-out of this account's texts may be recorded against."""
    senders = list(profile.account.answering_numbers)
    twilio = profile.account.twilio
    if twilio and twilio.messaging_service_sid:
        senders.append(twilio.messaging_service_sid)
    if twilio and twilio.sms_from:
        senders.append(twilio.sms_from)
    return senders
