"""Inbound texts: opt-out words, staff replies, caller follow-ups and new dispatches.

The order matters: a whole-message keyword first, then anyone on a roster (their text is a reply
and never creates a dispatch), then a caller with a recent dispatch, then everyone else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select

from dispatch import events, messages
from dispatch.delivery import clear_opt_out, record_opt_out
from dispatch.engine import DispatchEngine, sms_from, sms_senders
from dispatch.models import (
    Account,
    Channel,
    ChannelState,
    Dispatch,
    DispatchState,
    Member,
    Offer,
    OfferChannel,
    OfferKind,
    OfferState,
    OutboxMessage,
)
from dispatch.outcomes import accept, end_channel, pass_offer
from dispatch.phones import mask, normalize_sender
from dispatch.profile import Profile
from dispatch.replies import Reply, ReplyKind, classify_reply
from dispatch.routing import match_route

logger = logging.getLogger(__name__)

AUTO_REPLY_PURPOSES = ("caller_received", "member_reply", "help_reply")


@dataclass(frozen=True)
class InboundSms:
    sid: str
    from_raw: str
    to: str
    body: str
    opt_out_type: str | None = None
    num_media: int = 0
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class SmsOutcome:
    outcome: str
    dispatch_id: int | None = None


def handle_inbound_sms(engine: DispatchEngine, account: Account, sms: InboundSms) -> SmsOutcome:
    profile = engine.profile_for(account)
    sender = normalize_sender(sms.from_raw)
    reply = classify_reply(sms.body, sms.opt_out_type, sms.num_media)
    if sender is None:
        events.record(
            engine.session,
            "unparseable_sender",
            at=engine.now,
            account_id=account.id,
            sid=sms.sid,
            sender_raw=sms.from_raw,
        )
        logger.warning("sms %s: sender could not be parsed; ignored", sms.sid)
        return SmsOutcome("unparseable_sender")

    keyword = _handle_keyword(engine, account, profile, sms, sender, reply)
    if keyword is not None:
        return keyword
    members = _members_for_sender(engine, account, sms, sender)
    if members:
        return _handle_member_reply(engine, account, profile, sms, sender, reply, members)
    followup = _handle_caller_followup(engine, account, profile, sms, sender)
    if followup is not None:
        return followup
    return _new_dispatch(engine, account, profile, sms, sender)


def _handle_keyword(
    engine: DispatchEngine,
    account: Account,
    profile: Profile,
    sms: InboundSms,
    sender: str,
    reply: Reply,
) -> SmsOutcome | None:
    sms_sender = sms.messaging_service_sid or sms.to
    if reply.kind == ReplyKind.OPT_OUT:
        record_opt_out(
            engine,
            sender,
            sms_sender,
            account_id=account.id,
            dispatch_id=None,
            source=f"inbound {sms.sid}",
        )
        # Twilio confirms an opt-out itself; a text from us now would be blocked anyway.
        for row in _live_sms_channels(engine, account.id, sender):
            end_channel(engine, row, ChannelState.OPTED_OUT, detail="member texted an opt-out word")
        return SmsOutcome("opt_out")
    if reply.kind == ReplyKind.OPT_IN:
        clear_opt_out(engine, sender, [sms_sender, *sms_senders(profile)], account_id=account.id)
        return SmsOutcome("opt_in")
    if reply.kind == ReplyKind.HELP:
        _auto_reply(
            engine,
            account,
            profile,
            sender,
            sms,
            "help_reply",
            f"{profile.account.name} dispatch line. {messages.SMS_HELP}",
        )
        return SmsOutcome("help")
    return None


def _live_sms_channels(engine: DispatchEngine, account_id: int, number: str) -> list[OfferChannel]:
    return list(
        engine.session.execute(
            select(OfferChannel)
            .join(Offer, Offer.id == OfferChannel.offer_id)
            .where(
                OfferChannel.account_id == account_id,
                OfferChannel.channel == Channel.SMS,
                OfferChannel.to_number == number,
                OfferChannel.state.in_(
                    [
                        ChannelState.PENDING,
                        ChannelState.SENDING,
                        ChannelState.UNCERTAIN,
                        ChannelState.SENT,
                        ChannelState.DELIVERED,
                    ]
                ),
                Offer.state == OfferState.LIVE,
            )
        ).scalars()
    )


def _candidate_account_ids(engine: DispatchEngine, account: Account, sms: InboundSms) -> list[int]:
    """Accounts a reply may belong to: the one owning ``To``, and those sharing its Messaging
    Service, because a reply can arrive on any number of the service's sender pool."""
    ids = [account.id]
    if sms.messaging_service_sid:
        for other in engine.session.execute(select(Account).where(Account.id != account.id)):
            other_account = other[0]
            if other_account.current_version_id is None:
                continue
            other_profile = engine.profile_for(other_account)
            twilio = other_profile.account.twilio
            if twilio and twilio.messaging_service_sid == sms.messaging_service_sid:
                ids.append(other_account.id)
    return ids


