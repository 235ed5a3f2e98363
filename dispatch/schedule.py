"""Who is on call at an instant, and which time windows apply, in the account's time zone.

Every function takes UTC instants. Shift and override times are wall-clock times in the
account's zone, turned into UTC instants with two rules for daylight saving time:

- A wall time that does not exist (the hour skipped in spring) means the first instant after
  the gap, so a shift that starts at 02:30 on that night starts at 03:00.
- A wall time that occurs twice (the hour repeated in autumn) means its first occurrence.

So an instant is either inside a shift or not, and a shift's length is real elapsed time: a
22:00-06:00 shift lasts 7 hours on the spring night and 9 hours on the autumn night.

The order of precedence for a member is: inactive, then dated overrides (the last one listed
wins), then a holiday with an ``on_call`` list (its local calendar day, midnight to midnight),
then weekly shifts. A member named by no shift is on call at all times.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dispatch.profile import DAYS, Holiday, Profile, Shift

BUSINESS_HOURS = "business_hours"
AFTER_HOURS = "after_hours"
HOLIDAY = "holiday"


def window_kinds(profile: Profile, at_utc: datetime) -> set[str]:
    """Return the windows in effect at an instant: business hours, after hours or a holiday.

    A holiday counts as after hours too. A route's window ``always`` applies at every instant
    and is not listed.
    """
    local = _require_aware(at_utc).astimezone(profile.zone)
    if _holiday_on(profile, local.date()) is not None:
        return {HOLIDAY, AFTER_HOURS}

    second = local.hour * 3600 + local.minute * 60 + local.second
    day = DAYS[local.weekday()]
    for start, end in profile.business_hours.ranges(day):
        if start * 60 <= second < end * 60:
            return {BUSINESS_HOURS}
    return {AFTER_HOURS}


def on_call_status(profile: Profile, member_key: str, at_utc: datetime) -> tuple[bool, str]:
    """Return whether a member is on call at an instant, and the reason.

    Reasons: ``inactive``, ``override: <note>``, ``holiday <name>``, ``shift mon 17:00-08:00``,
    ``no shifts: always on call``, ``outside_schedule`` and ``not on the roster``.
    """
    at_utc = _require_aware(at_utc)
    try:
        member = profile.member(member_key)
    except KeyError:
        return False, "not on the roster"
    if not member.active:
        return False, "inactive"

    zone = profile.zone
    for override in reversed(profile.schedule.overrides):
        if override.member != member_key:
            continue
        if local_to_utc(override.start, zone) <= at_utc < local_to_utc(override.end, zone):
            return override.on_call, f"override: {override.note}" if override.note else "override"

    holiday = _holiday_on(profile, at_utc.astimezone(zone).date())
    if holiday is not None and holiday.on_call is not None:
        return member_key in holiday.on_call, f"holiday {holiday.name}"

    shifts = [shift for shift in profile.schedule.shifts if shift.member == member_key]
    if not shifts:
        return True, "no shifts: always on call"

    shift_name = _shift_covering(shifts, at_utc, zone)
    if shift_name is not None:
        return True, shift_name
    return False, "outside_schedule"


def on_call_members(profile: Profile, pool_key: str, at_utc: datetime) -> list[str]:
    """Return the keys of a pool's members on call at an instant, in pool order.

    Raises KeyError for an unknown pool.
    """
    pool = profile.pool(pool_key)
    return [key for key in pool.members if on_call_status(profile, key, at_utc)[0]]


def next_gaps(
    profile: Profile,
    pool_key: str,
    start_utc: datetime,
    end_utc: datetime,
    step_minutes: int = 15,
) -> list[tuple[datetime, datetime]]:
    """Return the intervals in [start_utc, end_utc) when no member of a pool is on call.

    Every boundary of a shift, override or holiday in the range is evaluated, so the gaps are
    exact to the second. ``step_minutes`` caps the distance between evaluated instants.
    """
    start_utc = _require_aware(start_utc).astimezone(UTC)
    end_utc = _require_aware(end_utc).astimezone(UTC)
    if end_utc < start_utc:
        raise ValueError(f"end {end_utc.isoformat()} is before start {start_utc.isoformat()}")
    if step_minutes < 1:
        raise ValueError(f"step_minutes must be at least 1, not {step_minutes}")

    instants = sorted(_boundaries(profile, pool_key, start_utc, end_utc, step_minutes))
    gaps: list[tuple[datetime, datetime]] = []
    for begin, finish in zip(instants, instants[1:], strict=False):
        if on_call_members(profile, pool_key, begin):
            continue
        if gaps and gaps[-1][1] == begin:
            gaps[-1] = (gaps[-1][0], finish)
        else:
            gaps.append((begin, finish))
    return gaps


def shift_window(shift: Shift, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the UTC start and end of a weekly shift that begins on local ``day``."""
    start_wall = datetime.combine(day, time()) + timedelta(minutes=shift.start_minutes)
    end_day = day + timedelta(days=1) if shift.crosses_midnight else day
    end_wall = datetime.combine(end_day, time()) + timedelta(minutes=shift.end_minutes)
    return local_to_utc(start_wall, zone), local_to_utc(end_wall, zone)


