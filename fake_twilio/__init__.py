"""A loopback stand-in for Twilio's REST API and webhooks, for tests, the demo and benchmarks."""

from fake_twilio.app import create_app
from fake_twilio.calls import FakeCall
from fake_twilio.magic import MAGIC_NUMBERS, TwilioError
from fake_twilio.messages import FakeMessage
from fake_twilio.phones import Phone
from fake_twilio.runner import start_in_thread
from fake_twilio.server import FakeTwilio

__all__ = [
    "MAGIC_NUMBERS",
    "FakeCall",
    "FakeMessage",
    "FakeTwilio",
    "Phone",
    "TwilioError",
    "create_app",
    "start_in_thread",
]