def _members_for_sender(
    engine: DispatchEngine, account: Account, sms: InboundSms, sender: str
) -> list[Member]:
    account_ids = _candidate_account_ids(engine, account, sms)
    return list(
        engine.session.execute(
            select(Member).where(
                Member.account_id.in_(account_ids),
                or_(Member.sms_number == sender, Member.voice_number == sender),
            )
        ).scalars()
    )


def _handle_member_reply(
    engine: DispatchEngine,
    account: Account,
    profile: Profile,
    sms: InboundSms,
    sender: str,
    reply: Reply,
    members: list[Member],
) -> SmsOutcome:
    member_ids = [m.id for m in members]
    names = ", ".join(m.key for m in members)
    # The dispatch log keeps every staff reply as received, normalised and classified, so an
    # admin can see why a text did or did not count as an accept.
    events.record(
        engine.session,
        "reply_received",
        at=engine.now,
        account_id=account.id,
        sid=sms.sid,
        member=names,
        body=sms.body,
        normalized=reply.normalized,
        classification=str(reply.kind),
        code=reply.code,
        to=sms.to,
        messaging_service_sid=sms.messaging_service_sid,
    )
    if reply.kind == ReplyKind.CODE_ONLY and reply.code:
        _member_reply(engine, account, profile, sender, sms, messages.sms_code_only(reply.code))
        return SmsOutcome("code_only")
    if reply.kind not in (ReplyKind.ACCEPT, ReplyKind.PASS_):
        return _unrecognised_member_text(engine, account, profile, sms, sender, member_ids, reply)

    if reply.code:
        dispatch = _member_dispatch_by_code(engine, member_ids, reply.code)
        if dispatch is None:
            _member_reply(
                engine,
                account,
                profile,
                sender,
                sms,
                f"No dispatch {reply.code} was offered to you. {messages.SMS_HELP}",
            )
            _log_unsolicited(engine, account, sms, names, f"unknown code {reply.code}")
            return SmsOutcome("unknown_code")
        return _apply_reply(engine, account, profile, sms, sender, reply, dispatch, member_ids)

    open_dispatches = _open_dispatches_for(engine, member_ids)
    if len(open_dispatches) == 1:
        return _apply_reply(
            engine, account, profile, sms, sender, reply, open_dispatches[0], member_ids
        )
    if len(open_dispatches) > 1:
        codes = [d.code for d in open_dispatches]
        _member_reply(engine, account, profile, sender, sms, messages.sms_which_code(codes))
        events.record(
            engine.session,
            "reply_needs_code",
            at=engine.now,
            account_id=account.id,
            sid=sms.sid,
            member=names,
            codes=codes,
            body=sms.body,
        )
        return SmsOutcome("ask_code")

    recent = _recent_dispatch_for(engine, member_ids)
    if recent is not None and reply.kind == ReplyKind.ACCEPT:
        return _apply_reply(engine, account, profile, sms, sender, reply, recent, member_ids)
    _member_reply(engine, account, profile, sender, sms, messages.SMS_NO_OPEN)
    _log_unsolicited(engine, account, sms, names, "no open dispatch")
    return SmsOutcome("unsolicited")


def _log_unsolicited(
    engine: DispatchEngine, account: Account, sms: InboundSms, member: str, why: str
) -> None:
    events.record(
        engine.session,
        "unsolicited_reply",
        at=engine.now,
        account_id=account.id,
        sid=sms.sid,
        member=member,
        reason=why,
        body=sms.body,
    )
    logger.info("sms %s: unsolicited_reply from %s (%s)", sms.sid, member, why)


