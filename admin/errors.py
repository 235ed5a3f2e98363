"""Error responses of the admin pages (HTML) and the API (JSON), so no bad input becomes a 500."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

logger = logging.getLogger(__name__)


def register_error_pages(app: Flask) -> None:
    """Render HTTP errors under /admin as pages and under /api/v1 as JSON; leave others alone."""

    @app.errorhandler(HTTPException)
    def handle(error: HTTPException) -> Response | HTTPException | tuple[Response | str, int]:
        status = error.code or 500
        if status < 400:
            return error
        if request.path.startswith("/api/v1"):
            logger.info("API %s %s: %d %s", request.method, request.path, status,
                        error.description)
            return jsonify(error={"status": status, "message": error.description}), status
        if request.path.startswith("/admin"):
            logger.info("admin %s %s: %d %s", request.method, request.path, status,
                        error.description)
            page = render_template("admin/error.html", status=status, name=error.name,
                                   message=error.description)
            return page, status
        return error
