import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from webhooks import signature
from webhooks.signature import SignatureCheck, public_url_for, verify_twilio_request

PUBLIC = "https://dispatch.example.org"
APP_BASE = "http://127.0.0.1:8000"
TOKEN = "test-auth-token-primary"
SECONDARY = "test-auth-token-secondary"
PROXY_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "dispatch.example.org",
    "X-Forwarded-For": "203.0.113.9",
}
REPLY_FORM = {
    "MessageSid": "SM" + "0" * 30 + "01",
    "From": "+13125550101",
    "To": "+13125550100",
    "Body": "YES",
    "AccountSid": "AC" + "0" * 32,
    "ApiVersion": "2010-04-01",
}


def make_app(public_base_url: str | None, tokens: list[str], trusted_proxy_hops: int) -> Flask:
    app = Flask(__name__)

    @app.post("/twilio/sms")
    @app.post("/twilio/status/sms/<int:offer_id>")
    def webhook(offer_id: int | None = None) -> tuple[dict[str, object], int]:
        check = verify_twilio_request(request, tokens, public_base_url, trusted_proxy_hops)
        body = {
            "ok": check.ok,
            "url": check.url,
            "reason": check.reason,
            "token": check.token_index,
        }
        return body, 200 if check.ok else 403

    return app


def sign(url: str, form: object, token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def post(
    client: FlaskClient,
    path: str,
    form: object,
    signature_value: str | None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    all_headers = dict(headers or {})
    if signature_value is not None:
        all_headers["X-Twilio-Signature"] = signature_value
    response = client.post(path, data=form, headers=all_headers, base_url=APP_BASE)
    return response.status_code, response.get_json()


@pytest.fixture(autouse=True)
def fresh_warning_limiter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(signature, "_warnings", signature._WarningLimiter(60.0))
    yield


@pytest.fixture
def client() -> FlaskClient:
    return make_app(PUBLIC, [TOKEN], trusted_proxy_hops=1).test_client()


def test_proxy_with_public_url(client: FlaskClient) -> None:
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), PROXY_HEADERS)

    assert status == 200
    assert body["ok"] is True
    assert body["url"] == url
    assert body["token"] == 0


def test_signature_over_http_rejected(client: FlaskClient) -> None:
    http_url = "http://dispatch.example.org/twilio/sms"

    status, body = post(
        client, "/twilio/sms", REPLY_FORM, sign(http_url, REPLY_FORM), PROXY_HEADERS
    )

    assert status == 403
    assert body["reason"] == "signature_mismatch"
    assert body["url"] == PUBLIC + "/twilio/sms"


def test_rewritten_forwarded_host_ignored(client: FlaskClient) -> None:
    headers = {**PROXY_HEADERS, "X-Forwarded-Host": "dispatch-internal.svc"}
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), headers)

    assert status == 200
    assert body["url"] == url


def test_raw_query_string_signed(client: FlaskClient) -> None:
    path = "/twilio/status/sms/7?a=1%2F2&b=%20x"
    url = PUBLIC + path

    status, body = post(client, path, REPLY_FORM, sign(url, REPLY_FORM), PROXY_HEADERS)

    assert status == 200
    assert body["url"] == url


def test_decoded_query_string_rejected(client: FlaskClient) -> None:
    path = "/twilio/status/sms/7?a=1%2F2&b=%20x"
    decoded_url = PUBLIC + "/twilio/status/sms/7?a=1/2&b= x"

    status, body = post(client, path, REPLY_FORM, sign(decoded_url, REPLY_FORM), PROXY_HEADERS)

    assert status == 403
    assert body["reason"] == "signature_mismatch"


def test_non_ascii_query_kept_escaped(client: FlaskClient) -> None:
    path = "/twilio/status/sms/7?name=%C3%A9t%C3%A9&plus=a+b"
    url = PUBLIC + path

    status, body = post(client, path, REPLY_FORM, sign(url, REPLY_FORM), PROXY_HEADERS)

    assert status == 200
    assert body["url"] == url