def local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of a naive wall-clock time in ``zone``.

    A time in a spring-forward gap gives the first instant after the gap. A time that occurs
    twice gives its first occurrence.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"wall time {wall.isoformat()} must be naive local time")

    earlier_offset = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earlier_offset.astimezone(zone).replace(tzinfo=None) == wall:
        return earlier_offset

    # In a gap, fold=0 applies the offset from before the change and fold=1 the offset after
    # it, so the change itself lies between the two readings.
    later_offset = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _offset_change(
        min(earlier_offset, later_offset), max(earlier_offset, later_offset), zone
    )


def _offset_change(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """Return the first whole second in (before, after] that has the offset ``after`` has."""
    target = after.astimezone(zone).utcoffset()
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _shift_covering(shifts: list[Shift], at_utc: datetime, zone: ZoneInfo) -> str | None:
    """Return the name of a shift that covers the instant, such as ``shift mon 17:00-08:00``."""
    local_day = at_utc.astimezone(zone).date()
    for day in (local_day - timedelta(days=1), local_day):
        weekday = DAYS[day.weekday()]
        for shift in shifts:
            if weekday not in shift.days:
                continue
            start, end = shift_window(shift, day, zone)
            if start <= at_utc < end:
                return f"shift {weekday} {shift.start}-{shift.end}"
    return None


def _holiday_on(profile: Profile, day: date) -> Holiday | None:
    for holiday in profile.schedule.holidays:
        if holiday.date == day:
            return holiday
    return None


def _boundaries(
    profile: Profile, pool_key: str, start_utc: datetime, end_utc: datetime, step_minutes: int
) -> set[datetime]:
    """Return the instants in [start_utc, end_utc] where on-call status may change."""
    zone = profile.zone
    members = set(profile.pool(pool_key).members)
    candidates: set[datetime] = set()

    for day in _local_days(start_utc, end_utc, zone):
        candidates.add(local_to_utc(datetime.combine(day, time()), zone))
        for shift in profile.schedule.shifts:
            if shift.member in members and DAYS[day.weekday()] in shift.days:
                candidates.update(shift_window(shift, day, zone))

    for override in profile.schedule.overrides:
        if override.member in members:
            candidates.add(local_to_utc(override.start, zone))
            candidates.add(local_to_utc(override.end, zone))

    step = timedelta(minutes=step_minutes)
    sample = start_utc
    while sample < end_utc:
        candidates.add(sample)
        sample += step

    inside = {instant for instant in candidates if start_utc < instant < end_utc}
    return inside | {start_utc, end_utc}


def _local_days(start_utc: datetime, end_utc: datetime, zone: ZoneInfo) -> Iterator[date]:
    """Yield every local date in the range, plus one day either side for overnight shifts."""
    day = start_utc.astimezone(zone).date() - timedelta(days=1)
    last = end_utc.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            f"naive datetime {at.isoformat()} has no time zone; pass an aware UTC datetime"
        )
    return at
