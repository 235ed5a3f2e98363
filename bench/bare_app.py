"""A minimal Flask app with the same voice route path, for a baseline under the same gunicorn.

Its ``POST /twilio/voice`` parses the form and returns fixed TwiML, with no signature check,
database or Redis, so the difference to the real app is the cost of the webhook's own work.
Run it as ``gunicorn 'bench.bare_app:create_app()'``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

FIXED_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    "<Say>Thank you for calling. Please tell us what is wrong.</Say>"
    '<Gather action="/twilio/voice/reason" input="speech dtmf" method="POST" timeout="8" />'
    "</Response>"
)


def create_app() -> Flask:
    """Build the baseline app with ``/healthz`` and ``POST /twilio/voice``."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.post("/twilio/voice")
    def voice() -> Response:
        # Reading the form keeps the request parsing cost in the baseline.
        _ = request.form.get("CallSid")
        return Response(FIXED_TWIML, status=200, mimetype="application/xml")

    return app