def _offers_of(engine: DispatchEngine, dispatch: Dispatch, member_ids: list[int]) -> list[Offer]:
    return [o for o in dispatch.offers if o.member_id in member_ids]


def _open_dispatches_for(engine: DispatchEngine, member_ids: list[int]) -> list[Dispatch]:
    since = engine.now - timedelta(seconds=engine.config.late_accept_seconds)
    rows = engine.session.execute(
        select(Dispatch)
        .join(Offer, Offer.dispatch_id == Dispatch.id)
        .where(
            Offer.member_id.in_(member_ids),
            Dispatch.state.in_([DispatchState.OFFERING, DispatchState.UNACKNOWLEDGED]),
            Dispatch.created_at >= since,
        )
        .distinct()
        .order_by(Dispatch.id)
    ).scalars()
    return list(rows)


def _recent_dispatch_for(engine: DispatchEngine, member_ids: list[int]) -> Dispatch | None:
    """Return the member's own most recent acceptance, so a repeated "yes" gets the same reply."""
    since = engine.now - timedelta(seconds=engine.config.late_accept_seconds)
    return engine.session.execute(
        select(Dispatch)
        .where(
            Dispatch.acknowledged_member_id.in_(member_ids),
            Dispatch.created_at >= since,
        )
        .order_by(Dispatch.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _member_dispatch_by_code(
    engine: DispatchEngine, member_ids: list[int], code: str
) -> Dispatch | None:
    since = engine.now - timedelta(days=30)
    return engine.session.execute(
        select(Dispatch)
        .join(Offer, Offer.dispatch_id == Dispatch.id)
        .where(
            Offer.member_id.in_(member_ids),
            Dispatch.code == code,
            Dispatch.created_at >= since,
        )
        .order_by(Dispatch.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _apply_reply(
    engine: DispatchEngine,
    account: Account,
    profile: Profile,
    sms: InboundSms,
    sender: str,
    reply: Reply,
    dispatch: Dispatch,
    member_ids: list[int],
) -> SmsOutcome:
    locked = engine.lock_dispatch(dispatch.id)
    assert locked is not None
    offers = _offers_of(engine, locked, member_ids)
    offer = offers[-1]
    channel = next((c for c in offer.channels if c.channel == Channel.SMS), None)
    dispatch_profile = engine.profile_for(engine.account(locked.account_id))
    if reply.kind == ReplyKind.PASS_:
        if pass_offer(engine, locked, offer, channel, via="sms"):
            return SmsOutcome("passed", locked.id)
        _member_reply(
            engine,
            account,
            profile,
            sender,
            sms,
            f"Dispatch {locked.code} needs nothing more from you.",
        )
        return SmsOutcome("late_pass", locked.id)

    result = accept(engine, locked, offer, channel, via="sms")
    if result.outcome == "accepted":
        return SmsOutcome("accepted", locked.id)
    by_you = result.outcome == "already_yours"
    text = messages.already_handled(
        result.by_name or "another technician",
        result.at or engine.now,
        dispatch_profile.zone,
        locked.code,
        by_you=by_you,
    )
    if result.outcome == "expired":
        text = f"Dispatch {locked.code} can no longer be accepted. No action needed."
    _member_reply(engine, account, profile, sender, sms, text)
    events.record(
        engine.session,
        "late_reply",
        at=engine.now,
        account_id=locked.account_id,
        dispatch_id=locked.id,
        offer_id=offer.id,
        actor=offer.member_name,
        closed_dispatch=locked.id,
        outcome=result.outcome,
        sid=sms.sid,
        body=sms.body,
    )
    logger.info(
        "dispatch %d offer %d: late_reply closed_dispatch=%d (%s)",
        locked.id,
        offer.id,
        locked.id,
        result.outcome,
    )
    return SmsOutcome(f"late_reply:{result.outcome}", locked.id)


def _unrecognised_member_text(
    engine: DispatchEngine,
    account: Account,
    profile: Profile,
    sms: InboundSms,
    sender: str,
    member_ids: list[int],
    reply: Reply,
) -> SmsOutcome:
    """Send one help reply per live offer; the offer stays open and its window is not reset."""
    live = engine.session.execute(
        select(Offer)
        .where(Offer.member_id.in_(member_ids), Offer.state == OfferState.LIVE)
        .order_by(Offer.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    events.record(
        engine.session,
        "unrecognised_reply",
        at=engine.now,
        account_id=account.id,
        dispatch_id=live.dispatch_id if live else None,
        offer_id=live.id if live else None,
        sid=sms.sid,
        body=sms.body,
        normalized=reply.normalized,
        classification=str(reply.kind),
    )
    if live is None or live.help_replies > 0:
        return SmsOutcome("unrecognised")
    live.help_replies += 1
    _member_reply(engine, account, profile, sender, sms, messages.SMS_HELP)
    return SmsOutcome("help_sent", live.dispatch_id)


def _member_reply(
    engine: DispatchEngine,
    account: Account,
    profile: Profile,
    to: str,
    sms: InboundSms,
    body: str,
) -> None:
    engine.queue_sms(
        None,
        to=to,
        body=body,
        purpose="member_reply",
        account_id=account.id,
        from_number=sms.messaging_service_sid or sms.to,
        dedup_key=f"reply:{sms.sid}",
    )


def _auto_reply(
    engine: DispatchEngine,
    account: Account,
    profile: Profile,
    to: str,
    sms: InboundSms,
    purpose: str,
    body: str,
    dispatch: Dispatch | None = None,
) -> bool:
    """Send an automatic reply unless this sender already got the hourly maximum."""
    since = engine.now - timedelta(hours=1)
    sent = engine.session.execute(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.to_number == to,
            OutboxMessage.created_at >= since,
            OutboxMessage.purpose.in_(AUTO_REPLY_PURPOSES),
        )
    ).scalar_one()
    if sent >= engine.config.max_auto_replies_per_sender_per_hour:
        events.record(
            engine.session,
            "auto_reply_capped",
            at=engine.now,
            account_id=account.id,
            dispatch_id=dispatch.id if dispatch else None,
            to=to,
            purpose=purpose,
        )
        return False
    engine.queue_sms(
        dispatch,
        to=to,
        body=body,
        purpose=purpose,
        account_id=account.id,
        from_number=sms.messaging_service_sid or sms.to,
        dedup_key=f"{purpose}:{sms.sid}",
    )
    return True


def recent_dispatch_of_caller(
    engine: DispatchEngine, account_id: int, caller: str
) -> Dispatch | None:
    """Return the caller's open dispatch, or one settled within the follow-up window.

    Abandoned calls do not count: the caller never asked for anything.
    """
    since = engine.now - timedelta(seconds=engine.config.followup_seconds)
    return engine.session.execute(
        select(Dispatch)
        .where(
            Dispatch.account_id == account_id,
            Dispatch.caller_number == caller,
            or_(
                Dispatch.state.in_(
                    [DispatchState.INTAKE, DispatchState.OFFERING, DispatchState.UNACKNOWLEDGED]
                ),
                Dispatch.settled_at >= since,
            ),
            Dispatch.state.not_in([DispatchState.ABANDONED]),
        )
        .order_by(Dispatch.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _handle_caller_followup(
    engine: DispatchEngine, account: Account, profile: Profile, sms: InboundSms, sender: str
) -> SmsOutcome | None:
    dispatch = recent_dispatch_of_caller(engine, account.id, sender)
    if dispatch is None:
        return None
    events.record(
        engine.session,
        "caller_followup",
        at=engine.now,
        account_id=account.id,
        dispatch_id=dispatch.id,
        sid=sms.sid,
        body=sms.body,
        via="sms",
    )
    logger.info("dispatch %d: caller_followup by sms %s", dispatch.id, sms.sid)
    forward_followup(engine, dispatch, profile, sms.body, key=sms.sid)
    return SmsOutcome("caller_followup", dispatch.id)


def forward_followup(
    engine: DispatchEngine, dispatch: Dispatch, profile: Profile, body: str | None, *, key: str
) -> None:
    """Pass a caller's follow-up to whoever holds the dispatch, or is being offered it now."""
    holders: list[str] = []
    for offer in dispatch.offers:
        holds = offer.id == dispatch.acknowledged_offer_id or offer.state == OfferState.LIVE
        if not holds or offer.kind == OfferKind.ESCALATION:
            continue
        member = engine.session.get(Member, offer.member_id) if offer.member_id else None
        if member is not None and member.sms_number:
            holders.append(member.sms_number)
    if profile.account.phi or not body:
        text = (
            f"{profile.account.name}: the caller of dispatch {dispatch.code} got in touch "
            f"again. Call {dispatch.answering_number} to be connected."
        )
    else:
        text = f"{profile.account.name}: dispatch {dispatch.code} caller adds: {body}"
    for number in holders:
        engine.queue_sms(
            dispatch,
            to=number,
            body=text[: messages.SMS_MAX_CHARS],
            purpose="followup_forward",
            from_number=sms_from(profile),
            dedup_key=f"followup:{key}:{number}",
        )


def caller_over_limit(engine: DispatchEngine, account: Account, caller: str | None) -> bool:
    if caller is None:
        return False
    since = engine.now - timedelta(hours=1)
    count = engine.session.execute(
        select(func.count(Dispatch.id)).where(
            Dispatch.account_id == account.id,
            Dispatch.caller_number == caller,
            Dispatch.created_at >= since,
        )
    ).scalar_one()
    return count >= engine.config.max_dispatches_per_caller_per_hour


def _new_dispatch(
    engine: DispatchEngine, account: Account, profile: Profile, sms: InboundSms, sender: str
) -> SmsOutcome:
    if caller_over_limit(engine, account, sender):
        events.record(
            engine.session,
            "rate_limited",
            at=engine.now,
            account_id=account.id,
            sid=sms.sid,
            caller=sender,
            limit=engine.config.max_dispatches_per_caller_per_hour,
        )
        logger.warning(
            "sms %s: caller %s over the hourly dispatch limit; nobody paged", sms.sid, mask(sender)
        )
        return SmsOutcome("rate_limited")
    route = match_route(profile, sms.to, engine.now, "sms", None)
    dispatch = engine.create_dispatch(
        account=account,
        source=Channel.SMS,
        source_sid=sms.sid,
        answering_number=sms.to,
        caller_number=sender,
        caller_raw=sms.from_raw,
        caller_withheld=False,
        route_key=route.key if route else None,
        reason=sms.body or None,
    )
    if route is None:
        engine.no_one_available(dispatch, "no_route")
        return SmsOutcome("no_route", dispatch.id)
    if route.action == "page":
        _auto_reply(
            engine,
            account,
            profile,
            sender,
            sms,
            "caller_received",
            messages.caller_received(
                profile.account.name, profile.account.promised_response_minutes
            ),
            dispatch,
        )
        engine.begin_offering(dispatch)
        return SmsOutcome("new_dispatch", dispatch.id)
    settle_without_paging(engine, dispatch, profile, route.action, route.forward_to)
    if route.action == "message":
        _auto_reply(
            engine,
            account,
            profile,
            sender,
            sms,
            "caller_received",
            f"{profile.account.name}: we have your message and the office will reply "
            "when it opens.",
            dispatch,
        )
    return SmsOutcome(f"route_{route.action}", dispatch.id)


def settle_without_paging(
    engine: DispatchEngine,
    dispatch: Dispatch,
    profile: Profile,
    action: str,
    forward_to: str | None,
) -> None:
    """Settle a dispatch whose route takes a message or forwards it."""
    dispatch.settled_at = engine.now
    if action == "message":
        dispatch.state = DispatchState.MESSAGE_TAKEN
        events.record(
            engine.session,
            "message_taken",
            at=engine.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            reason=dispatch.reason,
        )
        return
    dispatch.state = DispatchState.FORWARDED
    events.record(
        engine.session,
        "forwarded",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        forward_to=forward_to,
    )
    if dispatch.source == Channel.SMS and forward_to:
        text = f"{profile.account.name}: text from {dispatch.caller_number}: {dispatch.reason}"
        engine.queue_sms(
            dispatch,
            to=forward_to,
            body=text[: messages.SMS_MAX_CHARS],
            purpose="forward_text",
            from_number=sms_from(profile),
        )
