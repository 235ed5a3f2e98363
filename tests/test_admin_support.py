"""Helpers for the admin, API and audit tests: an app, seeded accounts, users and dispatches.

This module holds no tests. Test modules import its functions and wrap them in fixtures.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from admin.tokens import create_token
from admin.users import create_user
from dispatch.db import Database
from dispatch.engine import DispatchEngine, EngineConfig
from dispatch.models import Channel, ChannelState, Dispatch, Receipt
from dispatch.outcomes import accept, end_channel
from dispatch.store import account_by_key, import_profile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# 18:00 on a Tuesday in Chicago: after hours, when Bob, Carol and Dave are on call.
AFTER_HOURS = datetime(2025, 6, 10, 23, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
DESK = "+13125550190"


def app_config(db_url: str, redis_prefix: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATABASE_URL": db_url,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "QUEUE_NAME": f"{redis_prefix}:q",
        "TWILIO_AUTH_TOKEN": "test-token",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "SECRET_KEY": "x" * 32,
        "PUBLIC_BASE_URL": "https://dispatch.example.org",
        "OPERATOR_DESK_NUMBER": DESK,
    }


def make_app(db_url: str, redis_prefix: str, **overrides: Any) -> Flask:
    from app import create_app

    return create_app({**app_config(db_url, redis_prefix), **overrides})


def import_example(database: Database, name: str, at: datetime = AFTER_HOURS) -> int:
    """Import ``examples/<name>.yaml`` and return the account id."""
    text = (EXAMPLES / f"{name}.yaml").read_text()
    with database.write("test import") as session:
        return import_profile(session, text, author="test", reason="seed", now=at).account_id


def add_user(
    database: Database, email: str, role: str, account_key: str | None,
    at: datetime = AFTER_HOURS,
) -> int:
    with database.write("test user") as session:
        account = account_by_key(session, account_key) if account_key else None
        user = create_user(session, email=email, password=PASSWORD, role=role,
                           account_id=account.id if account else None, now=at, actor="test")
        return user.id


def add_token(
    database: Database, account_key: str | None, at: datetime, days: int = 90
) -> tuple[int, str]:
    with database.write("test token") as session:
        account = account_by_key(session, account_key) if account_key else None
        issued = create_token(session, account_id=account.id if account else None,
                              name="test", days=days, now=at, actor="test")
        return issued.token.id, issued.secret


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={
        "email": email, "password": password, "csrf_token": csrf_of(page),
    })


@dataclass(frozen=True)
class Seeded:
    dispatch_id: int
    first_offer_id: int
    second_offer_id: int


def seed_acknowledged(
    database: Database, account_key: str = "acme-plumbing", at: datetime = AFTER_HOURS,
    *, sid: str = "CA" + "0" * 30 + "01", route: str = "emergency",
    caller: str | None = "+13125550150", caller_raw: str | None = None,
    answering: str = "+13125550100",
) -> Seeded:
    """Seed a call whose first offer ends busy, whose second is accepted by keypress."""
    config = EngineConfig(operator_desk=DESK)
    with database.write("seed create") as session:
        engine = DispatchEngine(session, at, config)
        account = account_by_key(session, account_key)
        assert account is not None
        dispatch = engine.create_dispatch(
            account=account, source=Channel.VOICE, source_sid=sid, answering_number=answering,
            caller_number=caller, caller_raw=caller_raw or caller, caller_withheld=caller is None,
            route_key=route, reason="burst pipe in the basement", menu_choice="1",
        )
        engine.begin_offering(dispatch)
        first = dispatch.offers[0]
        for row in first.channels:
            prefix = "CA" if row.channel == Channel.VOICE else "SM"
            row.provider_sid = prefix + uuid.uuid4().hex
            row.state = ChannelState.RINGING
        dispatch_id, first_id = dispatch.id, first.id
        voice_sid = next(r.provider_sid for r in first.channels if r.channel == Channel.VOICE)
        session.add(Receipt(
            received_at=at + timedelta(seconds=5), route="/twilio/status/call",
            account_id=account.id,
            provider_sid=voice_sid, form={"CallStatus": "busy", "SequenceNumber": "2",
                                          "CallSid": voice_sid},
            signature_ok=True, outcome="applied", dispatch_id=dispatch_id,
        ))

    later = at + timedelta(seconds=5)
    with database.write("seed busy") as session:
        engine = DispatchEngine(session, later, config)
        busy = session.get(Dispatch, dispatch_id)
        assert busy is not None
        for row in busy.offers[0].channels:
            end_channel(engine, row, ChannelState.BUSY if row.channel == Channel.VOICE
                        else ChannelState.FAILED, None if row.channel == Channel.VOICE else 30003)
        second_id = busy.offers[-1].id

    accepted_at = at + timedelta(seconds=40)
    with database.write("seed accept") as session:
        engine = DispatchEngine(session, accepted_at, config)
        placed = session.get(Dispatch, dispatch_id)
        assert placed is not None
        offer = placed.offers[-1]
        voice = next(r for r in offer.channels if r.channel == Channel.VOICE)
        voice.provider_sid = "CA" + uuid.uuid4().hex
        session.add(Receipt(
            received_at=accepted_at, route="/twilio/offer/gather", account_id=dispatch.account_id,
            provider_sid=voice.provider_sid, form={"Digits": "1", "CallSid": voice.provider_sid},
            signature_ok=True, outcome="applied", dispatch_id=dispatch_id,
        ))
        accept(engine, placed, offer, voice, via="voice")
    return Seeded(dispatch_id, first_id, second_id)
