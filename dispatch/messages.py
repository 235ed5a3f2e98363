"""Every sentence the service sends or speaks to staff and callers, in one place.

SMS offers never ask for STOP, YES, START, CANCEL, END or QUIT, because carriers and Twilio treat
those words as opt-out and opt-in keywords; we ask for 1 and 2.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

SMS_MAX_CHARS = 300  # two GSM-7 segments of 153 characters, with room to spare
REASON_MAX_CHARS = 120


def spoken_digits(number: str | None) -> str:
    """Spell a phone number digit by digit so text-to-speech does not read it as an amount."""
    if not number:
        return ""
    return " ".join(ch for ch in number if ch.isdigit())


def short_reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if len(text) > REASON_MAX_CHARS:
        text = text[: REASON_MAX_CHARS - 1].rstrip() + "…"
    return text


def callback_phrase(callback: str | None, supplied: bool, withheld: bool) -> str:
    if callback:
        return f"{callback} (caller-supplied)" if supplied else callback
    if withheld:
        return "caller ID withheld, no callback number"
    return "no callback number"


def sms_offer(
    *,
    account_name: str,
    code: str,
    phi: bool,
    reason: str | None,
    callback: str,
    answering_number: str,
) -> str:
    if phi:
        text = (
            f"{account_name}: dispatch {code}. Call {answering_number} or press 1 when called. "
            "Reply 1 to accept, 2 to pass."
        )
    else:
        about = short_reason(reason) or "no reason given"
        text = (
            f"{account_name}: dispatch {code}. {about}. Caller: {callback}. "
            "Reply 1 to accept, 2 to pass."
        )
    return text[:SMS_MAX_CHARS]


def voice_offer(
    *,
    account_name: str,
    code: str,
    phi: bool,
    reason: str | None,
    callback_spoken: str,
) -> str:
    base = f"This is {account_name} dispatch, job {' '.join(code)}."
    if phi:
        return base
    about = short_reason(reason) or "No reason was given"
    return f"{base} {about}. Callback number: {callback_spoken}."


VOICE_PROMPT = "Press 1 to accept, 2 to pass, 9 to repeat."
VOICE_MACHINE = "This is a dispatch call. Please call the answering line. Goodbye."
VOICE_TAKEN = "This job has already been taken. No action is needed. Goodbye."
VOICE_PASSED = "Passing to the next technician. Goodbye."
VOICE_NO_KEYPRESS = "No key was pressed. Goodbye."


def voice_accepted(code: str, has_callback: bool) -> str:
    text = f"You accepted job {' '.join(code)}."
    if has_callback:
        return text + " Stay on the line to be connected to the caller."
    return text + " The caller left no callback number. Goodbye."


def sms_accepted(
    *,
    code: str,
    account_name: str,
    answering_number: str,
    phi: bool,
    callback: str,
    reason: str | None,
) -> str:
    text = f"{account_name}: you accepted dispatch {code}."
    if phi:
        return text + f" Call {answering_number} to be connected to the caller."
    return (
        text + f" {short_reason(reason) or 'No reason given'}. Caller: {callback}. "
        f"Call {answering_number} to be connected without showing your number."
    )[:SMS_MAX_CHARS]


def sms_stood_down(code: str, account_name: str) -> str:
    return f"{account_name}: dispatch {code} is no longer needed. Someone else has it."


def already_handled(name: str, at: datetime, zone: ZoneInfo, code: str, *, by_you: bool) -> str:
    local = at.astimezone(zone).strftime("%H:%M %Z")
    if by_you:
        return f"Dispatch {code} is already handled by you (accepted at {local})."
    return f"Dispatch {code} was already handled by {name} at {local}. No action needed."


SMS_HELP = "Reply 1 to accept or 2 to pass."
SMS_NO_OPEN = "You have no open dispatch right now. No action needed."


def sms_which_code(codes: list[str]) -> str:
    return (
        "You have several open dispatches: "
        + ", ".join(codes)
        + ". Reply 1 and the code to accept, for example 1 "
        + codes[0]
        + "."
    )


def sms_code_only(code: str) -> str:
    return f"Reply 1 to accept or 2 to pass dispatch {code}."


def caller_received(account_name: str, minutes: int | None) -> str:
    when = f" within about {minutes} minutes" if minutes else " shortly"
    return (
        f"{account_name}: we got your message and are reaching the on-call team now. "
        f"Someone will contact you{when}."
    )


def caller_accepted(account_name: str, who: str) -> str:
    return (f"{account_name}: {who} has your request and will contact you shortly from our "
            "number.")


def caller_unacknowledged(account_name: str) -> str:
    return (
        f"{account_name}: the on-call team has not answered yet. Our answering service has "
        "been alerted and will follow up with you."
    )


def caller_no_one(account_name: str) -> str:
    return (
        f"{account_name}: nobody is on call right now. Our answering service has been "
        "alerted and will follow up with you. If this is an emergency, call 911."
    )


def desk_alert(account_name: str, code: str, what: str) -> str:
    return f"ALERT {account_name}: dispatch {code}: {what}. Please follow up."


GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")
# Characters that Twilio's smart encoding replaces with GSM-7 ones before sending.
SMART_REPLACEMENTS = {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."}
TWO_GSM7_SEGMENTS = 306  # septets: two concatenated segments of 153
TWO_UCS2_SEGMENTS = 134  # characters: two concatenated segments of 67


def fit_two_segments(text: str) -> str:
    """Shorten a text so it travels in at most two SMS segments.

    GSM-7 text may use 306 septets (extended characters take two); anything else is sent as
    UCS-2, where two segments hold 134 characters.
    """
    plain = "".join(SMART_REPLACEMENTS.get(ch, ch) for ch in text)
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in plain):
        septets = 0
        for index, ch in enumerate(plain):
            septets += 2 if ch in GSM7_EXTENDED else 1
            if septets > TWO_GSM7_SEGMENTS:
                return plain[: index - 3] + "..."
        return plain
    if len(text) <= TWO_UCS2_SEGMENTS:
        return text
    return text[: TWO_UCS2_SEGMENTS - 1] + "…"
