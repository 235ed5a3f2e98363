"""The offer chain a page route would run at an instant, computed without touching any state.

``simulate_chain`` walks the same steps as the dispatch engine: rounds through the pool from the
stored pointer, then the route's backups, then the final escalation line. Each member's
eligibility comes from ``eligibility.skip_reason`` and the next member from
``rotation.pick_next``, so a simulation and a real dispatch choose alike.

Two limits apply. Eligibility is evaluated at the one instant given, while a real chain
re-evaluates it at every rollover. And each step's start time assumes that every earlier offer
ran its whole acknowledgement window, which is the latest it can start.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.eligibility import AccountChannelState, skip_reason
from dispatch.models import Channel, Member
from dispatch.profile import Profile, Route
from dispatch.rotation import Pick, pick_next

POOL = "pool"
BACKUP = "backup"
ESCALATION = "escalation"
NOBODY = "nobody"


@dataclass(frozen=True)
class SimulatedStep:
    """One step of a simulated chain: an offer, the final escalation, or "nobody available".

    ``kind`` is ``pool``, ``backup``, ``escalation`` or ``nobody``. ``skipped`` lists the
    members passed over just before this step, as (member key, reason). For ``escalation`` and
    ``nobody`` steps, ``number`` is the final escalation line, or None when none is configured.
    """

    kind: str
    round: int | None
    member_key: str | None
    member_name: str | None
    channels: tuple[str, ...]
    number: str | None
    skipped: tuple[tuple[str, str], ...]
    start_seconds: int
    window_seconds: int
    after_cap: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "round": self.round,
            "member": self.member_key,
            "name": self.member_name,
            "channels": list(self.channels),
            "number": self.number,
            "skipped": [{"member": key, "reason": reason} for key, reason in self.skipped],
            "start_seconds": self.start_seconds,
            "window_seconds": self.window_seconds,
            "after_cap": self.after_cap,
        }


@dataclass
class _Chain:
    """The chain built so far, with the skips not yet attached to a step."""

    route: Route
    steps: list[SimulatedStep] = field(default_factory=list)
    pending_skips: list[tuple[str, str]] = field(default_factory=list)
    elapsed_seconds: int = 0

    @property
    def cap_seconds(self) -> int:
        return self.route.max_chain_minutes * 60

    def offer(self, kind: str, round_number: int | None, member: Member,
              channels: tuple[Channel, ...]) -> None:
        window = _window_seconds(self.route, channels)
        self.steps.append(
            SimulatedStep(
                kind=kind, round=round_number, member_key=member.key, member_name=member.name,
                channels=tuple(str(channel) for channel in channels), number=None,
                skipped=tuple(self.pending_skips), start_seconds=self.elapsed_seconds,
                window_seconds=window, after_cap=self.elapsed_seconds >= self.cap_seconds,
            )
        )
        self.pending_skips = []
        self.elapsed_seconds += window

    def finish(self, line: str | None) -> None:
        made_offers = bool(self.steps)
        channels: tuple[str, ...] = tuple(self.route.channels) if made_offers else ("sms",)
        # With every window run out, the rollover at or past the cap ends the chain.
        start = min(self.elapsed_seconds, self._first_start_after_cap())
        self.steps.append(
            SimulatedStep(
                kind=ESCALATION if made_offers else NOBODY, round=None, member_key=None,
                member_name=None, channels=channels if line else (), number=line,
                skipped=tuple(self.pending_skips), start_seconds=start, window_seconds=0,
                after_cap=False,
            )
        )
        self.pending_skips = []

    def _first_start_after_cap(self) -> int:
        late = [step.start_seconds for step in self.steps if step.after_cap]
        return min(late) if late else self.elapsed_seconds


def roster_members(profile: Profile) -> dict[str, Member]:
    """Build unsaved member rows from the profile's roster, keyed by member key."""
    return {
        spec.key: Member(
            key=spec.key,
            name=spec.name,
            voice_number=spec.phones.voice,
            sms_number=spec.phones.sms,
            active=spec.active,
            on_roster=True,
        )
        for spec in profile.members
    }


