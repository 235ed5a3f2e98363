"""The inbound call: staff calling in to be bridged, follow-ups, and the caller script.

A new caller's dispatch is created on the first webhook (idempotent on CallSid) in ``intake``.
The first offer goes out when the reason is captured, when the caller hangs up after choosing a
route, or when the intake time runs out (the reconciler), whichever comes first.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select

from dispatch import events
from dispatch.engine import DispatchEngine
from dispatch.models import (
    Account,
    Channel,
    Dispatch,
    DispatchState,
    Member,
    Offer,
)
from dispatch.phones import PhoneNumberError, is_withheld, mask, normalize_e164, normalize_sender
from dispatch.profile import Profile, Route
from dispatch.routing import match_route, needs_menu
from dispatch.sms_inbound import (
    caller_over_limit,
    forward_followup,
    recent_dispatch_of_caller,
    settle_without_paging,
)
from dispatch.voice import Dial, Gather, Hangup, Redirect, Say, Script, ended

logger = logging.getLogger(__name__)

CALLBACK_DIGITS_MAX = 15


def inbound_call(
    engine: DispatchEngine, account: Account, call_sid: str, from_raw: str | None, to: str
) -> Script:
    profile = engine.profile_for(account)
    withheld = is_withheld(from_raw)
    caller = None if withheld else normalize_sender(from_raw)

    if caller is not None:
        bridge = _member_bridge(engine, account, profile, caller, to)
        if bridge is not None:
            return bridge
        followup = _caller_followup(engine, account, profile, caller, call_sid)
        if followup is not None:
            return followup
        if caller_over_limit(engine, account, caller):
            events.record(
                engine.session,
                "rate_limited",
                at=engine.now,
                account_id=account.id,
                sid=call_sid,
                caller=caller,
            )
            logger.warning(
                "call %s: caller %s over the hourly limit; nobody paged", call_sid, mask(caller)
            )
            return ended(
                f"Thank you for calling {profile.account.name}. We already have your "
                "recent requests and will call you back. Goodbye."
            )

    asks_menu = needs_menu(profile, to, engine.now)
    route = None if asks_menu else match_route(profile, to, engine.now, "voice", None)
    dispatch = engine.create_dispatch(
        account=account,
        source=Channel.VOICE,
        source_sid=call_sid,
        answering_number=to,
        caller_number=caller,
        caller_raw=from_raw,
        caller_withheld=withheld,
        route_key=route.key if route else None,
        intake_seconds=engine.config.intake_seconds,
    )
    script: Script = [Say(profile.caller_script.greeting)]
    if profile.caller_script.recording_notice:
        script.append(Say(profile.caller_script.recording_notice))
    if profile.caller_script.emergency_notice:
        script.append(Say(profile.caller_script.emergency_notice))
    if withheld:
        return script + _ask_callback(dispatch)
    return script + _after_callback(engine, dispatch, profile, asks_menu, route)


def _ask_callback(dispatch: Dispatch) -> Script:
    action = f"/twilio/voice/callback?dispatch={dispatch.id}"
    return [
        Gather(
            action=action,
            num_digits=CALLBACK_DIGITS_MAX,
            finish_on_key="#",
            timeout=8,
            says=(
                "Your caller ID is hidden. Please key in a number where we can call you "
                "back, including the area code, then press the pound key. If you do not "
                "want to leave a number, just wait.",
            ),
        ),
        Redirect(action),
    ]


def _after_callback(
    engine: DispatchEngine,
    dispatch: Dispatch,
    profile: Profile,
    asks_menu: bool,
    route: Route | None,
) -> Script:
    if asks_menu:
        return _ask_menu(dispatch, profile)
    if route is None:
        return _no_route(engine, dispatch, profile)
    return _route_chosen(engine, dispatch, profile, route)


def _ask_menu(dispatch: Dispatch, profile: Profile, again: bool = False) -> Script:
    options = " ".join(
        f"For {option.label}, press {option.digit}." for option in profile.caller_script.menu
    )
    action = f"/twilio/voice/menu?dispatch={dispatch.id}&attempt={2 if again else 1}"
    return [Gather(action=action, says=(options,)), Redirect(action)]


def _route_chosen(
    engine: DispatchEngine, dispatch: Dispatch, profile: Profile, route: Route
) -> Script:
    dispatch.route_key = route.key
    events.record(
        engine.session,
        "route_chosen",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        route=route.key,
        action=route.action,
        menu_choice=dispatch.menu_choice,
    )
    if route.action == "forward" and route.forward_to:
        settle_without_paging(engine, dispatch, profile, "forward", route.forward_to)
        return [
            Say("Please hold while we connect you."),
            Dial(number=route.forward_to, caller_id=dispatch.answering_number),
        ]
    action = f"/twilio/voice/reason?dispatch={dispatch.id}"
    return [
        Gather(
            action=action,
            input="speech dtmf",
            num_digits=None,
            finish_on_key="#",
            timeout=8,
            says=(profile.caller_script.reason_prompt,),
        ),
        Redirect(action),
    ]


def _no_route(engine: DispatchEngine, dispatch: Dispatch, profile: Profile) -> Script:
    engine.no_one_available(dispatch, "no_route")
    return _connect_to_desk(engine, dispatch, profile)


def _connect_to_desk(engine: DispatchEngine, dispatch: Dispatch, profile: Profile) -> Script:
    route = engine.route_for(dispatch, profile)
    line = (
        route.fallback_line if route and route.fallback_line else None
    ) or dispatch.escalation_line
    if line is None:
        return ended(
            "We are sorry, nobody is available to take your call right now. If this "
            "is an emergency, hang up and dial 911. Goodbye."
        )
    events.record(
        engine.session,
        "caller_connected_to_desk",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        line=line,
    )
    return [
        Say(
            "Nobody on call is available right now. Please hold while we connect you to "
            "our answering service."
        ),
        Dial(number=line, caller_id=dispatch.answering_number),
    ]


def callback_entered(engine: DispatchEngine, dispatch_id: int, digits: str) -> Script:
    dispatch = engine.lock_dispatch(dispatch_id)
    if dispatch is None or dispatch.state != DispatchState.INTAKE:
        return ended("Thank you. Goodbye.")
    profile = engine.profile_for(engine.account(dispatch.account_id))
    if digits:
        try:
            number = normalize_e164(digits)
        except PhoneNumberError:
            number = None
        if number is not None:
            dispatch.callback_number = number
            dispatch.callback_supplied = True
        events.record(
            engine.session,
            "callback_number_entered",
            at=engine.now,
            account_id=dispatch.account_id,
            dispatch_id=dispatch.id,
            valid=number is not None,
            number=number,
        )
    asks_menu = needs_menu(profile, dispatch.answering_number, engine.now)
    route = (
        None
        if asks_menu
        else match_route(profile, dispatch.answering_number, engine.now, "voice", None)
    )
    return _after_callback(engine, dispatch, profile, asks_menu, route)


def menu_chosen(engine: DispatchEngine, dispatch_id: int, digits: str, attempt: int) -> Script:
    dispatch = engine.lock_dispatch(dispatch_id)
    if dispatch is None or dispatch.state != DispatchState.INTAKE:
        return ended("Thank you. Goodbye.")
    profile = engine.profile_for(engine.account(dispatch.account_id))
    choice = digits[:1] if digits else None
    route = match_route(profile, dispatch.answering_number, engine.now, "voice", choice)
    if (choice is None or choice not in profile.caller_script.menu_digits()) and attempt < 2:
        return [Say("Sorry, that is not one of the options.")] + _ask_menu(dispatch, profile, True)
    dispatch.menu_choice = choice
    if route is None:
        return _no_route(engine, dispatch, profile)
    return _route_chosen(engine, dispatch, profile, route)


def reason_captured(
    engine: DispatchEngine, dispatch_id: int, speech: str | None, digits: str | None
) -> Script:
    dispatch = engine.lock_dispatch(dispatch_id)
    if dispatch is None:
        return ended("Thank you. Goodbye.")
    profile = engine.profile_for(engine.account(dispatch.account_id))
    if dispatch.state != DispatchState.INTAKE:
        return _tell_caller(engine, dispatch, profile)
    if speech and speech.strip():
        reason: str | None = speech.strip()
        captured_by = "speech"
    elif digits:
        reason = f"caller keyed {digits}"
        captured_by = "keypad"
    else:
        reason = None
        captured_by = "none"
    dispatch.reason = reason
    events.record(
        engine.session,
        "reason_captured",
        at=engine.now,
        account_id=dispatch.account_id,
        dispatch_id=dispatch.id,
        reason=reason,
        by=captured_by,
    )
    route = engine.route_for(dispatch, profile)
    if route is not None and route.action == "message":
        settle_without_paging(engine, dispatch, profile, "message", None)
        return ended(
            "Thank you. We have taken your message, and the office will call you "
            "back when it opens. Goodbye."
        )
    engine.begin_offering(dispatch)
    return _tell_caller(engine, dispatch, profile)


def _tell_caller(engine: DispatchEngine, dispatch: Dispatch, profile: Profile) -> Script:
    if dispatch.state == DispatchState.NO_ONE_AVAILABLE:
        return _connect_to_desk(engine, dispatch, profile)
    minutes = profile.account.promised_response_minutes
    who = "the on-call technician"
    return ended(
        f"Thank you. We are contacting {who} now. Someone will call you back within "
        f"about {minutes} minutes. Your reference number is "
        f"{' '.join(dispatch.code)}. Goodbye."
    )


def inbound_call_ended(engine: DispatchEngine, account: Account, call_sid: str) -> str:
    """Act on a caller's hang-up: page now for a chosen route, or record an abandoned call."""
    dispatch = engine.session.execute(
        select(Dispatch).where(Dispatch.account_id == account.id, Dispatch.source_sid == call_sid)
    ).scalar_one_or_none()
    if dispatch is None:
        return "no dispatch"
    dispatch = engine.lock_dispatch(dispatch.id)
    assert dispatch is not None
    if dispatch.state != DispatchState.INTAKE:
        return f"already {dispatch.state}"
    if dispatch.route_key is None:
        dispatch.state = DispatchState.ABANDONED
        dispatch.state_reason = "caller hung up before choosing"
        dispatch.settled_at = engine.now
        events.record(
            engine.session,
            "abandoned",
            at=engine.now,
            account_id=account.id,
            dispatch_id=dispatch.id,
            reason="caller hung up before choosing",
        )
        return "abandoned"
    profile = engine.profile_for(account)
    route = engine.route_for(dispatch, profile)
    if route is not None and route.action == "message":
        settle_without_paging(engine, dispatch, profile, "message", None)
        return "message_taken"
    engine.begin_offering(dispatch)
    return "offering"


