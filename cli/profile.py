"""Profile commands for account managers: ``flask profile import|export|history|check`` and
``flask simulate``.

Every command exits with 2 and a plain message for a usage problem (an unknown account, an
invalid profile, an unreadable file, an unreachable database), never with a traceback.
``flask profile check`` exits with 1 when it finds problems and 0 when the profile is clean.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dispatch import events
from dispatch.checks import DEFAULT_DAYS, check_profile
from dispatch.eligibility import AccountChannelState
from dispatch.engine import sms_senders
from dispatch.models import Account, Offer, OfferState, PoolState, ProfileVersion
from dispatch.phones import normalize_sender
from dispatch.profile import Profile, ProfileError, Route, load_profile
from dispatch.rotation import start_position
from dispatch.routing import match_route, needs_menu
from dispatch.schedule import local_to_utc, window_kinds
from dispatch.simulate import ESCALATION, NOBODY, SimulatedStep, simulate_chain
from dispatch.store import account_by_key, current_version, import_profile, version_by_number
from jobs.runtime import Runtime

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class CommandError(click.ClickException):
    """A problem the user can fix; printed as ``Error: <message>`` with exit code 2."""

    exit_code = 2


def register(app: Flask) -> None:
    """Add the ``profile`` command group and the ``simulate`` command to the app."""
    app.cli.add_command(profile_cli)
    app.cli.add_command(simulate_command)


def _database_errors_as_messages(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SQLAlchemyError as exc:
            logger.error("profile command failed on the database: %s", exc.__class__.__name__)
            detail = getattr(exc, "orig", None) or exc
            raise CommandError(
                f"database request failed ({exc.__class__.__name__}: {detail}); "
                "check DATABASE_URL and that the database is up and migrated "
                "(flask db upgrade)"
            ) from exc

    return run


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["rrd"]
    return runtime


# ---------------------------------------------------------------------------------------------
# Lookups shared by the commands.


def _account(session: Session, key: str) -> Account:
    """Return the account with ``key``; raise CommandError naming the known keys."""
    account = account_by_key(session, key)
    if account is not None:
        return account

    known = session.execute(select(Account.key).order_by(Account.key)).scalars().all()
    if not known:
        raise CommandError(
            f"account {key!r} not found: no accounts exist yet; "
            "create one with: flask profile import FILE"
        )
    raise CommandError(f"account {key!r} not found; known accounts: {', '.join(known)}")


def _current_profile(session: Session, account: Account) -> tuple[ProfileVersion, Profile]:
    row = current_version(session, account.id)
    if row is None:
        raise CommandError(f"account {account.key!r} has no profile version; import one first")
    return row, load_profile(row.document).profile


def _local_text(at: datetime, time_zone: str) -> str:
    return at.astimezone(ZoneInfo(time_zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def _utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------------------------
# flask profile import | export | history


# AppGroup runs each command inside the app context, also under FlaskCliRunner.
profile_cli = AppGroup("profile", help="Import, export, list and check account profiles.")


@profile_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--author", help="Who made the change. Default: your login name.")
@click.option("--reason", help="Why the profile changed. Default: 'imported from FILE'.")
@_database_errors_as_messages
def import_command(file: Path, author: str | None, reason: str | None) -> None:
    """Validate a profile YAML file and store it as the account's next version."""
    text = _read_text(file)
    author = author or getpass.getuser()
    reason = reason or f"imported from {file.name}"
    runtime = _runtime()

    try:
        with runtime.db.write("profile import") as session:
            result = import_profile(session, text, author=author, reason=reason,
                                    now=runtime.clock.now())
            key = session.get_one(Account, result.account_id).key
    except ProfileError as exc:
        for error in exc.errors:
            click.echo(f"  {error}", err=True)
        raise CommandError(
            f"{file}: the profile is invalid ({len(exc.errors)} error(s) above); nothing stored"
        ) from exc
    except ValueError as exc:
        raise CommandError(f"{file}: {exc}; nothing stored") from exc

    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    if not result.created:
        click.echo(f"{key}: unchanged, the document matches version {result.version}; "
                   "no new version created")
        return
    click.echo(f"{key}: stored profile version {result.version} by {author} ({reason})")
    if result.version == 1:
        click.echo("first version of this account; print it with: "
                   f"flask profile export {key}")
        return
    click.echo(f"changes from version {result.version - 1}:")
    click.echo(result.diff, nl=False)


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{file} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror}") from exc