def simulate_chain(
    profile: Profile,
    route: Route,
    at: datetime,
    pointer_key: str | None,
    pointer_position: int | None,
    run_state: AccountChannelState,
    *,
    busy: Collection[str] = (),
    operator_desk: str | None = None,
) -> list[SimulatedStep]:
    """Return every step a dispatch on a page route would take at ``at`` if nobody accepted.

    ``pointer_key`` and ``pointer_position`` are the pool's stored pointer. ``busy`` contains
    the keys of members with a live offer of another dispatch. ``operator_desk`` is the
    service-wide final escalation line. The last step is always the final escalation, or
    ``nobody`` when the chain makes no offer at all. Raises ValueError for a route that pages
    no pool.
    """
    if route.action != "page" or route.pool is None:
        raise ValueError(f"route {route.key!r} is a {route.action} route and pages no pool")

    roster = roster_members(profile)
    chain = _Chain(route)
    _run_pool_rounds(chain, profile, route, at, (pointer_key, pointer_position), run_state,
                     roster, set(busy))
    _run_backups(chain, profile, route, at, run_state, roster)
    chain.finish(profile.final_escalation_line(operator_desk))
    return chain.steps


def _run_pool_rounds(
    chain: _Chain,
    profile: Profile,
    route: Route,
    at: datetime,
    pointer: tuple[str | None, int | None],
    run_state: AccountChannelState,
    roster: Mapping[str, Member],
    busy: set[str],
) -> None:
    assert route.pool is not None
    order = list(profile.pool(route.pool).members)
    wanted = [Channel(channel) for channel in route.channels]
    round_number = 1
    offered: set[str] = set()

    while True:
        pick, reasons = _pick(order, pointer, profile, at, wanted, run_state, roster, offered,
                              busy)
        if pick is None:
            if offered and round_number < route.rounds:
                round_number += 1
                offered = set()
                continue
            # Members already offered in the last round are left out: that is why it ended.
            chain.pending_skips.extend(
                (key, reason) for key, reason in reasons.items() if reason and key not in offered
            )
            return

        chain.pending_skips.extend(pick.skipped)
        member = roster[pick.member_key]
        chain.offer(POOL, round_number, member, run_state.reach(member, wanted).channels)
        offered.add(member.key)
        pointer = (member.key, pick.position)


def _pick(
    order: list[str],
    pointer: tuple[str | None, int | None],
    profile: Profile,
    at: datetime,
    wanted: list[Channel],
    run_state: AccountChannelState,
    roster: Mapping[str, Member],
    offered: set[str],
    busy: set[str],
) -> tuple[Pick | None, dict[str, str | None]]:
    """Pick the next member, passing over busy members unless nobody else is eligible."""
    reasons: dict[str, str | None] = {}
    for respect_busy in (True, False):
        reasons = {
            key: skip_reason(
                member=roster.get(key),
                profile=profile,
                at=at,
                reach=run_state.reach(roster[key], wanted) if key in roster else None,
                offered=offered,
                busy=respect_busy and key in busy,
            )
            for key in order
        }
        pick = pick_next(order, pointer[0], pointer[1], reasons)
        if pick is not None:
            return pick, reasons
    return None, reasons


def _run_backups(
    chain: _Chain,
    profile: Profile,
    route: Route,
    at: datetime,
    run_state: AccountChannelState,
    roster: Mapping[str, Member],
) -> None:
    wanted = [Channel(channel) for channel in route.channels]
    for key in route.backups:
        member = roster.get(key)
        reach = run_state.reach(member, wanted) if member is not None else None
        # Backups are people of last resort before the desk, so shifts do not apply to them.
        reason = skip_reason(member=member, profile=profile, at=at, reach=reach, offered=set(),
                             busy=False, check_shift=False)
        if reason is not None:
            chain.pending_skips.append((key, "backup " + reason))
            continue

        assert member is not None and reach is not None
        chain.offer(BACKUP, None, member, reach.channels)


def _window_seconds(route: Route, channels: tuple[Channel, ...]) -> int:
    windows = {
        Channel.VOICE: route.ack_window_voice_seconds,
        Channel.SMS: route.ack_window_sms_seconds,
    }
    return max(windows[channel] for channel in channels)
