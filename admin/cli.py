"""Admin commands: ``flask user create``, ``flask token create|revoke``, ``flask audit verify``."""

from __future__ import annotations

import logging
import sys
from typing import cast

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from admin.audit import verify_chains
from admin.passwords import PasswordPolicyError
from admin.scope import ROLES
from admin.tokens import DEFAULT_DAYS, create_token, revoke_token
from admin.users import UserError, create_user
from dispatch.store import account_by_key
from jobs.runtime import Runtime

logger = logging.getLogger(__name__)

CLI_ACTOR = "cli"

user_cli = AppGroup("user", help="Manage admin users.")
token_cli = AppGroup("token", help="Manage API tokens.")
audit_cli = AppGroup("audit", help="Check the dispatch log.")


def register(app: Flask) -> None:
    """Add the ``user``, ``token`` and ``audit`` command groups to the app."""
    app.cli.add_command(user_cli)
    app.cli.add_command(token_cli)
    app.cli.add_command(audit_cli)


def _runtime() -> Runtime:
    return cast(Runtime, current_app.extensions["rrd"])


def _account_id(session: Session, key: str | None) -> int | None:
    if key is None:
        return None
    account = account_by_key(session, key)
    if account is None:
        raise click.ClickException(f"account {key!r} not found; import its profile first")
    return account.id


@user_cli.command("create")
@click.argument("email")
@click.option("--account", "account_key", help="Account key; omit for a service admin.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(email: str, account_key: str | None, role: str, password_stdin: bool) -> None:
    """Create an admin user; without --account the user is a service admin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    runtime = _runtime()
    try:
        with runtime.db.write("cli user create") as session:
            user = create_user(
                session, email=email, password=password, role=role,
                account_id=_account_id(session, account_key), now=runtime.clock.now(),
                actor=CLI_ACTOR,
            )
            scope = f"account {account_key}" if account_key else "every account (service admin)"
            click.echo(f"user {user.id} {user.email} created: role {role} for {scope}")
    except (UserError, PasswordPolicyError) as exc:
        raise click.ClickException(str(exc)) from None


@token_cli.command("create")
@click.option("--account", "account_key", help="Account key the token may read.")
@click.option("--service-wide", is_flag=True, help="Let the token read every account.")
@click.option("--name", required=True, help="What the token is for, e.g. 'billing export'.")
@click.option("--days", type=click.IntRange(1, 366), default=DEFAULT_DAYS, show_default=True,
              help="Days until the token expires.")
def token_create(account_key: str | None, service_wide: bool, name: str, days: int) -> None:
    """Create a read-only API token and print it once."""
    if bool(account_key) == service_wide:
        raise click.UsageError("give either --account KEY or --service-wide")
    runtime = _runtime()
    with runtime.db.write("cli token create") as session:
        try:
            issued = create_token(
                session, account_id=_account_id(session, account_key), name=name, days=days,
                now=runtime.clock.now(), actor=CLI_ACTOR,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        token_id = issued.token.id
        expires = issued.token.expires_at.isoformat(timespec="seconds")
    click.echo(f"token {token_id} expires {expires}; it is shown only now:", err=True)
    click.echo(issued.secret)


@token_cli.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke an API token by its id."""
    runtime = _runtime()
    with runtime.db.write("cli token revoke") as session:
        try:
            token = revoke_token(session, token_id, now=runtime.clock.now(), actor=CLI_ACTOR)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"token {token.id} ({token.name}) revoked")


@audit_cli.command("verify")
@click.argument("account_key", required=False)
def audit_verify(account_key: str | None) -> None:
    """Verify the hash chain of one account, or of every account and the service events.

    Exits with status 1 when a chain is broken, naming its first broken link.
    """
    with _runtime().db.read() as session:
        try:
            reports = verify_chains(session, account_key)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
    for report in reports:
        click.echo(report.line())
    if any(report.broken is not None for report in reports):
        sys.exit(1)
