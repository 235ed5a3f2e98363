"""Check REST requests against Twilio's published OpenAPI description of the 2010-04-01 API.

The spec in ``spec/twilio_api_v2010.json`` is a copy of twilio-oai (MIT licence in
``spec/LICENSE``). It is loaded once per process.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict

from fake_twilio.magic import TwilioError

SPEC_PATH = Path(__file__).parent / "spec" / "twilio_api_v2010.json"

# Real Twilio ignores unknown parameters with warning 20001. The fake rejects them so that
# a misspelled parameter fails a test instead of being dropped.
UNKNOWN_PARAMETER_CODE = 20001
# The 2010-04-01 API has no single code for a malformed value. 60200 is Twilio's generic
# "Invalid parameter" code, so the fake uses it for every type, enum and pattern violation.
INVALID_PARAMETER_CODE = 60200

Schema = dict[str, Any]


@cache
def load_spec() -> dict[str, Any]:
    """Load the OpenAPI document from disk once."""
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


def _resolve(schema: Schema) -> Schema:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.rsplit("/", 1)[-1]
    resolved: Schema = load_spec()["components"]["schemas"][name]
    return resolved


def operation(path_template: str, method: str) -> dict[str, Any]:
    """Return the spec's operation for a path template and HTTP method.

    Path templates look like ``/2010-04-01/Accounts/{AccountSid}/Calls.json``.
    """
    return dict(load_spec()["paths"][path_template][method.lower()])


def validate_request(
    path_template: str,
    method: str,
    path_params: dict[str, str],
    query: MultiDict[str, str],
    form: MultiDict[str, str],
) -> None:
    """Raise TwilioError (HTTP 400) when the request breaks the operation's spec.

    Checks path parameters, query parameters and the urlencoded body: unknown names,
    missing required names, repeated keys for non-array fields, and each value's type,
    enum, pattern and length. The message names the parameter.
    """
    op = operation(path_template, method)
    parameters = op.get("parameters", [])

    for param in parameters:
        if param["in"] == "path" and param["name"] in path_params:
            _check_value(param["name"], path_params[param["name"]], _resolve(param["schema"]))

    query_schemas = {p["name"]: _resolve(p["schema"]) for p in parameters if p["in"] == "query"}
    required_query = {p["name"] for p in parameters if p["in"] == "query" and p.get("required")}
    _check_fields(query, query_schemas, required_query)

    body = op.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded")
    if body is None:
        if form:
            name = next(iter(form.keys()))
            raise TwilioError(
                400,
                UNKNOWN_PARAMETER_CODE,
                f"Unknown parameter: {name} (this operation takes no body)",
            )
        return

    schema = body["schema"]
    properties = {name: _resolve(prop) for name, prop in schema.get("properties", {}).items()}
    _check_fields(form, properties, set(schema.get("required", [])))


def _check_fields(
    fields: MultiDict[str, str], schemas: dict[str, Schema], required: set[str]
) -> None:
    for name in required:
        if name not in fields:
            raise TwilioError(400, INVALID_PARAMETER_CODE, f"Missing required parameter {name}.")

    for name in fields:
        schema = schemas.get(name)
        if schema is None:
            raise TwilioError(400, UNKNOWN_PARAMETER_CODE, f"Unknown parameter: {name}")

        values = fields.getlist(name)
        if schema.get("type") == "array":
            item_schema = _resolve(schema.get("items", {}))
            for value in values:
                _check_value(name, value, item_schema)
            continue

        if len(values) > 1:
            raise TwilioError(
                400,
                INVALID_PARAMETER_CODE,
                f"Invalid parameter {name}: expected one value, got {len(values)}.",
            )
        _check_value(name, values[0], schema)


def _check_value(name: str, value: str, schema: Schema) -> None:
    """Raise TwilioError when one form or query value does not match its schema."""
    problem = _value_problem(value, schema)
    if problem is not None:
        raise TwilioError(400, INVALID_PARAMETER_CODE, f"Invalid parameter {name}: {problem}")


def _value_problem(value: str, schema: Schema) -> str | None:
    kind = schema.get("type", "string")
    if kind == "integer" and not re.fullmatch(r"[+-]?\d+", value):
        return f"expected an integer, got {value!r}."
    if kind == "number" and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        return f"expected a number, got {value!r}."
    if kind == "boolean" and value.lower() not in ("true", "false"):
        return f"expected true or false, got {value!r}."

    enum = schema.get("enum")
    if enum is not None and value not in enum:
        return f"{value!r} is not one of {', '.join(enum)}."
    pattern = schema.get("pattern")
    if pattern is not None and not re.search(pattern, value):
        return f"{value!r} does not match {pattern}."
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{value!r} is shorter than {schema['minLength']} characters."
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{value!r} is longer than {schema['maxLength']} characters."

    if kind == "integer" and "minimum" in schema and int(value) < schema["minimum"]:
        return f"{value} is below the minimum {schema['minimum']}."
    if kind == "integer" and "maximum" in schema and int(value) > schema["maximum"]:
        return f"{value} is above the maximum {schema['maximum']}."
    if schema.get("format") == "uri" and not schema.get("x-twilio", {}).get("ignoreFormat"):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{value!r} is not an absolute http(s) URL."
    return None