@profile_cli.command("export")
@click.argument("account")
@click.option("--version", "version_number", type=click.IntRange(min=1),
              help="Version number to print. Default: the current version.")
@_database_errors_as_messages
def export_command(account: str, version_number: int | None) -> None:
    """Print a stored profile version as YAML."""
    runtime = _runtime()
    with runtime.db.write("profile export") as session:
        row = _account(session, account)
        version = _version(session, row, version_number)
        events.record(session, "profile_exported", at=runtime.clock.now(), account_id=row.id,
                      actor=getpass.getuser(), version=version.version)
        document = version.document
    click.echo(document, nl=False)


def _version(session: Session, account: Account, number: int | None) -> ProfileVersion:
    if number is None:
        row = current_version(session, account.id)
    else:
        row = version_by_number(session, account.id, number)
    if row is not None:
        return row

    latest = current_version(session, account.id)
    if latest is None:
        raise CommandError(f"account {account.key!r} has no profile versions yet")
    raise CommandError(
        f"account {account.key!r} has no version {number}; versions are 1 to {latest.version}"
    )


@profile_cli.command("history")
@click.argument("account")
@_database_errors_as_messages
def history_command(account: str) -> None:
    """List an account's profile versions with author, reason and time."""
    with _runtime().db.read() as session:
        row = _account(session, account)
        versions = session.execute(
            select(ProfileVersion)
            .where(ProfileVersion.account_id == row.id)
            .order_by(ProfileVersion.version.desc())
        ).scalars().all()
        zone = row.time_zone

    click.echo(f"{account}: {len(versions)} version(s), local time {zone}")
    for index, version in enumerate(versions):
        current = "  (current)" if index == 0 else ""
        click.echo(
            f"  version {version.version}: {_utc_text(version.created_at)}"
            f" / {_local_text(version.created_at, zone)}, by {version.author}{current}"
        )
        click.echo(f"    reason: {version.reason or '(none given)'}")


# ---------------------------------------------------------------------------------------------
# flask profile check


