"""Render the domain's voice scripts as TwiML with the twilio library."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from dispatch.voice import Dial, Gather, Hangup, Pause, Redirect, Say, Script


def render(script: Script, base_url: str, language: str | None = None) -> str:
    """Return TwiML for ``script``; relative action URLs are made absolute on ``base_url``."""
    response = VoiceResponse()
    for step in script:
        if isinstance(step, Say):
            response.say(step.text, language=language)
        elif isinstance(step, Pause):
            response.pause(length=step.seconds)
        elif isinstance(step, Gather):
            options: dict[str, object] = {
                "action": _absolute(base_url, step.action),
                "method": "POST",
                "input": step.input,
                "timeout": step.timeout,
                "action_on_empty_result": step.action_on_empty_result,
            }
            if step.num_digits is not None:
                options["num_digits"] = step.num_digits
            if step.finish_on_key is not None:
                options["finish_on_key"] = step.finish_on_key
            if "speech" in step.input:
                options["speech_timeout"] = "auto"
                if language:
                    options["language"] = language
            gather = response.gather(**options)
            for text in step.says:
                gather.say(text, language=language)
        elif isinstance(step, Dial):
            dial_options: dict[str, object] = {"caller_id": step.caller_id, "timeout": step.timeout}
            if step.action:
                dial_options["action"] = _absolute(base_url, step.action)
                dial_options["method"] = "POST"
            dial = response.dial(**dial_options)
            dial.number(step.number)
        elif isinstance(step, Redirect):
            response.redirect(_absolute(base_url, step.url), method="POST")
        elif isinstance(step, Hangup):
            response.hangup()
    return str(response)


def empty_messaging_response() -> str:
    return str(MessagingResponse())


def _absolute(base_url: str, path: str) -> str:
    if path.startswith("http://") or path.startswith("https://") or not base_url:
        return path
    return base_url.rstrip("/") + path
