import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from app import create_app
from dispatch.eligibility import AccountChannelState
from dispatch.engine import DispatchEngine
from dispatch.models import (
    Account,
    Channel,
    ChannelPause,
    Dispatch,
    Event,
    NumberFlag,
    Offer,
    OfferKind,
    OfferState,
    OptOut,
    PoolState,
)
from dispatch.outcomes import rollover_due
from dispatch.profile import load_profile
from dispatch.simulate import simulate_chain
from dispatch.store import current_version
from jobs.runtime import Runtime
from tests.conftest import T0

ANS = "+13125550100"
DESK = "+13125550190"
OFFICE = "+13125550180"
NUMBERS = {"a": "+13125550101", "b": "+13125550102", "c": "+13125550103", "d": "+13125550104"}
NIGHT = "2025-06-10 22:00"  # a Tuesday, after hours in Chicago
OFFERED = re.compile(r"round (\d): (\w+) \(")


def base_document() -> dict[str, Any]:
    """Return a clean profile: office hours forward, after hours page pool night (a-d)."""
    return {
        "account": {
            "key": "test-co",
            "name": "Test Co",
            "time_zone": "America/Chicago",
            "answering_numbers": [ANS],
            "final_escalation": DESK,
            "last_reviewed": "2025-06-01",
        },
        "business_hours": {day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "caller_script": {
            "greeting": "Hello.",
            "menu": [{"digit": "1", "label": "an emergency"}, {"digit": "2", "label": "other"}],
        },
        "members": [
            {"key": key, "name": f"Member {key.upper()}", "phones": {"voice": num, "sms": num}}
            for key, num in NUMBERS.items()
        ],
        "pools": [{"key": "night", "members": ["a", "b", "c", "d"]}],
        "routes": [
            {"key": "office", "when": ["business_hours"], "action": "forward",
             "forward_to": OFFICE},
            {"key": "messages", "when": ["after_hours"], "menu": "2", "action": "message",
             "message_pool": "night"},
            {"key": "pager", "when": ["after_hours"], "action": "page", "pool": "night",
             "channels": ["sms"]},
        ],
    }


@pytest.fixture
def app(db_url: str, redis_prefix: str) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": db_url,
        "QUEUE_NAME": f"{redis_prefix}:q",
        "CLOCK": "redis",
        "CLOCK_KEY": f"{redis_prefix}:clock",
        "TWILIO_AUTH_TOKEN": "test-token",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "SECRET_KEY": "x" * 32,
        "PUBLIC_BASE_URL": "https://dispatch.example.org",
    })
    runtime_of(app).clock.freeze(T0)  # type: ignore[attr-defined]
    yield app
    runtime_of(app).db.dispose()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def runtime_of(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["rrd"]
    return runtime


def write(tmp_path: Path, data: dict[str, Any], name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def import_document(runner: FlaskCliRunner, tmp_path: Path, data: dict[str, Any],
                    *options: str) -> Result:
    result = runner.invoke(args=["profile", "import", str(write(tmp_path, data)), *options])
    assert "Traceback" not in result.output
    return result


def with_pool(members: list[str]) -> dict[str, Any]:
    data = base_document()
    data["pools"][0]["members"] = members
    return data


def set_pointer(app: Flask, member: str | None, position: int | None) -> None:
    with runtime_of(app).db.write("test pointer") as session:
        account_id = session.execute(select(Account.id)).scalar_one()
        session.add(PoolState(account_id=account_id, pool_key="night", last_member_key=member,
                              last_position=position, offers_made=7, updated_at=T0))


def offered(output: str) -> list[tuple[int, str]]:
    return [(int(round_text), key) for round_text, key in OFFERED.findall(output)]


def simulate(runner: FlaskCliRunner, *options: str) -> Result:
    result = runner.invoke(args=["simulate", "test-co", *options])
    assert "Traceback" not in result.output
    return result


# ---------------------------------------------------------------------------------------------
# import


def test_import_prints_version(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = import_document(runner, tmp_path, base_document(), "--author", "ann",
                             "--reason", "first roster")

    assert result.exit_code == 0, result.output
    assert "test-co: stored profile version 1 by ann (first roster)" in result.output


def test_import_diff_against_previous(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = import_document(runner, tmp_path, with_pool(["c", "a", "b", "d"]))

    assert result.exit_code == 0, result.output
    assert "stored profile version 2" in result.output
    assert "changes from version 1:" in result.output
    lines = result.output.splitlines()
    assert any(line.startswith("-") and "[a, b, c, d]" in line for line in lines)
    assert any(line.startswith("+") and "[c, a, b, d]" in line for line in lines)


def test_import_same_document_twice(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = import_document(runner, tmp_path, base_document())

    assert result.exit_code == 0, result.output
    assert "unchanged, the document matches version 1; no new version created" in result.output
    history = runner.invoke(args=["profile", "history", "test-co"])
    assert "1 version(s)" in history.output


def test_import_invalid_stores_nothing(runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    data["pools"] = [{"key": "day", "members": ["a"]},
                     {"key": "night", "members": ["a", "b", "bob"]}]
    data["routes"][2]["pool"] = "nite"
    result = import_document(runner, tmp_path, data)

    assert result.exit_code == 2
    assert "pools[1].members[2]: unknown member 'bob'" in result.stderr
    assert "routes[2].pool: unknown pool 'nite'" in result.stderr
    assert "the profile is invalid (2 error(s) above); nothing stored" in result.stderr
    missing = runner.invoke(args=["profile", "history", "test-co"])
    assert missing.exit_code == 2
    assert "account 'test-co' not found" in missing.stderr


def test_import_bad_yaml(runner: FlaskCliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("account:\n  key: [test-co\n", encoding="utf-8")
    result = runner.invoke(args=["profile", "import", str(path)])

    assert result.exit_code == 2
    assert "line 3, column 1" in result.stderr
    assert "Traceback" not in result.output


def test_import_missing_file(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["profile", "import", str(tmp_path / "nope.yaml")])

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_import_prints_warnings(runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    data["pools"].append({"key": "spare", "members": []})
    result = import_document(runner, tmp_path, data)

    assert result.exit_code == 0, result.output
    assert "warning: pools[1]: pool 'spare' is empty, so routes to it reach nobody" in (
        result.output
    )


def test_import_number_of_other_account(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    other = base_document()
    other["account"]["key"] = "other-co"
    result = import_document(runner, tmp_path, other)

    assert result.exit_code == 2
    assert f"answering number {ANS} already belongs to another account" in result.stderr
    assert "nothing stored" in result.stderr


# ---------------------------------------------------------------------------------------------
# export and history


def test_export_versions(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    import_document(runner, tmp_path, with_pool(["d", "c", "b", "a"]))

    latest = runner.invoke(args=["profile", "export", "test-co"])
    first = runner.invoke(args=["profile", "export", "test-co", "--version", "1"])

    assert latest.exit_code == 0, latest.output
    assert load_profile(latest.output).profile.pool("night").members == ("d", "c", "b", "a")
    assert load_profile(first.output).profile.pool("night").members == ("a", "b", "c", "d")
    with runtime_of(app).db.read() as session:
        kinds = session.execute(select(Event.kind)).scalars().all()
    assert kinds.count("profile_exported") == 2


def test_export_unknown_version(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = runner.invoke(args=["profile", "export", "test-co", "--version", "5"])

    assert result.exit_code == 2
    assert "account 'test-co' has no version 5; versions are 1 to 1" in result.stderr


def test_history_times_and_authors(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document(), "--author", "ann", "--reason", "start")
    runtime_of(app).clock.advance(3600)  # type: ignore[attr-defined]
    import_document(runner, tmp_path, with_pool(["b", "a", "c", "d"]), "--author", "bo",
                    "--reason", "b leads")
    result = runner.invoke(args=["profile", "history", "test-co"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "test-co: 2 version(s), local time America/Chicago"
    assert lines[1] == ("  version 2: 2025-06-10 16:00 UTC / Tue 2025-06-10 11:00 CDT, "
                        "by bo  (current)")
    assert lines[2] == "    reason: b leads"
    assert lines[3] == "  version 1: 2025-06-10 15:00 UTC / Tue 2025-06-10 10:00 CDT, by ann"
    assert lines[4] == "    reason: start"


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "export", "nope"],
        ["profile", "history", "nope"],
        ["profile", "check", "nope"],
        ["simulate", "nope"],
    ],
)
def test_unknown_account_lists_keys(
    runner: FlaskCliRunner, tmp_path: Path, args: list[str]
) -> None:
    import_document(runner, tmp_path, base_document())
    result = runner.invoke(args=args)

    assert result.exit_code == 2
    assert "account 'nope' not found; known accounts: test-co" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_account_none_exist(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["profile", "check", "nope"])

    assert result.exit_code == 2
    assert "no accounts exist yet; create one with: flask profile import FILE" in result.stderr


# ---------------------------------------------------------------------------------------------
# check


def test_check_clean_exits_zero(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = runner.invoke(args=["profile", "check", "test-co"])

    assert result.exit_code == 0, result.output
    assert result.output == "test-co (version 1): no problems found in the next 14 days\n"


def test_check_problems_exit_one(runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    # Only a is active, on call Wednesday 06:00 to Thursday 02:00. The page route is for after
    # hours, so business hours (08:00-17:00) are not gaps.
    data["members"] = [member | {"active": member["key"] == "a"} for member in data["members"]]
    data["schedule"] = {"shifts": [{"member": "a", "days": ["wed"], "start": "06:00",
                                    "end": "02:00"}]}
    data["account"]["last_reviewed"] = "2024-01-01"
    import_document(runner, tmp_path, data)
    result = runner.invoke(args=["profile", "check", "test-co", "--days", "2"])

    assert result.exit_code == 1, result.output
    assert "test-co (version 1): " in result.output
    assert "profile last reviewed 2024-01-01, 526 days ago (more than 180)" in result.output
    assert "  - pool night: nobody on call Tue 2025-06-10 17:00–Wed 2025-06-11 06:00 CDT" in (
        result.output
    )
    assert "  - pool night: nobody on call Thu 2025-06-12 02:00–08:00 CDT" in result.output


def test_check_json(runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    data["pools"] = [{"key": "night", "members": ["a"]}, {"key": "rest", "members": ["b", "c"]}]
    import_document(runner, tmp_path, data)
    result = runner.invoke(args=["profile", "check", "test-co", "--json"])

    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["account"] == "test-co"
    assert report["version"] == 1
    assert report["days"] == 14
    assert report["ok"] is False
    assert report["checked_at"] == "2025-06-10T15:00:00+00:00"
    assert [(p["kind"], p["subject"]) for p in report["problems"]] == [
        ("pool_of_one", "night"), ("member_in_no_pool", "d"),
    ]


def test_check_reads_run_state(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    with runtime_of(app).db.write("test state") as session:
        account_id = session.execute(select(Account.id)).scalar_one()
        session.add(NumberFlag(account_id=account_id, number=NUMBERS["a"], channel=Channel.SMS,
                               error_code=21614, active=True))
        session.add(NumberFlag(account_id=account_id, number=NUMBERS["c"], channel=Channel.SMS,
                               error_code=21211, active=False))
        session.add(OptOut(number=NUMBERS["b"], sender=ANS, active=True))
        session.add(ChannelPause(account_id=account_id, channel=Channel.VOICE, error_code=20003,
                                 active=True))
    result = runner.invoke(args=["profile", "check", "test-co", "--json"])

    assert result.exit_code == 1, result.output
    problems = json.loads(result.output)["problems"]
    assert [(p["kind"], p["subject"]) for p in problems] == [
        ("channel_paused", "test-co"),
        ("number_flagged", "a"),
        ("unreachable", "a"),
        ("opted_out", "b"),
        ("unreachable", "b"),
    ]


def test_check_days_out_of_range(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = runner.invoke(args=["profile", "check", "test-co", "--days", "0"])

    assert result.exit_code == 2
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------
# simulate


def test_simulate_reorder_keeps_pointer(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    import_document(runner, tmp_path, base_document())
    set_pointer(app, "b", 1)
    import_document(runner, tmp_path, with_pool(["c", "a", "b", "d"]))
    result = simulate(runner, "--at", NIGHT)

    assert result.exit_code == 0, result.output
    assert "route pager: page pool night by sms" in result.output
    assert "pool pointer: b was offered last" in result.output
    assert offered(result.output)[:4] == [(1, "d"), (1, "c"), (1, "a"), (1, "b")]


def test_simulate_removed_pointer_member(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    import_document(runner, tmp_path, base_document())
    set_pointer(app, "b", 1)
    import_document(runner, tmp_path, with_pool(["a", "c", "d"]))
    result = simulate(runner, "--at", NIGHT)

    assert result.exit_code == 0, result.output
    assert ("b was offered last and is no longer in the pool, so the rotation continues from "
            "position 1 (c)") in result.output
    assert offered(result.output)[:3] == [(1, "c"), (1, "d"), (1, "a")]


def test_simulate_removed_last_in_order(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    import_document(runner, tmp_path, base_document())
    set_pointer(app, "d", 3)
    import_document(runner, tmp_path, with_pool(["a", "b", "c"]))
    result = simulate(runner, "--at", NIGHT)

    assert offered(result.output)[0] == (1, "a")


def test_simulate_moves_nothing(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    set_pointer(app, "b", 1)
    with runtime_of(app).db.read() as session:
        events_before = session.execute(select(func.count()).select_from(Event)).scalar_one()

    result = simulate(runner, "--at", NIGHT)

    assert result.exit_code == 0, result.output
    assert "nothing was sent and the pool pointer was not moved" in result.output
    with runtime_of(app).db.read() as session:
        state = session.execute(select(PoolState)).scalar_one()
        assert (state.last_member_key, state.last_position, state.offers_made) == ("b", 1, 7)
        assert session.execute(select(func.count()).select_from(Dispatch)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Offer)).scalar_one() == 0
        events_after = session.execute(select(func.count()).select_from(Event)).scalar_one()
    assert events_after == events_before


def test_simulate_skip_reasons(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    data["members"][1]["active"] = False
    data["schedule"] = {"shifts": [
        {"member": "a", "days": ["sat"], "start": "08:00", "end": "17:00"},
    ]}
    import_document(runner, tmp_path, data)
    with runtime_of(app).db.write("test state") as session:
        account_id = session.execute(select(Account.id)).scalar_one()
        session.add(NumberFlag(account_id=account_id, number=NUMBERS["c"], channel=Channel.SMS,
                               error_code=21614, active=True))
        session.add(OptOut(number=NUMBERS["d"], sender=ANS, active=True))
    result = simulate(runner, "--at", NIGHT, "--channel", "sms")

    assert result.exit_code == 0, result.output
    assert offered(result.output) == []
    assert "       skip a: outside_schedule" in result.output
    assert "       skip b: inactive" in result.output
    assert "       skip c: unreachable: sms number flagged" in result.output
    assert "       skip d: unreachable: opted out of SMS" in result.output
    assert (f"nobody eligible: the dispatch ends as no_one_available; the final escalation "
            f"line {DESK} is alerted by SMS") in result.output


def test_simulate_paused_channel(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    with runtime_of(app).db.write("test state") as session:
        account_id = session.execute(select(Account.id)).scalar_one()
        session.add(ChannelPause(account_id=account_id, channel=Channel.SMS, error_code=30002,
                                 active=True))
    result = simulate(runner, "--at", NIGHT)

    assert "       skip a: unreachable: sms paused for the account" in result.output
    assert f"the caller is connected to {DESK}" in result.output


def test_simulate_escalation_and_cap(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = simulate(runner, "--at", NIGHT)

    # Eight offers of 120 s each: those from 600 s on fall after the 10-minute cap.
    assert offered(result.output) == [(1, "a"), (1, "b"), (1, "c"), (1, "d"),
                                      (2, "a"), (2, "b"), (2, "c"), (2, "d")]
    assert "+480 s round 2: a (Member A) by sms, window 120 s\n" in result.output
    assert "+600 s round 2: b (Member B) by sms, window 120 s *" in result.output
    assert f"+600 s final escalation: {DESK} by sms" in result.output


def test_simulate_local_and_iso_agree(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    local = simulate(runner, "--at", NIGHT)
    iso = simulate(runner, "--at", "2025-06-11T03:00:00+00:00")
    zulu = simulate(runner, "--at", "2025-06-11T03:00Z")

    assert local.output == iso.output == zulu.output
    assert local.output.startswith(
        "test-co, profile version 1, at Tue 2025-06-10 22:00 CDT (2025-06-11 03:00 UTC)\n"
    )


def test_simulate_defaults_to_clock(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = simulate(runner)

    assert "at Tue 2025-06-10 10:00 CDT (2025-06-10 15:00 UTC)" in result.output
    assert f"route office: forward; the call is connected to {OFFICE}; nobody is paged" in (
        result.output
    )


def test_simulate_menu_and_message(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    no_choice = simulate(runner, "--at", NIGHT)
    message = simulate(runner, "--at", NIGHT, "--menu", "2")

    assert "the caller hears the menu:" in no_choice.output
    assert "  1 (an emergency): route pager (page)" in no_choice.output
    assert "  2 (other): route messages (message)" in no_choice.output
    assert ("route messages: take a message for pool night; the dispatch ends as "
            "message_taken and nobody is paged") in message.output


def test_simulate_text_forward(runner: FlaskCliRunner, tmp_path: Path) -> None:
    import_document(runner, tmp_path, base_document())
    result = simulate(runner, "--channel", "sms", "--number", "(312) 555-0100")

    assert "text to +13125550100" in result.output
    assert f"the text is forwarded to {OFFICE}" in result.output


def test_simulate_no_route(runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    data["routes"] = data["routes"][:1]
    import_document(runner, tmp_path, data)
    result = simulate(runner, "--at", NIGHT)

    assert result.exit_code == 0, result.output
    assert (f"no route: the dispatch ends as no_one_available (no_route); the final escalation "
            f"line {DESK} is alerted by SMS") in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--at", "tonight"], "--at 'tonight' is not a date and time"),
        (["--number", "+13125550111"], "is not one of the account's answering numbers"),
        (["--menu", "12"], "--menu '12' is not a keypad digit 0-9"),
        (["--channel", "sms", "--menu", "1"], "--menu applies to calls only"),
    ],
)
def test_simulate_bad_options(
    runner: FlaskCliRunner, tmp_path: Path, options: list[str], message: str
) -> None:
    import_document(runner, tmp_path, base_document())
    result = simulate(runner, *options)

    assert result.exit_code == 2
    assert message in result.stderr


def test_simulate_matches_engine(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    data = base_document()
    data["members"][2]["active"] = False
    data["routes"][2]["backups"] = ["c", "b"]
    import_document(runner, tmp_path, data)
    set_pointer(app, "a", 0)
    runtime = runtime_of(app)
    night = T0 + timedelta(hours=12)

    with runtime.db.read() as session:
        account = session.execute(select(Account)).scalar_one()
        version = current_version(session, account.id)
        assert version is not None
        profile = load_profile(version.document).profile
    steps = simulate_chain(profile, profile.route("pager"), night, "a", 0,
                           AccountChannelState(set(), set(), set()))
    expected = [(step.kind, step.member_key) for step in steps if not step.after_cap]

    assert expected[0] == ("pool", "b")
    assert expected[-1] == ("escalation", None)
    assert _engine_offers(runtime, night) == expected


def _engine_offers(runtime: Runtime, start: datetime) -> list[tuple[str, str | None]]:
    """Run a real dispatch with nobody accepting and return its offers as (kind, member)."""
    with runtime.db.write("test dispatch") as session:
        account = session.execute(select(Account)).scalar_one()
        engine = DispatchEngine(session, start)
        dispatch = engine.create_dispatch(
            account=account, source=Channel.SMS, source_sid="SM" + "0" * 30 + "01",
            answering_number=ANS, caller_number="+13125550150", caller_raw="+13125550150",
            caller_withheld=False, route_key="pager", reason="leak",
        )
        engine.begin_offering(dispatch)
        dispatch_id = dispatch.id

    now = start
    for _ in range(20):
        with runtime.db.write("test rollover") as session:
            live = session.execute(
                select(Offer).where(Offer.dispatch_id == dispatch_id,
                                    Offer.state == OfferState.LIVE)
            ).scalar_one_or_none()
            if live is None or live.kind == OfferKind.ESCALATION:
                break
            now = live.deadline
            rollover_due(DispatchEngine(session, now), live.id)

    with runtime.db.read() as session:
        rows = session.execute(
            select(Offer).where(Offer.dispatch_id == dispatch_id).order_by(Offer.seq)
        ).scalars().all()
        return [(str(row.kind), row.member_key) for row in rows]
