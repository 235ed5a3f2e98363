"""The fake's REST API: a Flask app serving the parts of Twilio's 2010-04-01 API in use."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from fake_twilio.formats import API_VERSION
from fake_twilio.magic import TwilioError
from fake_twilio.openapi import validate_request
from fake_twilio.server import FakeTwilio, RequestLogEntry

logger = logging.getLogger(__name__)

ACCOUNT_PREFIX = f"/{API_VERSION}/Accounts/<account_sid>"
SPEC_PREFIX = f"/{API_VERSION}/Accounts/{{AccountSid}}"
DEFAULT_PAGE_SIZE = 50


def create_app(fake: FakeTwilio) -> Flask:
    """Build the REST app around ``fake``."""
    app = Flask(__name__)
    app.extensions["fake_twilio"] = fake

    @app.errorhandler(TwilioError)
    def twilio_error(error: TwilioError) -> tuple[Response, int]:
        # The message may contain a full phone number, so it is logged at DEBUG only.
        logger.info("REST %s %s rejected with %s", request.method, request.path, error.code)
        logger.debug("REST error %s: %s", error.code, error.message)
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        body = TwilioError(
            status, 20000 + status, f"{error.name}: {request.method} {request.path}"
        ).body()
        return jsonify(body), status

    _add_call_routes(app, fake)
    _add_message_routes(app, fake)
    _add_number_routes(app, fake)
    return app


def _begin(
    fake: FakeTwilio, account_sid: str, spec_path: str, path_params: dict[str, str] | None = None
) -> MultiDict[str, str]:
    """Authenticate, log and validate the current request; return its form (or query for GET)."""
    auth = request.authorization
    fake.authenticate(auth.username if auth else None, auth.password if auth else None, account_sid)

    form: MultiDict[str, str] = MultiDict(request.form.items(multi=True))
    query: MultiDict[str, str] = MultiDict(request.args.items(multi=True))
    fake.log_request(
        RequestLogEntry(
            request.method,
            request.path,
            account_sid,
            form.to_dict(flat=False),
            query.to_dict(flat=False),
        )
    )
    validate_request(
        SPEC_PREFIX + spec_path,
        request.method,
        {"AccountSid": account_sid, **(path_params or {})},
        query,
        form,
    )
    return form if request.method == "POST" else query


def _page(
    key: str, items: list[dict[str, Any]], args: MultiDict[str, str], base_uri: str
) -> dict[str, Any]:
    """Slice ``items`` into a Twilio list page with ``next_page_uri`` when more remain."""
    page_size = int(args.get("PageSize", DEFAULT_PAGE_SIZE))
    page = int(args.get("Page", 0))
    start = page * page_size
    chunk = items[start : start + page_size]
    filters = [
        (name, value)
        for name, value in args.items(multi=True)
        if name not in ("PageSize", "Page", "PageToken")
    ]

    def uri(number: int) -> str:
        return (
            base_uri
            + "?"
            + urlencode(
                [
                    *filters,
                    ("PageSize", str(page_size)),
                    ("Page", str(number)),
                    ("PageToken", f"PA{number}"),
                ]
            )
        )

    return {
        key: chunk,
        "start": start,
        "end": start + max(len(chunk) - 1, 0),
        "page": page,
        "page_size": page_size,
        "first_page_uri": uri(0),
        "previous_page_uri": uri(page - 1) if page > 0 else None,
        "next_page_uri": uri(page + 1) if start + page_size < len(items) else None,
        "uri": uri(page),
    }


def _respond_slowly(
    fake: FakeTwilio, to: str, channel: str, make_response: Callable[[], tuple[Response, int]]
) -> tuple[Response, int]:
    """Delay the response for a "timeout" magic number.

    The resource already exists by then, as when Twilio's response is lost.
    """
    if fake.is_slow(to, channel):
        logger.info(
            "Delaying the create response for ...%s by %.1f s", to[-4:], fake.slow_response_seconds
        )
        time.sleep(fake.slow_response_seconds)
    return make_response()


def _add_call_routes(app: Flask, fake: FakeTwilio) -> None:
    @app.post(f"{ACCOUNT_PREFIX}/Calls.json")
    def create_call(account_sid: str) -> tuple[Response, int]:
        form = _begin(fake, account_sid, "/Calls.json")
        with fake.rest_context():
            call = fake.create_call(account_sid, form)
        logger.info("Call %s created to ...%s", call.sid, call.to[-4:])
        return _respond_slowly(fake, call.to, "call", lambda: (jsonify(call.to_resource()), 201))

    @app.get(f"{ACCOUNT_PREFIX}/Calls.json")
    def list_calls(account_sid: str) -> Response:
        args = _begin(fake, account_sid, "/Calls.json")
        calls = [call.to_resource() for call in fake.list_calls(account_sid, args)]
        return jsonify(_page("calls", calls, args, request.path))

    @app.get(f"{ACCOUNT_PREFIX}/Calls/<sid>.json")
    def fetch_call(account_sid: str, sid: str) -> Response:
        _begin(fake, account_sid, "/Calls/{Sid}.json", {"Sid": sid})
        return jsonify(fake.get_call(account_sid, sid).to_resource())

    @app.post(f"{ACCOUNT_PREFIX}/Calls/<sid>.json")
    def update_call(account_sid: str, sid: str) -> Response:
        form = _begin(fake, account_sid, "/Calls/{Sid}.json", {"Sid": sid})
        with fake.rest_context():
            call = fake.update_call(account_sid, sid, form)
        return jsonify(call.to_resource())


def _add_message_routes(app: Flask, fake: FakeTwilio) -> None:
    @app.post(f"{ACCOUNT_PREFIX}/Messages.json")
    def create_message(account_sid: str) -> tuple[Response, int]:
        form = _begin(fake, account_sid, "/Messages.json")
        with fake.rest_context():
            message = fake.create_message(account_sid, form)
        logger.info("Message %s created to ...%s", message.sid, message.to[-4:])
        return _respond_slowly(
            fake, message.to, "sms", lambda: (jsonify(message.to_resource()), 201)
        )

    @app.get(f"{ACCOUNT_PREFIX}/Messages.json")
    def list_messages(account_sid: str) -> Response:
        args = _begin(fake, account_sid, "/Messages.json")
        messages = [message.to_resource() for message in fake.list_messages(account_sid, args)]
        return jsonify(_page("messages", messages, args, request.path))

    @app.get(f"{ACCOUNT_PREFIX}/Messages/<sid>.json")
    def fetch_message(account_sid: str, sid: str) -> Response:
        _begin(fake, account_sid, "/Messages/{Sid}.json", {"Sid": sid})
        return jsonify(fake.get_message(account_sid, sid).to_resource())


# IncomingPhoneNumber form fields the fake stores, mapped to its config keys.
NUMBER_FIELDS = {
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "StatusCallback": "status_callback",
    "FriendlyName": "friendly_name",
}


def _number_config(form: MultiDict[str, str]) -> dict[str, str]:
    return {key: form[name] for name, key in NUMBER_FIELDS.items() if name in form}


def _add_number_routes(app: Flask, fake: FakeTwilio) -> None:
    @app.get(f"{ACCOUNT_PREFIX}/IncomingPhoneNumbers.json")
    def list_numbers(account_sid: str) -> Response:
        args = _begin(fake, account_sid, "/IncomingPhoneNumbers.json")
        requested = args.get("PhoneNumber")
        numbers = [
            fake.number_resource(number)
            for number, config in sorted(fake.numbers.items())
            if config["account_sid"] == account_sid and requested in (None, number)
        ]
        return jsonify(_page("incoming_phone_numbers", numbers, args, request.path))

    @app.post(f"{ACCOUNT_PREFIX}/IncomingPhoneNumbers.json")
    def create_number(account_sid: str) -> tuple[Response, int]:
        # Twilio buys a number here. The fake has no inventory, so it creates or updates
        # the number named by PhoneNumber, which lets tests set its webhook URLs.
        form = _begin(fake, account_sid, "/IncomingPhoneNumbers.json")
        number = form.get("PhoneNumber")
        if not number:
            raise TwilioError(
                400, 21421, "PhoneNumber is required; the fake does not search by AreaCode."
            )
        fake.configure_number(account_sid, number, _number_config(form))
        return jsonify(fake.number_resource(number)), 201

    @app.get(f"{ACCOUNT_PREFIX}/IncomingPhoneNumbers/<sid>.json")
    def fetch_number(account_sid: str, sid: str) -> Response:
        _begin(fake, account_sid, "/IncomingPhoneNumbers/{Sid}.json", {"Sid": sid})
        number, _config = fake.number_by_sid(account_sid, sid)
        return jsonify(fake.number_resource(number))

    @app.post(f"{ACCOUNT_PREFIX}/IncomingPhoneNumbers/<sid>.json")
    def update_number(account_sid: str, sid: str) -> Response:
        form = _begin(fake, account_sid, "/IncomingPhoneNumbers/{Sid}.json", {"Sid": sid})
        number, _config = fake.number_by_sid(account_sid, sid)
        fake.configure_number(account_sid, number, _number_config(form))
        return jsonify(fake.number_resource(number))
