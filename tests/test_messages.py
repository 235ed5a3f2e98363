"""Texts fit two SMS segments and never ask for carrier keywords."""

from __future__ import annotations

import re

import pytest

from dispatch import messages


def test_gsm_text_kept_whole() -> None:
    text = "Acme: dispatch 4821. Leak. Reply 1 to accept, 2 to pass."
    assert messages.fit_two_segments(text) == text


def test_gsm_text_cut_at_306_septets() -> None:
    fitted = messages.fit_two_segments("a" * 400)
    assert len(fitted) == 306
    assert fitted.endswith("...")


def test_extended_characters_count_twice() -> None:
    fitted = messages.fit_two_segments("€" * 200)
    assert len(fitted) <= 153


def test_unicode_text_cut_at_134() -> None:
    fitted = messages.fit_two_segments("Burst pipe 🚿 " * 30)
    assert len(fitted) == 134


def test_curly_quotes_stay_gsm() -> None:
    assert messages.fit_two_segments("It’s “bad”") == "It's \"bad\""


@pytest.mark.parametrize("phi", [True, False])
def test_offer_never_asks_keywords(phi: bool) -> None:
    text = messages.sms_offer(account_name="Acme", code="4821", phi=phi, reason="Leak",
                              callback="+13125550150", answering_number="+13125550100")
    for word in ("STOP", "YES", "START", "CANCEL", "END", "QUIT"):
        assert not re.search(rf"\b{word}\b", text, re.IGNORECASE)
