"""The profile gap checker: what in a profile, with the account's run-time state, would page nobody.

``check_profile`` is pure. It takes the profile, the flags, opt-outs and pauses already loaded
into an ``AccountChannelState``, and the instant to check from, and returns one ``Finding`` per
problem. A profile with no findings is clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from dispatch.eligibility import AccountChannelState
from dispatch.models import Channel, Member
from dispatch.phones import mask
from dispatch.profile import DAYS, Profile, Route
from dispatch.schedule import local_to_utc, next_gaps, window_kinds
from dispatch.simulate import roster_members

DEFAULT_DAYS = 14
REVIEW_MAX_DAYS = 180

GAP = "gap"
EMPTY_POOL = "empty_pool"
POOL_OF_ONE = "pool_of_one"
NO_ESCALATION_LINE = "no_escalation_line"
NUMBER_FLAGGED = "number_flagged"
OPTED_OUT = "opted_out"
CHANNEL_PAUSED = "channel_paused"
UNREACHABLE = "unreachable"
MEMBER_IN_NO_POOL = "member_in_no_pool"
REVIEW_OVERDUE = "review_overdue"


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, the pool, route, member or account it is about, and a message."""

    kind: str
    subject: str
    message: str
    start: datetime | None = None
    end: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


def check_profile(
    profile: Profile,
    run_state: AccountChannelState,
    now: datetime,
    *,
    days: int = DEFAULT_DAYS,
    operator_desk: str | None = None,
) -> list[Finding]:
    """Return every problem of a profile from ``now`` (aware) over the next ``days`` days.

    ``operator_desk`` is the service-wide final escalation line (OPERATOR_DESK_NUMBER).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")

    findings: list[Finding] = []
    findings.extend(_review_findings(profile, now))
    findings.extend(_escalation_findings(profile, operator_desk))
    findings.extend(_pool_size_findings(profile))
    findings.extend(_gap_findings(profile, now, now + timedelta(days=days)))
    findings.extend(_reachability_findings(profile, run_state))
    findings.extend(_unpooled_member_findings(profile))
    return findings


def format_local_span(start: datetime, end: datetime, profile: Profile) -> str:
    """Format an interval in the account's zone: ``Tue 2025-06-17 02:00–06:00 CDT``.

    The end repeats the date when it falls on another day, and the start names its zone when
    the zone's abbreviation changes inside the interval (a daylight saving change).
    """
    local_start = start.astimezone(profile.zone)
    local_end = end.astimezone(profile.zone)
    start_text = local_start.strftime("%a %Y-%m-%d %H:%M")
    if local_start.tzname() != local_end.tzname():
        start_text += f" {local_start.tzname()}"
    end_format = "%H:%M %Z" if local_start.date() == local_end.date() else "%a %Y-%m-%d %H:%M %Z"
    return f"{start_text}–{local_end.strftime(end_format)}"


def _review_findings(profile: Profile, now: datetime) -> list[Finding]:
    key = profile.account.key
    reviewed = profile.account.last_reviewed
    if reviewed is None:
        return [Finding(REVIEW_OVERDUE, key, "account.last_reviewed is not set, so nobody has"
                        " recorded a review of this profile; review it and set the date")]

    age = (now.astimezone(profile.zone).date() - reviewed).days
    if age <= REVIEW_MAX_DAYS:
        return []
    return [Finding(REVIEW_OVERDUE, key, f"profile last reviewed {reviewed.isoformat()}, {age}"
                    f" days ago (more than {REVIEW_MAX_DAYS}); review it and update"
                    " account.last_reviewed")]


def _page_routes(profile: Profile) -> list[Route]:
    return [route for route in profile.routes if route.action == "page" and route.pool]


def _escalation_findings(profile: Profile, operator_desk: str | None) -> list[Finding]:
    if profile.final_escalation_line(operator_desk) is not None:
        return []

    findings = []
    for route in _page_routes(profile):
        message = (f"route {route.key}: no final escalation line anywhere, so when the chain"
                   " runs out nobody is alerted; set account.final_escalation or the service's"
                   " OPERATOR_DESK_NUMBER")
        if route.fallback_line is not None:
            message += (". Its fallback_line only connects a caller who is still on the line,"
                        " and is not paged")
        findings.append(Finding(NO_ESCALATION_LINE, route.key, message))
    return findings


def _pool_size_findings(profile: Profile) -> list[Finding]:
    findings = []
    for pool in profile.pools:
        if not pool.members:
            findings.append(Finding(EMPTY_POOL, pool.key,
                                    f"pool {pool.key} is empty, so routes to it reach nobody"))
        elif len(pool.members) == 1:
            findings.append(Finding(
                POOL_OF_ONE, pool.key,
                f"pool {pool.key} has one member ({pool.members[0]}), so every round offers"
                " the same person and nobody covers for them",
            ))
    return findings


def _gap_findings(profile: Profile, start: datetime, end: datetime) -> list[Finding]:
    """Report each interval when a page route applies but nobody in its pool is on call."""
    windows_by_pool: dict[str, set[str]] = {}
    for route in _page_routes(profile):
        assert route.pool is not None
        windows_by_pool.setdefault(route.pool, set()).update(route.when)

    findings = []
    for pool_key, windows in windows_by_pool.items():
        for gap_start, gap_end in next_gaps(profile, pool_key, start, end):
            for piece_start, piece_end in _while_routed(profile, windows, gap_start, gap_end):
                span = format_local_span(piece_start, piece_end, profile)
                findings.append(Finding(GAP, pool_key, f"pool {pool_key}: nobody on call {span}",
                                        piece_start, piece_end))
    return findings


def _while_routed(
    profile: Profile, windows: set[str], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Return the parts of [start, end) during which one of ``windows`` applies."""
    if "always" in windows:
        return [(start, end)]

    cuts = sorted({start, end} | {cut for cut in _window_changes(profile, start, end)
                                  if start < cut < end})
    parts: list[tuple[datetime, datetime]] = []
    for begin, finish in zip(cuts, cuts[1:], strict=False):
        if not window_kinds(profile, begin) & windows:
            continue
        if parts and parts[-1][1] == begin:
            parts[-1] = (parts[-1][0], finish)
        else:
            parts.append((begin, finish))
    return parts


