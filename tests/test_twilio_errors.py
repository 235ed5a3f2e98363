import pytest

from dispatch.twilio_errors import (
    CLASSIFIED_ERRORS,
    ErrorKind,
    classify_error,
    describe_error,
)

NUMBER = ErrorKind.NUMBER
CHANNEL = ErrorKind.CHANNEL
CONFIG = ErrorKind.CONFIG
TRANSIENT_REST = ErrorKind.TRANSIENT_REST
TRANSIENT_CALLBACK = ErrorKind.TRANSIENT_CALLBACK

# (code, HTTP status, channel, expected kind) for errors raised when creating a call or message.
REST_ERRORS = [
    (21211, 400, "sms", NUMBER),
    (21211, 400, "voice", NUMBER),
    (21214, 400, "voice", NUMBER),
    (21217, 400, "voice", NUMBER),
    (13224, 400, "voice", NUMBER),
    (21614, 400, "sms", CHANNEL),
    (21635, 400, "sms", CHANNEL),
    (21614, 400, "voice", NUMBER),
    (21610, 400, "sms", ErrorKind.OPT_OUT),
    (20003, 401, "sms", CONFIG),
    (20003, 401, "voice", CONFIG),
    (21606, 400, "sms", CONFIG),
    (21608, 400, "sms", CONFIG),
    (21215, 400, "voice", CONFIG),
    (21216, 400, "voice", CONFIG),
    (21408, 400, "sms", CONFIG),
    (20429, 429, "sms", TRANSIENT_REST),
    (20429, 429, "voice", TRANSIENT_REST),
    (None, 429, "sms", TRANSIENT_REST),
    (20500, 500, "sms", TRANSIENT_REST),
    (None, 502, "voice", TRANSIENT_REST),
    (None, 503, "sms", TRANSIENT_REST),
    (None, None, "sms", TRANSIENT_REST),
    (99999, None, "sms", TRANSIENT_REST),
    (21604, 400, "sms", NUMBER),
    (21212, 400, "sms", NUMBER),
    (None, 400, "voice", NUMBER),
    (None, 422, "sms", NUMBER),
    (20404, 404, "sms", CONFIG),
    (None, 401, "sms", CONFIG),
    (None, 403, "voice", CONFIG),
    (None, 302, "sms", ErrorKind.UNKNOWN),
]

# (code, channel, expected kind) for ErrorCode values in status callbacks.
CALLBACK_ERRORS = [
    (30001, "sms", TRANSIENT_CALLBACK),
    (30003, "sms", TRANSIENT_CALLBACK),
    (30008, "sms", TRANSIENT_CALLBACK),
    (30005, "sms", NUMBER),
    (30006, "sms", CHANNEL),
    (30006, "voice", NUMBER),
    (21610, "sms", ErrorKind.OPT_OUT),
    (30002, "sms", CONFIG),
    (30032, "sms", CONFIG),
    (30034, "sms", CONFIG),
    (13224, "voice", NUMBER),
    (20429, "sms", TRANSIENT_CALLBACK),
    (30007, "sms", TRANSIENT_CALLBACK),
    (31999, "voice", TRANSIENT_CALLBACK),
    (None, "sms", TRANSIENT_CALLBACK),
]


@pytest.mark.parametrize(("code", "status", "channel", "expected"), REST_ERRORS)
def test_rest_error_kind(
    code: int | None, status: int | None, channel: str, expected: ErrorKind
) -> None:
    assert classify_error(code, at="rest", http_status=status, channel=channel) == expected


@pytest.mark.parametrize(("code", "channel", "expected"), CALLBACK_ERRORS)
def test_callback_error_kind(code: int | None, channel: str, expected: ErrorKind) -> None:
    assert classify_error(code, at="callback", channel=channel) == expected


@pytest.mark.parametrize("channel", ["voice", "sms"])
def test_read_timeout_is_unknown(channel: str) -> None:
    kind = classify_error(None, at="rest", channel=channel, read_timeout=True)

    assert kind == ErrorKind.UNKNOWN


def test_connection_error_is_transient() -> None:
    kind = classify_error(None, at="rest", channel="sms", read_timeout=False)

    assert kind == TRANSIENT_REST


def test_callback_ignores_http_status() -> None:
    kind = classify_error(30003, at="callback", http_status=400, channel="sms")

    assert kind == TRANSIENT_CALLBACK


@pytest.mark.parametrize(
    ("at", "channel"),
    [("webhook", "sms"), ("REST", "sms"), ("rest", "email"), ("callback", "")],
)
def test_invalid_where_raises(at: str, channel: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        classify_error(21211, at=at, channel=channel)


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (21211, "invalid 'To' phone number"),
        (21610, "recipient has opted out (STOP)"),
        (30006, "landline or unreachable carrier"),
        (20429, "too many requests (rate limited)"),
        (30007, "message filtered by the carrier as spam or unregistered traffic"),
        (12345, "Twilio error 12345"),
        (None, "no Twilio error code"),
    ],
)
def test_describe_error(code: int | None, meaning: str) -> None:
    assert describe_error(code) == meaning


@pytest.mark.parametrize("code", sorted(CLASSIFIED_ERRORS))
def test_every_listed_code_described(code: int) -> None:
    meaning = describe_error(code)

    assert meaning
    assert meaning != f"Twilio error {code}"


def test_kind_values() -> None:
    assert [kind.value for kind in ErrorKind] == [
        "number",
        "channel",
        "opt_out",
        "config",
        "transient_rest",
        "transient_callback",
        "unknown",
    ]
