"""Admin pages, the JSON API and the admin commands for the call-and-dispatch log."""

from __future__ import annotations

from flask import Flask

from admin.web import csrf_token


def register(app: Flask) -> None:
    """Register the admin and API blueprints, their error pages and template helpers."""
    from admin import account_views, api, auth_views, dashboard, dispatch_views, profile_views
    from admin.errors import register_error_pages

    for module in (auth_views, dispatch_views, profile_views, dashboard, account_views, api):
        app.register_blueprint(module.bp)
    register_error_pages(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
