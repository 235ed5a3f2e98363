"""The account profile: the runbook document that account managers edit, and its validation.

A profile is YAML with the sections ``account``, ``business_hours``, ``caller_script``,
``members``, ``pools``, ``schedule`` and ``routes``. ``load_profile`` parses it, normalises
phone numbers to E.164 and collects every error, each as ``"<path>: <message>"`` with the
document path (``pools[1].members[2]: unknown member 'bob'``), so that one save shows all
problems at once. Findings that do not stop a profile from working are returned as warnings.

Build profiles with ``load_profile`` or ``load_profile_dict``. ``Profile.model_validate``
checks only the shape of each field, not references between sections.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from dispatch.phones import normalize_e164

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WindowKind = Literal["business_hours", "after_hours", "holiday", "always"]
Channel = Literal["voice", "sms"]
Action = Literal["page", "message", "forward"]


class ProfileError(ValueError):
    """A profile document with one or more errors, each ``"<path>: <message>"``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {error}" for error in errors)
        super().__init__(f"profile has {len(errors)} error(s):\n{lines}")


# ---------------------------------------------------------------------------------------------
# Field types. Each validator raises ValueError with a message an account manager can act on.


def _text_pattern(regex: str, description: str) -> Callable[[Any], str]:
    compiled = re.compile(regex)

    def validate(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not valid: {description}")
        return value

    return validate


def _phone(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(
            f'{value!r} is not a phone number; write it in quotes, e.g. "+13125550101"'
        )
    return normalize_e164(value)


_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")


def clock_minutes(clock: str) -> int:
    """Convert ``"HH:MM"`` (``"24:00"`` allowed) to minutes since midnight."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock_time(value: Any) -> str:
    match = _CLOCK_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{value!r} is not a time; write it as "HH:MM", e.g. "17:00"')

    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"{value!r} is not a time of day between 00:00 and 24:00")
    return f"{hours:02d}:{minutes:02d}"


def _time_range(value: Any) -> str:
    parts = value.split("-") if isinstance(value, str) else []
    if len(parts) != 2:
        raise ValueError(
            f'{value!r} is not a time range; write it as "HH:MM-HH:MM", e.g. "08:00-17:00"'
        )

    start, end = _clock_time(parts[0]), _clock_time(parts[1])
    if clock_minutes(start) >= clock_minutes(end):
        raise ValueError(f"{value!r} ends before it starts; business hours cannot cross midnight")
    return f"{start}-{end}"


def _menu_digit(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]", value):
        raise ValueError(f"{value!r} is not a keypad digit 0-9")
    return value


def _time_zone(value: Any) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as America/Chicago"
        ) from exc
    return str(value)


def _local_datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(parsed, datetime):
        raise ValueError(f'{value!r} is not a date and time; write it as "2025-06-10T17:00"')
    if parsed.tzinfo is not None:
        raise ValueError(f"{value!r} has a UTC offset; write the account's local time without one")
    return parsed


def _format_local_datetime(value: datetime) -> str:
    return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")


def _https_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https://[^\s]+", value):
        raise ValueError(f"{value!r} is not an https:// URL")
    return value


_KEY_RULE = "use lowercase letters, digits and hyphens, starting with a letter or digit"

Key = Annotated[str, BeforeValidator(_text_pattern(r"[a-z0-9][a-z0-9-]*", _KEY_RULE))]
EnvName = Annotated[
    str,
    BeforeValidator(
        _text_pattern(r"[A-Z_][A-Z0-9_]*", "an environment variable name such as ACME_TOKEN")
    ),
]
AccountSid = Annotated[
    str, BeforeValidator(_text_pattern(r"AC[0-9a-f]{32}", "AC followed by 32 hex digits"))
]
MessagingServiceSid = Annotated[
    str, BeforeValidator(_text_pattern(r"MG[0-9a-f]{32}", "MG followed by 32 hex digits"))
]
PhoneNumber = Annotated[str, BeforeValidator(_phone)]
ClockTime = Annotated[str, BeforeValidator(_clock_time)]
TimeRange = Annotated[str, BeforeValidator(_time_range)]
MenuDigit = Annotated[str, BeforeValidator(_menu_digit)]
TimeZoneName = Annotated[str, BeforeValidator(_time_zone)]
HttpsUrl = Annotated[str, BeforeValidator(_https_url)]
LocalDateTime = Annotated[
    datetime,
    BeforeValidator(_local_datetime),
    PlainSerializer(_format_local_datetime, return_type=str, when_used="json"),
]
Text = Annotated[str, Field(min_length=1)]


# ---------------------------------------------------------------------------------------------
# The document.


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TwilioSettings(_Document):
    """Per-account Twilio settings; each falls back to the service-wide value when unset."""

    account_sid: AccountSid | None = None
    auth_token_env: EnvName | None = None
    messaging_service_sid: MessagingServiceSid | None = None
    sms_from: PhoneNumber | None = None


class SecureMessaging(_Document):
    """The client's endpoint for messages that must not travel by SMS."""

    url: HttpsUrl
    secret_env: EnvName


class Account(_Document):
    """The client: its key, numbers, time zone and service-wide overrides."""

    key: Key
    name: Text
    time_zone: TimeZoneName
    answering_numbers: tuple[PhoneNumber, ...] = Field(min_length=1)
    twilio: TwilioSettings | None = None
    phi: bool = False
    final_escalation: PhoneNumber | None = None
    secure_messaging: SecureMessaging | None = None
    promised_response_minutes: int = Field(default=15, ge=1, le=24 * 60)
    last_reviewed: date | None = None

    @property
    def sms_sender(self) -> str:
        """The number offers are texted from: ``twilio.sms_from`` or the first answering number."""
        if self.twilio is not None and self.twilio.sms_from is not None:
            return self.twilio.sms_from
        return self.answering_numbers[0]


class BusinessHours(_Document):
    """Opening hours per weekday in the account's local time; a missing day is closed."""

    mon: tuple[TimeRange, ...] = ()
    tue: tuple[TimeRange, ...] = ()
    wed: tuple[TimeRange, ...] = ()
    thu: tuple[TimeRange, ...] = ()
    fri: tuple[TimeRange, ...] = ()
    sat: tuple[TimeRange, ...] = ()
    sun: tuple[TimeRange, ...] = ()

    def ranges(self, day: str) -> tuple[tuple[int, int], ...]:
        """Return the day's opening hours as (start, end) minutes since midnight."""
        spans: tuple[str, ...] = getattr(self, day)
        return tuple(
            (clock_minutes(start), clock_minutes(end))
            for start, end in (span.split("-") for span in spans)
        )

    def is_empty(self) -> bool:
        return not any(getattr(self, day) for day in DAYS)


class MenuOption(_Document):
    digit: MenuDigit
    label: Text


class CallerScript(_Document):
    """The caller's script: greeting, notices, menu and reason prompt, played in that order."""

    language: Text = "en-US"
    greeting: Text
    recording_notice: Text | None = None
    emergency_notice: Text | None = None
    menu: tuple[MenuOption, ...] = ()
    reason_prompt: Text = "After the tone, briefly tell us what is wrong."

    def menu_digits(self) -> tuple[str, ...]:
        return tuple(option.digit for option in self.menu)


class MemberPhones(_Document):
    voice: PhoneNumber | None = None
    sms: PhoneNumber | None = None


class Member(_Document):
    key: Key
    name: Text
    phones: MemberPhones
    active: bool = True

    def number(self, channel: str) -> str | None:
        """Return the member's number for ``voice`` or ``sms``, or None when not configured."""
        number: str | None = getattr(self.phones, channel)
        return number


class Pool(_Document):
    """An ordered list of member keys for round robin."""

    key: Key
    members: tuple[Key, ...] = ()


class Shift(_Document):
    """A weekly shift in local time; ``end`` at or before ``start`` means it ends the next day."""

    member: Key
    days: tuple[Day, ...] = Field(min_length=1)
    start: ClockTime
    end: ClockTime

    @property
    def start_minutes(self) -> int:
        return clock_minutes(self.start)

    @property
    def end_minutes(self) -> int:
        return clock_minutes(self.end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minutes <= self.start_minutes


class Override(_Document):
    """A dated change in local time that wins over weekly shifts: time off or cover."""

    member: Key
    start: LocalDateTime
    end: LocalDateTime
    on_call: bool
    note: str | None = None


class Holiday(_Document):
    """A local calendar day that counts as a holiday.

    With ``on_call`` set, only those members are on call from local midnight to midnight and
    weekly shifts do not apply during that day.
    """

    date: date
    name: Text
    on_call: tuple[Key, ...] | None = None


class Schedule(_Document):
    shifts: tuple[Shift, ...] = ()
    overrides: tuple[Override, ...] = ()
    holidays: tuple[Holiday, ...] = ()


class Route(_Document):
    """An ordered rule that turns an inbound call or text into a page, a message or a forward."""

    key: Key
    numbers: tuple[PhoneNumber, ...] | None = Field(default=None, min_length=1)
    when: tuple[WindowKind, ...] = Field(default=("always",), min_length=1)
    menu: MenuDigit | None = None
    action: Action
    pool: Key | None = None
    channels: tuple[Channel, ...] = Field(default=("voice", "sms"), min_length=1)
    ring_timeout_seconds: int = Field(default=25, ge=10, le=60)
    ack_window_voice_seconds: int = Field(default=90, le=3600)
    ack_window_sms_seconds: int = Field(default=120, ge=30, le=3600)
    rounds: int = Field(default=2, ge=1, le=10)
    backups: tuple[Key, ...] = ()
    fallback_line: PhoneNumber | None = None
    max_chain_minutes: int = Field(default=10, ge=1, le=120)
    forward_to: PhoneNumber | None = None
    message_pool: Key | None = None


class Profile(_Document):
    """One version of an account's runbook, with phone numbers in E.164."""

    account: Account
    business_hours: BusinessHours = BusinessHours()
    caller_script: CallerScript
    members: tuple[Member, ...] = ()
    pools: tuple[Pool, ...] = ()
    schedule: Schedule = Schedule()
    routes: tuple[Route, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.account.time_zone)

    def member(self, key: str) -> Member:
        """Return the member with ``key``; raise KeyError when there is none."""
        for member in self.members:
            if member.key == key:
                return member
        raise KeyError(f"unknown member {key!r}")

    def pool(self, key: str) -> Pool:
        """Return the pool with ``key``; raise KeyError when there is none."""
        for pool in self.pools:
            if pool.key == key:
                return pool
        raise KeyError(f"unknown pool {key!r}")

    def route(self, key: str) -> Route:
        """Return the route with ``key``; raise KeyError when there is none."""
        for route in self.routes:
            if route.key == key:
                return route
        raise KeyError(f"unknown route {key!r}")

    def members_by_number(self) -> dict[str, Member]:
        """Map every voice and SMS number of the roster to its member."""
        owners: dict[str, Member] = {}
        for member in self.members:
            for number in (member.phones.voice, member.phones.sms):
                if number is not None:
                    owners[number] = member
        return owners

    def route_numbers(self, route: Route) -> tuple[str, ...]:
        """Return the answering numbers a route applies to (all of them when it names none)."""
        return route.numbers if route.numbers is not None else self.account.answering_numbers

    def final_escalation_line(self, default: str | None) -> str | None:
        """Return the account's own final escalation line, else ``default`` (the service's)."""
        return self.account.final_escalation or default


@dataclass(frozen=True)
class LoadedProfile:
    profile: Profile
    warnings: list[str]


# ---------------------------------------------------------------------------------------------
# Loading, dumping and comparing.


def load_profile(text: str) -> LoadedProfile:
    """Parse and validate a YAML profile; raise ProfileError listing every error."""
    try:
        data = yaml.load(text, Loader=_ProfileLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ProfileError([_format_yaml_error(exc)]) from exc

    if data is None:
        raise ProfileError(["document: the profile is empty"])
    return load_profile_dict(data)


def load_profile_dict(data: Mapping[str, Any]) -> LoadedProfile:
    """Validate a profile already parsed into Python objects; raise ProfileError on errors."""
    report = _Report()
    profile: Profile | None = None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        report.errors.extend(_format_validation_error(error) for error in exc.errors())

    if isinstance(data, Mapping):
        _check_document(_Parts.from_raw(data), report)

    if report.errors or profile is None:
        raise ProfileError(report.errors)
    return LoadedProfile(profile=profile, warnings=report.warnings)


def dump_profile_yaml(profile: Profile) -> str:
    """Write a profile as YAML in document order; ``load_profile`` reads it back equal."""
    data = profile.model_dump(mode="json", exclude_none=True)
    return yaml.dump(
        data,
        Dumper=_ProfileDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def canonical_json(profile: Profile) -> str:
    """Serialise a profile to compact JSON with sorted keys, equal for equal profiles."""
    data = profile.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def diff_profiles(old_yaml: str, new_yaml: str) -> str:
    """Return a unified diff of two profiles after loading and dumping each one.

    An empty document stands for "no profile yet", so the diff of a first version shows
    every line as added.
    """
    old = _dump_lines(old_yaml)
    new = _dump_lines(new_yaml)
    return "".join(difflib.unified_diff(old, new, fromfile="old", tofile="new"))


def _dump_lines(text: str) -> list[str]:
    if not text.strip():
        return []
    return dump_profile_yaml(load_profile(text).profile).splitlines(keepends=True)


class _ProfileLoader(yaml.SafeLoader):
    """A SafeLoader for documents typed by people who are not engineers.

    YAML 1.1 reads ``17:00`` as the base-60 integer 1020, ``+13125550100`` as an integer without
    its plus, and ``0312`` as octal. Here only plain decimal numbers are numbers, so clock times
    and phone numbers stay text even without quotes. A key repeated in one mapping is an error,
    because YAML would otherwise keep only the last value.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_ProfileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ProfileLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)
_ProfileLoader.add_implicit_resolver(
    _FLOAT_TAG, re.compile(r"^-?(?:[0-9]+\.[0-9]*|\.[0-9]+)$"), list("-.0123456789")
)


class _ProfileDumper(yaml.SafeDumper):
    """Writes lists of plain values on one line (``days: [mon, tue]``) and the rest as blocks.

    Times, dates and phone numbers are always double-quoted, so that ``08:00`` and ``17:00``
    look alike and other YAML readers keep them as text.
    """

    def represent_list(self, data: Iterable[Any]) -> yaml.SequenceNode:
        items = list(data)
        flow = all(not isinstance(item, (dict, list)) for item in items)
        return self.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)

    def represent_text(self, data: str) -> yaml.ScalarNode:
        style = '"' if _NUMERIC_TEXT_RE.fullmatch(data) else None
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_NUMERIC_TEXT_RE = re.compile(r"[+0-9][0-9:+\-T. ]*")
_ProfileDumper.add_representer(list, _ProfileDumper.represent_list)
_ProfileDumper.add_representer(str, _ProfileDumper.represent_text)


def _format_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return f"document: not valid YAML: {exc}"


def _format_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = str(part)
    return path or "document"


def _format_validation_error(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown field"
        allowed = _allowed_fields(loc)
        if allowed:
            message += f"; expected one of: {', '.join(allowed)}"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind == "tuple_type":
        message = "must be a list"
    elif kind == "too_short" and "min_length" in error.get("ctx", {}):
        message = f"must list at least {error['ctx']['min_length']} item(s)"
    else:
        message = error["msg"]
    return f"{_format_path(loc)}: {message}"


def _allowed_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Return the field names of the model that contains the unknown field at ``loc``."""
    model: type[BaseModel] | None = Profile
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        model = _model_in(info.annotation) if info is not None else None
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Rules that span fields or sections. They run on every element that parsed on its own, so a
# document with a malformed member still gets its pools and routes checked.

_M = TypeVar("_M", bound=BaseModel)


@dataclass
class _Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")


@dataclass
class _Parts:
    """The elements of a raw document that validate on their own, with their list positions."""

    account: Account | None
    business_hours: BusinessHours | None
    caller_script: CallerScript | None
    members: list[tuple[int, Member]]
    pools: list[tuple[int, Pool]]
    shifts: list[tuple[int, Shift]]
    overrides: list[tuple[int, Override]]
    holidays: list[tuple[int, Holiday]]
    routes: list[tuple[int, Route]]
    # Keys are read from the raw document as well, so that a member with a bad phone number
    # is not also reported as unknown wherever a pool or route names it. None means the
    # section is not a list, so references to it cannot be checked.
    member_keys: set[str] | None
    pool_keys: set[str] | None

    @classmethod
    def from_raw(cls, data: Mapping[str, Any]) -> _Parts:
        schedule = data.get("schedule")
        schedule = schedule if isinstance(schedule, Mapping) else {}
        business_hours = data.get("business_hours", {})
        return cls(
            account=_validate_one(Account, data.get("account")),
            business_hours=_validate_one(BusinessHours, business_hours),
            caller_script=_validate_one(CallerScript, data.get("caller_script")),
            members=_validate_each(Member, data.get("members")),
            pools=_validate_each(Pool, data.get("pools")),
            shifts=_validate_each(Shift, schedule.get("shifts")),
            overrides=_validate_each(Override, schedule.get("overrides")),
            holidays=_validate_each(Holiday, schedule.get("holidays")),
            routes=_validate_each(Route, data.get("routes")),
            member_keys=_raw_keys(data.get("members")),
            pool_keys=_raw_keys(data.get("pools")),
        )


def _validate_one(model: type[_M], raw: Any) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _validate_each(model: type[_M], raw: Any) -> list[tuple[int, _M]]:
    if not isinstance(raw, list):
        return []
    valid = []
    for index, item in enumerate(raw):
        parsed = _validate_one(model, item)
        if parsed is not None:
            valid.append((index, parsed))
    return valid


def _raw_keys(raw: Any) -> set[str] | None:
    if raw is None:
        return set()
    if not isinstance(raw, list):
        return None
    return {
        item["key"]
        for item in raw
        if isinstance(item, Mapping) and isinstance(item.get("key"), str)
    }


def _check_document(parts: _Parts, report: _Report) -> None:
    _check_account(parts, report)
    _check_business_hours(parts, report)
    _check_caller_script(parts, report)
    _check_members(parts, report)
    _check_pools(parts, report)
    _check_shifts(parts, report)
    _check_overrides(parts, report)
    _check_holidays(parts, report)
    _check_routes(parts, report)
    _warn_unreachable_routes(parts, report)
    _warn_unscheduled_members(parts, report)


def _check_account(parts: _Parts, report: _Report) -> None:
    if parts.account is None:
        return

    _report_repeats(
        parts.account.answering_numbers, "account.answering_numbers", "answering number", report
    )
    if parts.account.final_escalation is None:
        report.warn(
            "account.final_escalation",
            "not set, so the service-wide OPERATOR_DESK_NUMBER is the final escalation line",
        )


def _check_business_hours(parts: _Parts, report: _Report) -> None:
    if parts.business_hours is None:
        return

    for day in DAYS:
        spans = sorted(enumerate(parts.business_hours.ranges(day)), key=lambda item: item[1])
        for (_, (_, previous_end)), (index, (start, _)) in zip(spans, spans[1:], strict=False):
            if start < previous_end:
                report.error(
                    f"business_hours.{day}[{index}]", "overlaps another range of the same day"
                )


def _check_caller_script(parts: _Parts, report: _Report) -> None:
    if parts.caller_script is not None:
        _report_repeats(
            parts.caller_script.menu_digits(), "caller_script.menu", "menu digit", report
        )


def _check_members(parts: _Parts, report: _Report) -> None:
    _report_repeated_keys(parts.members, "members", "member", report)

    owners: dict[str, tuple[str, str]] = {}
    for index, member in parts.members:
        if member.phones.voice is None and member.phones.sms is None:
            report.error(f"members[{index}].phones", "give a voice number, an sms number or both")

        for channel in ("voice", "sms"):
            number = member.number(channel)
            if number is None:
                continue
            path = f"members[{index}].phones.{channel}"
            owner = owners.setdefault(number, (member.key, path))
            if owner[0] != member.key:
                report.error(
                    path,
                    f"{number} is already {owner[0]!r}'s number ({owner[1]});"
                    " one number belongs to one person",
                )


def _check_pools(parts: _Parts, report: _Report) -> None:
    _report_repeated_keys(parts.pools, "pools", "pool", report)

    for index, pool in parts.pools:
        path = f"pools[{index}]"
        _report_unknown(pool.members, parts.member_keys, f"{path}.members", "member", report)
        _report_repeats(pool.members, f"{path}.members", "member", report)
        if not pool.members:
            report.warn(path, f"pool {pool.key!r} is empty, so routes to it reach nobody")
        elif len(pool.members) == 1:
            report.warn(
                path, f"pool {pool.key!r} has one member, so every round offers the same person"
            )


def _check_shifts(parts: _Parts, report: _Report) -> None:
    for index, shift in parts.shifts:
        path = f"schedule.shifts[{index}]"
        _report_unknown(
            [shift.member], parts.member_keys, f"{path}.member", "member", report, indexed=False
        )
        _report_repeats(shift.days, f"{path}.days", "day", report)
        if shift.start == "24:00":
            report.error(
                f"{path}.start", "a shift cannot start at 24:00; use 00:00 of the next day"
            )
        elif shift.start == shift.end:
            report.error(path, f"starts and ends at {shift.start}, so it has no length")

    _report_overlapping_shifts(parts, report)


def _report_overlapping_shifts(parts: _Parts, report: _Report) -> None:
    """Report weekly shifts of one member that cover the same time of the week."""
    week = 7 * MINUTES_PER_DAY
    spans = [
        (index, shift, day, _week_span(shift, day))
        for index, shift in parts.shifts
        for day in set(shift.days)
    ]
    reported: set[tuple[int, int]] = set()
    for first, (index_a, shift_a, _, span_a) in enumerate(spans):
        for index_b, shift_b, day_b, span_b in spans[first + 1 :]:
            if (
                index_a == index_b
                or shift_a.member != shift_b.member
                or (index_a, index_b) in reported
            ):
                continue
            if any(
                _overlaps(span_a, (span_b[0] + turn, span_b[1] + turn)) for turn in (-week, 0, week)
            ):
                reported.add((index_a, index_b))
                later, earlier = max(index_a, index_b), min(index_a, index_b)
                report.error(
                    f"schedule.shifts[{later}]",
                    f"overlaps schedule.shifts[{earlier}] for {shift_a.member!r} around {day_b}",
                )


def _week_span(shift: Shift, day: str) -> tuple[int, int]:
    start = DAYS.index(day) * MINUTES_PER_DAY + shift.start_minutes
    length = (shift.end_minutes - shift.start_minutes) % MINUTES_PER_DAY or MINUTES_PER_DAY
    return start, start + length


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _check_overrides(parts: _Parts, report: _Report) -> None:
    for index, override in parts.overrides:
        path = f"schedule.overrides[{index}]"
        _report_unknown(
            [override.member], parts.member_keys, f"{path}.member", "member", report, indexed=False
        )
        if override.end <= override.start:
            report.error(f"{path}.end", "must be after start")


def _check_holidays(parts: _Parts, report: _Report) -> None:
    first_index: dict[date, int] = {}
    for index, holiday in parts.holidays:
        seen = first_index.setdefault(holiday.date, index)
        if seen != index:
            report.error(
                f"schedule.holidays[{index}].date",
                f"duplicate holiday date {holiday.date} (also schedule.holidays[{seen}])",
            )

        if holiday.on_call is not None:
            path = f"schedule.holidays[{index}].on_call"
            _report_unknown(holiday.on_call, parts.member_keys, path, "member", report)


def _check_routes(parts: _Parts, report: _Report) -> None:
    _report_repeated_keys(parts.routes, "routes", "route", report)
    if not parts.routes:
        report.warn("routes", "no routes, so no call or text is dispatched")

    for index, route in parts.routes:
        path = f"routes[{index}]"
        _check_route_targets(route, path, parts, report)
        _check_route_windows(route, path, report)
        _check_route_menu_and_numbers(route, path, parts, report)


def _check_route_targets(route: Route, path: str, parts: _Parts, report: _Report) -> None:
    if route.action == "page" and route.pool is None:
        report.error(f"{path}.pool", "a page route needs a pool")
    if route.action == "forward" and route.forward_to is None:
        report.error(f"{path}.forward_to", "a forward route needs forward_to")

    for name, value in (("pool", route.pool), ("message_pool", route.message_pool)):
        if value is not None:
            _report_unknown(
                [value], parts.pool_keys, f"{path}.{name}", "pool", report, indexed=False
            )
    _report_unknown(route.backups, parts.member_keys, f"{path}.backups", "member", report)
    _report_repeats(route.backups, f"{path}.backups", "backup", report)


def _check_route_windows(route: Route, path: str, report: _Report) -> None:
    shortest_voice_window = route.ring_timeout_seconds + 20
    if route.ack_window_voice_seconds < shortest_voice_window:
        report.error(
            f"{path}.ack_window_voice_seconds",
            f"{route.ack_window_voice_seconds} is too short; it must be at least the ring timeout"
            f" plus 20 seconds ({shortest_voice_window})",
        )
    _report_repeats(route.when, f"{path}.when", "window", report)
    _report_repeats(route.channels, f"{path}.channels", "channel", report)


def _check_route_menu_and_numbers(route: Route, path: str, parts: _Parts, report: _Report) -> None:
    if route.menu is not None and parts.caller_script is not None:
        digits = parts.caller_script.menu_digits()
        if route.menu not in digits:
            listed = ", ".join(digits) or "none"
            report.error(
                f"{path}.menu",
                f"digit {route.menu!r} is not in caller_script.menu (digits: {listed})",
            )

    if route.numbers is not None and parts.account is not None:
        answering = parts.account.answering_numbers
        for position, number in enumerate(route.numbers):
            if number not in answering:
                report.error(
                    f"{path}.numbers[{position}]",
                    f"{number} is not one of account.answering_numbers",
                )


# The kinds of window that hold at one instant. Every instant falls into exactly one cell.
_CELLS: dict[str, frozenset[str]] = {
    "business_hours": frozenset({"business_hours"}),
    "after_hours": frozenset({"after_hours"}),
    "holiday": frozenset({"holiday", "after_hours"}),
}


def _route_cells(route: Route) -> set[str]:
    if "always" in route.when:
        return set(_CELLS)
    return {cell for cell, kinds in _CELLS.items() if kinds & set(route.when)}


def _warn_unreachable_routes(parts: _Parts, report: _Report) -> None:
    """Warn about routes that no call can reach and about times when texts reach no route."""
    if parts.account is None or parts.business_hours is None:
        return

    cells = {"after_hours"}
    if not parts.business_hours.is_empty():
        cells.add("business_hours")
    if parts.holidays:
        cells.add("holiday")

    answering = parts.account.answering_numbers
    earlier: list[Route] = []
    for index, route in parts.routes:
        numbers = route.numbers if route.numbers is not None else answering
        reachable = [(number, cell) for number in numbers for cell in _route_cells(route) & cells]
        if not reachable:
            report.warn(
                f"routes[{index}]",
                f"route {route.key!r} never applies: its windows never occur in this profile",
            )
        elif all(
            _first_match(earlier, answering, number, cell, route.menu) for number, cell in reachable
        ):
            report.warn(
                f"routes[{index}]", f"route {route.key!r} never applies: earlier routes match first"
            )
        earlier.append(route)

    for number in answering:
        for cell in sorted(cells):
            if _first_match(earlier, answering, number, cell, None) is None:
                report.warn(
                    "routes",
                    f"texts, and calls without a menu choice, to {number}"
                    f" match no route during {cell}",
                )


def _first_match(
    routes: list[Route], answering: tuple[str, ...], number: str, cell: str, menu: str | None
) -> Route | None:
    """Return the first route that takes requests with ``menu`` to ``number`` in ``cell``."""
    for route in routes:
        numbers = route.numbers if route.numbers is not None else answering
        if number in numbers and cell in _route_cells(route) and route.menu in (None, menu):
            return route
    return None


def _warn_unscheduled_members(parts: _Parts, report: _Report) -> None:
    scheduled = {shift.member for _, shift in parts.shifts}
    paged = {key for _, pool in parts.pools for key in pool.members}
    paged |= {key for _, route in parts.routes for key in route.backups}

    if parts.members and not scheduled:
        report.warn("schedule.shifts", "no shifts, so every member is on call at all times")
    for index, member in parts.members:
        if scheduled and member.key not in scheduled:
            report.warn(
                f"members[{index}]", f"{member.key!r} has no shifts, so is on call at all times"
            )
        if member.key not in paged:
            report.warn(
                f"members[{index}]",
                f"{member.key!r} is in no pool and no backups, so is never paged",
            )


def _report_repeated_keys(
    items: list[tuple[int, Any]], section: str, noun: str, report: _Report
) -> None:
    first_index: dict[str, int] = {}
    for index, item in items:
        seen = first_index.setdefault(item.key, index)
        if seen != index:
            report.error(
                f"{section}[{index}].key",
                f"duplicate {noun} key {item.key!r} (also {section}[{seen}])",
            )


def _report_repeats(values: Iterable[Any], path: str, noun: str, report: _Report) -> None:
    seen: set[Any] = set()
    for position, value in enumerate(values):
        if value in seen:
            report.error(f"{path}[{position}]", f"duplicate {noun} {str(value)!r}")
        seen.add(value)


def _report_unknown(
    values: Iterable[str],
    known: set[str] | None,
    path: str,
    noun: str,
    report: _Report,
    indexed: bool = True,
) -> None:
    if known is None:
        return
    for position, value in enumerate(values):
        if value not in known:
            report.error(f"{path}[{position}]" if indexed else path, f"unknown {noun} {value!r}")