@profile_cli.command("check")
@click.argument("account")
@click.option("--days", type=click.IntRange(1, 366), default=DEFAULT_DAYS, show_default=True,
              help="How many days ahead to look for times when nobody is on call.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
@_database_errors_as_messages
def check_command(ctx: click.Context, account: str, days: int, as_json: bool) -> None:
    """Report what would page nobody: gaps in the schedule, lone pools, dead numbers.

    Exits with 1 when there are problems and 0 when the profile is clean.
    """
    runtime = _runtime()
    now = runtime.clock.now()
    with runtime.db.read() as session:
        row = _account(session, account)
        version, profile = _current_profile(session, row)
        run_state = AccountChannelState.load(session, row.id, sms_senders(profile))

    findings = check_profile(profile, run_state, now, days=days,
                             operator_desk=runtime.settings.OPERATOR_DESK_NUMBER or None)
    if as_json:
        click.echo(json.dumps({
            "account": account,
            "version": version.version,
            "checked_at": now.isoformat(),
            "days": days,
            "ok": not findings,
            "problems": [finding.as_dict() for finding in findings],
        }, indent=2, ensure_ascii=False))
    else:
        _print_findings(account, version.version, days, [f.message for f in findings])
    ctx.exit(1 if findings else 0)


def _print_findings(account: str, version: int, days: int, messages: list[str]) -> None:
    if not messages:
        click.echo(f"{account} (version {version}): no problems found in the next {days} days")
        return
    click.echo(f"{account} (version {version}): {len(messages)} problem(s) "
               f"in the next {days} days")
    for message in messages:
        click.echo(f"  - {message}")


# ---------------------------------------------------------------------------------------------
# flask simulate


@click.command("simulate")
@click.argument("account")
@click.option("--at", "at_text",
              help="When the call or text arrives: ISO 8601 with an offset "
                   "(2025-06-17T07:00Z) or a local time in the account's zone "
                   "('2025-06-17 02:00'). Default: now.")
@click.option("--number", help="Answering number called or texted. Default: the account's first.")
@click.option("--menu", help="Keypad digit the caller pressed (calls only).")
@click.option("--channel", type=click.Choice(["voice", "sms"]), default="voice",
              show_default=True, help="A call (voice) or a text (sms).")
@with_appcontext
@_database_errors_as_messages
def simulate_command(
    account: str, at_text: str | None, number: str | None, menu: str | None, channel: str
) -> None:
    """Show which route applies and the whole offer chain, without paging or changing anything.

    The pool pointer is read, never moved.
    """
    runtime = _runtime()
    with runtime.db.read() as session:
        row = _account(session, account)
        version, profile = _current_profile(session, row)
        at = _parse_at(at_text, profile) if at_text else runtime.clock.now()
        answering = _answering_number(number, profile)
        menu = _menu_digit(menu, channel)
        run_state = AccountChannelState.load(session, row.id, sms_senders(profile))
        pointers = _pointers(session, row.id)
        busy = _busy_members(session, row.id)

    desk = runtime.settings.OPERATOR_DESK_NUMBER or None
    click.echo(f"{account}, profile version {version.version}, at "
               f"{_local_text(at, profile.account.time_zone)} ({_utc_text(at)})")
    kinds = ", ".join(sorted(window_kinds(profile, at)))
    click.echo(f"{'call' if channel == 'voice' else 'text'} to {answering}"
               f"{f', menu {menu}' if menu else ''}; windows in effect: {kinds}")

    if channel == "voice" and menu is None and needs_menu(profile, answering, at):
        _print_menu_routes(profile, answering, at)
    route = match_route(profile, answering, at, channel, menu)
    if route is None:
        _print_no_route(profile, desk)
        return
    if route.action != "page":
        _print_settled_route(route, channel)
        return

    assert route.pool is not None
    pointer_key, pointer_position = pointers.get(route.pool, (None, None))
    _print_route_header(route, profile, pointer_key, pointer_position)
    steps = simulate_chain(profile, route, at, pointer_key, pointer_position, run_state,
                           busy=busy, operator_desk=desk)
    _print_steps(steps, route, channel)


def _parse_at(text: str, profile: Profile) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise CommandError(
            f"--at {text!r} is not a date and time; write ISO 8601 with an offset, such as "
            "2025-06-17T07:00Z, or a local time such as '2025-06-17 02:00'"
        ) from exc
    if parsed.tzinfo is None:
        return local_to_utc(parsed, profile.zone)
    return parsed.astimezone(UTC)


def _answering_number(raw: str | None, profile: Profile) -> str:
    numbers = profile.account.answering_numbers
    if raw is None:
        return numbers[0]
    number = normalize_sender(raw)
    if number is None or number not in numbers:
        raise CommandError(
            f"--number {raw!r} is not one of the account's answering numbers: {', '.join(numbers)}"
        )
    return number


def _menu_digit(raw: str | None, channel: str) -> str | None:
    if raw is None:
        return None
    if channel == "sms":
        raise CommandError("--menu applies to calls only; texts never choose from the menu")
    if len(raw) != 1 or not raw.isdigit():
        raise CommandError(f"--menu {raw!r} is not a keypad digit 0-9")
    return raw


def _pointers(session: Session, account_id: int) -> dict[str, tuple[str | None, int | None]]:
    rows = session.execute(select(PoolState).where(PoolState.account_id == account_id)).scalars()
    return {row.pool_key: (row.last_member_key, row.last_position) for row in rows}


def _busy_members(session: Session, account_id: int) -> set[str]:
    keys = session.execute(
        select(Offer.member_key).where(
            Offer.account_id == account_id,
            Offer.state == OfferState.LIVE,
            Offer.member_key.is_not(None),
        )
    ).scalars()
    return {key for key in keys if key is not None}


def _print_menu_routes(profile: Profile, answering: str, at: datetime) -> None:
    click.echo("the caller hears the menu:")
    for option in profile.caller_script.menu:
        chosen = match_route(profile, answering, at, "voice", option.digit)
        target = f"route {chosen.key} ({chosen.action})" if chosen else "no route"
        click.echo(f"  {option.digit} ({option.label}): {target}")
    click.echo("the chain below is for a caller who presses nothing (use --menu to choose)")


def _print_no_route(profile: Profile, desk: str | None) -> None:
    line = profile.final_escalation_line(desk)
    alert = f"the final escalation line {line} is alerted by SMS" if line else (
        "no final escalation line is configured, so nobody is alerted")
    click.echo(f"no route: the dispatch ends as no_one_available (no_route); {alert}")


def _print_settled_route(route: Route, channel: str) -> None:
    if route.action == "forward":
        how = "the call is connected to" if channel == "voice" else "the text is forwarded to"
        click.echo(f"route {route.key}: forward; {how} {route.forward_to}; nobody is paged")
        return
    pool = f" for pool {route.message_pool}" if route.message_pool else ""
    click.echo(f"route {route.key}: take a message{pool}; the dispatch ends as message_taken "
               "and nobody is paged")


def _print_route_header(
    route: Route, profile: Profile, pointer_key: str | None, pointer_position: int | None
) -> None:
    assert route.pool is not None
    backups = ", ".join(route.backups) or "none"
    click.echo(f"route {route.key}: page pool {route.pool} by {'+'.join(route.channels)}, "
               f"{route.rounds} round(s), backups {backups}, chain cap "
               f"{route.max_chain_minutes} min")

    order = profile.pool(route.pool).members
    if pointer_key is None and pointer_position is None:
        click.echo("pool pointer: none yet, so the rotation starts at the top of the pool")
    elif pointer_key in order:
        click.echo(f"pool pointer: {pointer_key} was offered last")
    elif order:
        resume = order[start_position(order, pointer_key, pointer_position)]
        click.echo(f"pool pointer: {pointer_key} was offered last and is no longer in the pool, "
                   f"so the rotation continues from position {pointer_position} ({resume})")


def _print_steps(steps: list[SimulatedStep], route: Route, channel: str) -> None:
    click.echo("chain, if nobody accepts:")
    for number, step in enumerate(steps, start=1):
        for key, reason in step.skipped:
            click.echo(f"       skip {key}: {reason}")
        click.echo(f"  {number:>2}. {_step_text(step, route, channel)}")
    if any(step.after_cap for step in steps):
        click.echo(f"  * starts only if earlier offers end before their windows, because the "
                   f"chain stops {route.max_chain_minutes} min after the first offer")
    click.echo("(simulation only: nothing was sent and the pool pointer was not moved)")


def _step_text(step: SimulatedStep, route: Route, channel: str) -> str:
    at = f"+{step.start_seconds} s"
    if step.kind == ESCALATION:
        if step.number is None:
            return f"{at} final escalation: none configured, so nobody is alerted"
        return f"{at} final escalation: {step.number} by {'+'.join(step.channels)}"
    if step.kind == NOBODY:
        return _nobody_text(step, route, channel)

    label = f"round {step.round}" if step.round is not None else "backup"
    mark = " *" if step.after_cap else ""
    return (f"{at} {label}: {step.member_key} ({step.member_name}) by "
            f"{'+'.join(step.channels)}, window {step.window_seconds} s{mark}")


def _nobody_text(step: SimulatedStep, route: Route, channel: str) -> str:
    text = "nobody eligible: the dispatch ends as no_one_available"
    if step.number is None:
        return text + "; no final escalation line is configured, so nobody is alerted"
    text += f"; the final escalation line {step.number} is alerted by SMS"
    if channel == "voice":
        text += f", and the caller is connected to {route.fallback_line or step.number}"
    return text