def _window_changes(profile: Profile, start: datetime, end: datetime) -> Iterator[datetime]:
    """Yield the instants around [start, end] where business hours or a holiday begin or end."""
    zone = profile.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        midnight = datetime.combine(day, time())
        yield local_to_utc(midnight, zone)
        for open_minutes, close_minutes in profile.business_hours.ranges(DAYS[day.weekday()]):
            yield local_to_utc(midnight + timedelta(minutes=open_minutes), zone)
            yield local_to_utc(midnight + timedelta(minutes=close_minutes), zone)
        day += timedelta(days=1)


def _reachability_findings(profile: Profile, run_state: AccountChannelState) -> list[Finding]:
    key = profile.account.key
    findings = [
        Finding(CHANNEL_PAUSED, key,
                f"{channel} is paused for the account after a Twilio account or configuration"
                f" error, so no {channel} offer goes out until an admin clears the pause")
        for channel in sorted(run_state.paused)
    ]
    for member in roster_members(profile).values():
        findings.extend(_member_number_findings(member, run_state))
    return findings


def _member_number_findings(member: Member, run_state: AccountChannelState) -> list[Finding]:
    findings = []
    for channel, number in ((Channel.VOICE, member.voice_number), (Channel.SMS, member.sms_number)):
        if number is None:
            continue
        if (number, channel) in run_state.flagged:
            findings.append(Finding(
                NUMBER_FLAGGED, member.key,
                f"member {member.key}: {channel} number {mask(number)} is flagged after a"
                f" number error from Twilio, so it no longer rings; correct the number, then"
                f" clear the flag",
            ))
        if channel == Channel.SMS and number in run_state.opted_out:
            findings.append(Finding(
                OPTED_OUT, member.key,
                f"member {member.key}: sms number {mask(number)} opted out of this account's"
                " texts (STOP), so offers by SMS no longer reach them until they text START",
            ))

    reach = run_state.reach(member, [Channel.VOICE, Channel.SMS])
    if member.active and not reach.channels:
        findings.append(Finding(UNREACHABLE, member.key,
                                f"member {member.key} cannot be reached on any channel"
                                f" ({reach.reason})"))
    return findings


def _unpooled_member_findings(profile: Profile) -> list[Finding]:
    pooled = {key for pool in profile.pools for key in pool.members}
    findings = []
    for member in profile.members:
        if member.key in pooled:
            continue
        backup_on = [route.key for route in profile.routes if member.key in route.backups]
        if backup_on:
            noun = "route" if len(backup_on) == 1 else "routes"
            detail = f"so is paged only as a backup on {noun} {', '.join(backup_on)}"
        else:
            detail = "and is no route's backup, so is never paged"
        findings.append(Finding(MEMBER_IN_NO_POOL, member.key,
                                f"member {member.key} is in no pool, {detail}"))
    return findings
