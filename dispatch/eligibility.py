"""Eligibility checks: the reasons a member can or cannot take the next offer of a dispatch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.models import (
    Channel,
    ChannelPause,
    Dispatch,
    Member,
    NumberFlag,
    Offer,
    OfferKind,
    OfferState,
    OptOut,
)
from dispatch.profile import Profile
from dispatch.schedule import on_call_status

# An offer closed for this reason does not count as "offered in this round".
NOT_SENT_CONFIG = "not_sent_config"


@dataclass(frozen=True)
class Reachability:
    """The channels on which an offer to one member can go out now."""

    channels: tuple[Channel, ...]
    reason: str | None  # why none can, when ``channels`` is empty


@dataclass
class AccountChannelState:
    """Run-time state outside the profile: flags, opt-outs and pauses of one account."""

    flagged: set[tuple[str, Channel]]
    opted_out: set[str]
    paused: set[Channel]

    @classmethod
    def load(cls, session: Session, account_id: int, sms_senders: list[str]) -> AccountChannelState:
        flagged = {
            (row.number, row.channel)
            for row in session.execute(
                select(NumberFlag).where(NumberFlag.account_id == account_id, NumberFlag.active)
            ).scalars()
        }
        opted_out = {
            row.number
            for row in session.execute(
                select(OptOut).where(OptOut.sender.in_(sms_senders), OptOut.active)
            ).scalars()
        }
        paused = {
            row.channel
            for row in session.execute(
                select(ChannelPause).where(
                    ChannelPause.account_id == account_id, ChannelPause.active
                )
            ).scalars()
        }
        return cls(flagged, opted_out, paused)

    def reach(self, member: Member, wanted: list[Channel]) -> Reachability:
        usable: list[Channel] = []
        reasons: list[str] = []
        for channel in wanted:
            number = member.voice_number if channel == Channel.VOICE else member.sms_number
            if not number:
                reasons.append(f"no {channel} number")
            elif channel in self.paused:
                reasons.append(f"{channel} paused for the account")
            elif (number, channel) in self.flagged:
                reasons.append(f"{channel} number flagged")
            elif channel == Channel.SMS and number in self.opted_out:
                reasons.append("opted out of SMS")
            else:
                usable.append(channel)
        if usable:
            return Reachability(tuple(usable), None)
        return Reachability((), "unreachable: " + ", ".join(reasons))


def members_busy_elsewhere(session: Session, account_id: int, dispatch_id: int) -> set[int]:
    """Ids of members holding a live offer of another dispatch of this account."""
    rows = session.execute(
        select(Offer.member_id).where(
            Offer.account_id == account_id,
            Offer.state == OfferState.LIVE,
            Offer.dispatch_id != dispatch_id,
            Offer.member_id.is_not(None),
        )
    ).scalars()
    return {member_id for member_id in rows if member_id is not None}


def offered_this_round(dispatch: Dispatch) -> set[str]:
    return {
        offer.member_key
        for offer in dispatch.offers
        if offer.kind == OfferKind.POOL
        and offer.round == dispatch.current_round
        and offer.close_reason != NOT_SENT_CONFIG
        and offer.member_key is not None
    }


def skip_reason(
    *,
    member: Member | None,
    profile: Profile,
    at: datetime,
    reach: Reachability | None,
    offered: set[str],
    busy: bool,
    check_shift: bool = True,
) -> str | None:
    """Return why a member is skipped for this offer, or None when they are eligible."""
    if member is None or not member.on_roster:
        return "not on the roster"
    if not member.active:
        return "inactive"
    if member.key in offered:
        return "offered this round"
    if check_shift:
        on_call, why = on_call_status(profile, member.key, at)
        if not on_call:
            return why or "outside_schedule"
    if reach is None or not reach.channels:
        return reach.reason if reach else "unreachable"
    if busy:
        return "holding a live offer of another dispatch"
    return None