def _member_bridge(
    engine: DispatchEngine, account: Account, profile: Profile, caller: str, to: str
) -> Script | None:
    """Connect a staff member who calls the answering line to the caller of their dispatch."""
    members = list(
        engine.session.execute(
            select(Member).where(
                Member.account_id == account.id,
                or_(Member.voice_number == caller, Member.sms_number == caller),
            )
        ).scalars()
    )
    if not members:
        return None
    ids = [m.id for m in members]
    since = engine.now - timedelta(seconds=engine.config.late_accept_seconds)
    accepted = list(
        engine.session.execute(
            select(Dispatch)
            .where(
                Dispatch.account_id == account.id,
                Dispatch.acknowledged_member_id.in_(ids),
                Dispatch.created_at >= since,
            )
            .order_by(Dispatch.id.desc())
        ).scalars()
    )
    if not accepted:
        offered = list(
            engine.session.execute(
                select(Dispatch)
                .join(Offer, Offer.dispatch_id == Dispatch.id)
                .where(
                    Dispatch.account_id == account.id,
                    Offer.member_id.in_(ids),
                    Dispatch.state.in_([DispatchState.OFFERING, DispatchState.UNACKNOWLEDGED]),
                    Dispatch.created_at >= since,
                )
                .distinct()
            ).scalars()
        )
        if not offered:
            return None
        return [
            Say(
                f"You have an open dispatch offer, job {' '.join(offered[0].code)}. "
                "Reply to the text or answer the offer call to accept it. Goodbye."
            ),
            Hangup(),
        ]
    dispatch = accepted[0]
    if dispatch.callback_number is None:
        return ended(f"Job {' '.join(dispatch.code)} has no callback number. Goodbye.")
    dispatch.connected_at = dispatch.connected_at or engine.now
    events.record(
        engine.session,
        "bridge_started",
        at=engine.now,
        account_id=account.id,
        dispatch_id=dispatch.id,
        member=members[0].key,
        seconds_to_callback=round((engine.now - dispatch.created_at).total_seconds(), 3),
    )
    return [
        Say(f"Connecting you to the caller for job {' '.join(dispatch.code)}."),
        Dial(number=dispatch.callback_number, caller_id=to),
    ]


def _caller_followup(
    engine: DispatchEngine, account: Account, profile: Profile, caller: str, call_sid: str
) -> Script | None:
    dispatch = recent_dispatch_of_caller(engine, account.id, caller)
    if dispatch is None or dispatch.source_sid == call_sid:
        return None
    events.record(
        engine.session,
        "caller_followup",
        at=engine.now,
        account_id=account.id,
        dispatch_id=dispatch.id,
        sid=call_sid,
        via="voice",
    )
    forward_followup(engine, dispatch, profile, None, key=call_sid)
    if dispatch.state == DispatchState.ACKNOWLEDGED:
        text = (
            f"Thank you for calling {profile.account.name}. A technician has accepted your "
            f"request, job {' '.join(dispatch.code)}, and will call you back. Goodbye."
        )
    else:
        text = (
            f"Thank you for calling {profile.account.name}. We are still reaching the "
            f"on-call team for your request, job {' '.join(dispatch.code)}. Someone will "
            "call you back. Goodbye."
        )
    return ended(text)