def test_secondary_token_accepted() -> None:
    client = make_app(PUBLIC, [TOKEN, SECONDARY], trusted_proxy_hops=0).test_client()
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM, SECONDARY))

    assert status == 200
    assert body["token"] == 1


def test_unknown_token_rejected() -> None:
    client = make_app(PUBLIC, [TOKEN, SECONDARY], trusted_proxy_hops=0).test_client()
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM, "other-token"))

    assert status == 403
    assert body["reason"] == "signature_mismatch"


def test_empty_primary_token_skipped() -> None:
    client = make_app(PUBLIC, ["", SECONDARY], trusted_proxy_hops=0).test_client()
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM, SECONDARY))

    assert status == 200
    assert body["token"] == 1


def test_missing_signature_header(client: FlaskClient) -> None:
    status, body = post(client, "/twilio/sms", REPLY_FORM, None, PROXY_HEADERS)

    assert status == 403
    assert body["reason"] == "signature_missing"


def test_empty_signature_header(client: FlaskClient) -> None:
    status, body = post(client, "/twilio/sms", REPLY_FORM, "", PROXY_HEADERS)

    assert status == 403
    assert body["reason"] == "signature_missing"


@pytest.mark.parametrize("tokens", [[], [""], ["", ""]])
def test_no_auth_token(tokens: list[str]) -> None:
    client = make_app(PUBLIC, tokens, trusted_proxy_hops=0).test_client()
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM))

    assert status == 403
    assert body["reason"] == "no_auth_token"


def twilio_reference_signature(url: str, pairs: list[tuple[str, str]], token: str) -> str:
    """Sign like twilio 9.13: the URL, then each distinct key and value in order, HMAC-SHA1."""
    text = url + "".join(key + value for key, value in sorted(set(pairs)))
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_repeated_form_keys(client: FlaskClient) -> None:
    pairs = [
        *REPLY_FORM.items(),
        ("MediaUrl", "https://x.test/b"),
        ("MediaUrl", "https://x.test/a"),
    ]
    url = PUBLIC + "/twilio/sms"
    signed = twilio_reference_signature(url, pairs, TOKEN)

    status, body = post(client, "/twilio/sms", MultiDict(pairs), signed, PROXY_HEADERS)

    assert status == 200
    assert body["ok"] is True


def test_repeated_keys_need_every_value(client: FlaskClient) -> None:
    pairs = [
        *REPLY_FORM.items(),
        ("MediaUrl", "https://x.test/b"),
        ("MediaUrl", "https://x.test/a"),
    ]
    url = PUBLIC + "/twilio/sms"
    signed_first_only = twilio_reference_signature(url, pairs[:-1], TOKEN)

    status, body = post(client, "/twilio/sms", MultiDict(pairs), signed_first_only, PROXY_HEADERS)

    assert status == 403
    assert body["reason"] == "signature_mismatch"


def test_changed_form_value_rejected(client: FlaskClient) -> None:
    url = PUBLIC + "/twilio/sms"
    signed = sign(url, REPLY_FORM)

    status, body = post(client, "/twilio/sms", {**REPLY_FORM, "Body": "NO"}, signed, PROXY_HEADERS)

    assert status == 403
    assert body["reason"] == "signature_mismatch"


def test_url_with_default_port_accepted(client: FlaskClient) -> None:
    url = "https://dispatch.example.org:443/twilio/sms"

    status, _ = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), PROXY_HEADERS)

    assert status == 200


def test_sha256_shared_key_signature(client: FlaskClient) -> None:
    url = PUBLIC + "/twilio/sms"
    signed = RequestValidator(TOKEN).compute_signature(url, REPLY_FORM, "HMAC_SHA256")
    headers = {
        **PROXY_HEADERS,
        "X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=HMAC_SHA256",
    }

    status, body = post(client, "/twilio/sms", REPLY_FORM, signed, headers)

    assert status == 200
    assert body["ok"] is True


def test_unsupported_algorithm_rejected(client: FlaskClient) -> None:
    url = PUBLIC + "/twilio/sms"
    headers = {**PROXY_HEADERS, "X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=MD5"}

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), headers)

    assert status == 403
    assert body["reason"] == "signature_algorithm_unsupported"


