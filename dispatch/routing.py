"""Choose the route for an inbound call or text: the first route, in profile order, that fits.

A route fits when the answering number is one of its numbers, one of its windows applies at
the instant, and its menu fits the request. A route without a menu takes texts and calls with
any menu choice or none. A route with a menu takes only calls whose caller pressed that digit.
"""

from __future__ import annotations

from datetime import datetime

from dispatch.phones import normalize_sender
from dispatch.profile import Profile, Route
from dispatch.schedule import window_kinds

CHANNELS = ("voice", "sms")


def match_route(
    profile: Profile,
    to_number: str,
    at_utc: datetime,
    channel: str,
    menu_choice: str | None,
) -> Route | None:
    """Return the first route for a call or text to ``to_number`` at an instant, or None.

    ``menu_choice`` is the digit a caller pressed; it is ignored for texts. Raises ValueError
    for an unknown channel or a naive datetime.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    if channel == "sms":
        menu_choice = None

    for route in _routes_in_window(profile, to_number, at_utc):
        if route.menu is None or route.menu == menu_choice:
            return route
    return None


def needs_menu(profile: Profile, to_number: str, at_utc: datetime) -> bool:
    """Return whether a call to ``to_number`` at an instant must ask for a menu choice.

    The caller is asked only when a route with a menu comes before the first route without
    one, because that first route would otherwise take every call whatever the choice.
    """
    routes = _routes_in_window(profile, to_number, at_utc)
    return bool(routes) and routes[0].menu is not None


def _routes_in_window(profile: Profile, to_number: str, at_utc: datetime) -> list[Route]:
    """Return, in order, the routes for this answering number whose window applies now."""
    kinds = window_kinds(profile, at_utc)
    number = normalize_sender(to_number)
    if number is None or number not in profile.account.answering_numbers:
        return []

    return [
        route
        for route in profile.routes
        if number in profile.route_numbers(route)
        and ("always" in route.when or kinds.intersection(route.when))
    ]