def test_json_body_hash_signed() -> None:
    client = make_app(PUBLIC, [TOKEN], trusted_proxy_hops=0).test_client()
    payload = '{"MessageSid": "SM01", "Body": "YES"}'
    digest = hashlib.sha256(payload.encode()).hexdigest()
    path = f"/twilio/sms?bodySHA256={digest}"
    signed = sign(PUBLIC + path, {})

    response = client.post(
        path,
        data=payload,
        content_type="application/json",
        headers={"X-Twilio-Signature": signed},
        base_url=APP_BASE,
    )

    assert response.status_code == 200


def test_forwarded_headers_with_trusted_hop() -> None:
    client = make_app(None, [TOKEN], trusted_proxy_hops=1).test_client()
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), PROXY_HEADERS)

    assert status == 200
    assert body["url"] == url


def test_forwarded_headers_ignored_without_hops() -> None:
    client = make_app(None, [TOKEN], trusted_proxy_hops=0).test_client()
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), PROXY_HEADERS)

    assert status == 403
    assert body["url"] == APP_BASE + "/twilio/sms"


def test_own_url_without_proxy() -> None:
    client = make_app(None, [TOKEN], trusted_proxy_hops=0).test_client()
    url = APP_BASE + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM))

    assert status == 200
    assert body["url"] == url


def test_spoofed_forwarded_host_first_value() -> None:
    client = make_app(None, [TOKEN], trusted_proxy_hops=1).test_client()
    headers = {
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "evil.example, dispatch.example.org",
    }
    url = PUBLIC + "/twilio/sms"

    status, body = post(client, "/twilio/sms", REPLY_FORM, sign(url, REPLY_FORM), headers)

    assert status == 200
    assert body["url"] == url


def test_too_few_forwarded_values() -> None:
    client = make_app(None, [TOKEN], trusted_proxy_hops=2).test_client()

    status, body = post(client, "/twilio/sms", REPLY_FORM, "x", PROXY_HEADERS)

    assert status == 403
    assert body["url"] == APP_BASE + "/twilio/sms"


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://dispatch.example.org/", "/twilio/sms", "https://dispatch.example.org/twilio/sms"),
        (
            "https://example.org/dispatch",
            "/twilio/sms?x=1",
            "https://example.org/dispatch/twilio/sms?x=1",
        ),
        ("https://dispatch.example.org", "/twilio/sms?", "https://dispatch.example.org/twilio/sms"),
        ("https://d.example.org", "/twilio/a%20b", "https://d.example.org/twilio/a%20b"),
        ("https://d.example.org", "/twilio/caf%C3%A9", "https://d.example.org/twilio/caf%C3%A9"),
    ],
)
def test_public_url_for(base: str, path: str, expected: str) -> None:
    app = Flask(__name__)

    with app.test_request_context(path, base_url=APP_BASE, method="POST"):
        assert public_url_for(request, base) == expected


def test_log_hides_token_and_signature(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    forged = sign(PUBLIC + "/twilio/sms", REPLY_FORM, "wrong-token")
    good = sign(PUBLIC + "/twilio/sms", REPLY_FORM)
    caplog.set_level(logging.DEBUG, logger="webhooks.signature")

    post(client, "/twilio/sms", REPLY_FORM, forged, PROXY_HEADERS)
    post(client, "/twilio/sms", REPLY_FORM, good, PROXY_HEADERS)

    assert "signature_mismatch" in caplog.text
    assert TOKEN not in caplog.text
    assert forged not in caplog.text
    assert good not in caplog.text


def test_repeated_failures_logged_once(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="webhooks.signature")

    for _ in range(5):
        post(client, "/twilio/sms", REPLY_FORM, "forged", PROXY_HEADERS)

    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING


def test_signature_check_defaults() -> None:
    check = SignatureCheck(ok=False, url=PUBLIC)

    assert check.reason is None
    assert check.token_index is None
