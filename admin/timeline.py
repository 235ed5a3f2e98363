"""The timeline of one dispatch: every event and webhook delivery, with a sentence for each.

Sentences are built when the log is read, from the event kind and its stored detail, so the
wording can improve without touching the append-only rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from admin.queries import callback_text, caller_text
from admin.timefmt import duration_text, local_text, seconds_between, utc_iso, utc_text
from dispatch.models import Account, Dispatch, Event, Offer, OfferChannel, ProfileVersion, Receipt
from dispatch.twilio_errors import describe_error

# Detail fields never shown: the raw caller ID of a withheld caller is a carrier placeholder.
HIDDEN_DETAIL = frozenset({"caller_raw"})

MISSING = "?"

SENTENCES: dict[str, str] = {
    "dispatch_created": "{source_label} from {caller} to {answering_number}: route {route}, "
    "menu choice {menu_choice}, code {code}",
    "offering_started": "Offering started on route {route}; the chain ends by {chain_deadline}",
    "member_skipped": "Skipped {member}: {reason}",
    "offer_made": "Offer {seq} ({kind}, round {round}) to {who} by {channels_text}; "
    "window {window_seconds} s, deadline {deadline}",
    "channel_sent": "{channel} to {who} accepted by Twilio as {sid}",
    "send_failed": "{channel} to {who} failed at send attempt {attempt}{error_text}",
    "channel_ended": "{who}'s {channel} ended as {state}{error_text}",
    "offer_call_answered": "{who} answered the offer call",
    "answered_by": "Twilio answering machine detection: {answered_by}",
    "keypress": "{who} pressed {digits} (prompt {prompt})",
    "late_keypress": "{who} pressed a key after the offer closed: {outcome}, held by {held_by}",
    "rollover": "Offer to {who} rolled over ({reason}), {late_by_seconds} s after its deadline",
    "rollover_reconciled": "Reconciler rolled an overdue offer over, {late_by_seconds} s late",
    "round_started": "Round {round} started",
    "chain_cap_reached": "Chain cap of {cap_minutes} min reached",
    "passed": "{who} passed by {via}",
    "late_pass": "{who} passed by {via} after the offer closed ({offer_state}); nothing changed",
    "acknowledged": "{who} accepted by {via}, {ack_after} after the dispatch came in{late_text}",
    "stood_down": "Offer to {who} stood down ({reason})",
    "stand_down_text_queued": "'No longer needed' text queued for offer {offer_id} ({reason})",
    "callback_dialled": "{who} is being connected to the caller's callback number",
    "bridge_ended": "Call between {who_or_member} and the caller ended: {dial_status}",
    "dispatch_unacknowledged": "Unacknowledged after {offers} offers; "
    "final escalation line {escalation_line} paged",
    "no_one_available": "No one available: {reason}",
    "cancelled": "Cancelled by {actor}: {reason}",
    "no_escalation_line": "No final escalation line is configured, so nobody was alerted",
    "escalation_unanswered": "The final escalation line did not accept ({reason})",
    "message_taken": "Message taken for the office",
    "forwarded": "Forwarded to {forward_to}",
    "abandoned": "Abandoned: {reason}",
    "caller_followup": "Caller follow-up by {via}: {body}",
    "late_reply": "Late reply from {who}: {body} ({outcome})",
    "unsolicited_reply": "Unsolicited reply from {member}: {body} ({reason})",
    "unrecognised_reply": "Unrecognised reply: {body} (read as {classification})",
    "reply_needs_code": "Reply needs a dispatch code: {body}",
    "opt_out": "Opt-out of {number} from sender {sender} ({source})",
    "opt_in": "Opt-in of {number}",
    "number_flagged": "Number {number} flagged for {channel}{error_text}",
    "channel_paused": "{channel} paused for the account{error_text}",
    "receipt_rejected": "Webhook delivery rejected: {reason}",
    "duplicate_receipt": "Duplicate webhook delivery ignored: {claim_key}",
    "outbox_sent": "{purpose} {kind_label} to {to} sent as {sid}",
    "outbox_failed": "{purpose} {kind_label} to {to} failed{error_text}",
    "profile_imported": "Profile version {version} stored by {who}: {reason}",
    "profile_edited": "Profile edit by {who} ({edit}): version {version}, {reason}",
    "phi_dispatch_viewed": "Dispatch viewed by {who}",
    "dispatches_exported": "Dispatch list exported by {who} ({format})",
    "admin_login": "{who} logged in from {address}",
    "admin_login_failed": "Failed login for {email} from {address}",
    "admin_logout": "{who} logged out",
    "user_created": "User {email} created with role {role} by {who}",
    "user_deactivated": "User {email} deactivated by {who}",
    "api_token_created": "API token {name} ({prefix}…) created by {who}",
    "api_token_revoked": "API token {name} ({prefix}…) revoked by {who}",
}


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return MISSING


def sentence(kind: str, detail: dict[str, Any], actor: str | None) -> str:
    """Build the human sentence of one event from its kind, detail and actor."""
    fields = _Fields({key: _text(value) for key, value in detail.items()})
    fields.update(_derived(kind, detail, actor))
    template = SENTENCES.get(kind)
    if template is None:
        shown = ", ".join(f"{key}={_text(value)}" for key, value in sorted(detail.items())
                          if key not in HIDDEN_DETAIL)
        return f"{kind.replace('_', ' ').capitalize()}" + (f": {shown}" if shown else "")
    return template.format_map(fields)


def _derived(kind: str, detail: dict[str, Any], actor: str | None) -> dict[str, str]:
    code = detail.get("error_code")
    derived = {
        "who": actor or _text(detail.get("member")) or "the operator desk",
        "who_or_member": actor or _text(detail.get("member")) or "the member",
        "source_label": "Text" if detail.get("source") == "sms" else "Call",
        "error_text": f" (error {code}: {describe_error(int(str(code)))})" if _is_int(code)
        else "",
        "kind_label": "call update" if detail.get("kind") == "call_update"
        else _text(detail.get("kind")) or "message",
    }
    channels = detail.get("channels")
    if isinstance(channels, list):
        derived["channels_text"] = " and ".join(
            f"{_text(c.get('channel'))} to {_text(c.get('to'))}"
            for c in channels if isinstance(c, dict)
        ) or "no channel"
    if kind == "acknowledged":
        derived["ack_after"] = duration_text(_number(detail.get("seconds_to_acknowledge")))
        derived["late_text"] = _late_text(detail)
    if detail.get("caller") is None and kind == "dispatch_created":
        derived["caller"] = "an unknown caller"
    return derived


def _late_text(detail: dict[str, Any]) -> str:
    if detail.get("after_unacknowledged"):
        return " (late accept after the chain ran out; the desk is stood down)"
    if detail.get("late"):
        return " (after the offer had rolled over)"
    return ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: an event with its time in UTC and in the account's zone."""

    at: datetime
    utc: str
    local: str
    kind: str
    sentence: str
    actor: str | None
    offer_id: int | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "at": utc_iso(self.at),
            "kind": self.kind,
            "sentence": self.sentence,
            "actor": self.actor,
            "offer_id": self.offer_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery (receipt) as Twilio sent it, duplicates and rejections included."""

    received_at: datetime
    utc: str
    local: str
    route: str
    sid: str | None
    status: str
    sequence: str
    digits: str
    body: str
    answered_by: str
    error_code: str
    error_meaning: str
    outcome: str
    signature_ok: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "received_at": utc_iso(self.received_at),
            "route": self.route,
            "sid": self.sid,
            "status": self.status,
            "sequence": self.sequence,
            "digits": self.digits,
            "body": self.body,
            "answered_by": self.answered_by,
            "error_code": self.error_code,
            "error_meaning": self.error_meaning,
            "outcome": self.outcome,
            "signature_ok": self.signature_ok,
        }


@dataclass
class ChannelView:
    row: OfferChannel
    error_meaning: str
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class OfferView:
    offer: Offer
    channels: list[ChannelView]


@dataclass
class Timeline:
    dispatch: Dispatch
    account: Account
    version: ProfileVersion | None
    entries: list[Entry]
    offers: list[OfferView]
    other_deliveries: list[Delivery]

    @property
    def caller(self) -> str:
        return caller_text(self.dispatch.caller_number, self.dispatch.caller_withheld)

    @property
    def callback(self) -> str:
        d = self.dispatch
        return callback_text(d.callback_number, d.callback_supplied, d.caller_withheld)

    @property
    def seconds_to_first_offer(self) -> float | None:
        return seconds_between(self.dispatch.created_at, self.dispatch.first_offer_at)

    @property
    def seconds_to_acknowledge(self) -> float | None:
        return seconds_between(self.dispatch.created_at, self.dispatch.acknowledged_at)

    def local(self, at: datetime | None) -> str:
        return local_text(at, self.account.time_zone)


def build_timeline(session: Session, dispatch: Dispatch, account: Account) -> Timeline:
    """Load every event, offer, channel and webhook delivery of one dispatch."""
    tz = account.time_zone
    rows = session.execute(
        select(Event).where(Event.dispatch_id == dispatch.id, Event.account_id == account.id)
        .order_by(Event.seq)
    ).scalars()
    entries = [_entry(event, tz) for event in rows]

    channel_views: dict[str, ChannelView] = {}
    offers = []
    for offer in dispatch.offers:
        views = [ChannelView(row, describe_error(row.error_code) if row.error_code else "")
                 for row in offer.channels]
        channel_views.update({v.row.provider_sid: v for v in views if v.row.provider_sid})
        offers.append(OfferView(offer, views))

    others = []
    for receipt in _receipts(session, dispatch, list(channel_views)):
        delivery = _delivery(receipt, tz)
        view = channel_views.get(receipt.provider_sid or "")
        if view is not None:
            view.deliveries.append(delivery)
        else:
            others.append(delivery)

    version = session.get(ProfileVersion, dispatch.profile_version_id)
    return Timeline(dispatch, account, version, entries, offers, others)


def visible_detail(detail: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in detail.items() if key not in HIDDEN_DETAIL}


def _entry(event: Event, time_zone: str) -> Entry:
    return Entry(
        at=event.at,
        utc=utc_text(event.at),
        local=local_text(event.at, time_zone),
        kind=event.kind,
        sentence=sentence(event.kind, event.detail or {}, event.actor),
        actor=event.actor,
        offer_id=event.offer_id,
        detail=visible_detail(event.detail or {}),
    )


def _receipts(session: Session, dispatch: Dispatch, sids: list[str]) -> list[Receipt]:
    condition = or_(
        Receipt.dispatch_id == dispatch.id,
        Receipt.provider_sid.in_([*sids, dispatch.source_sid]),
    )
    statement = (
        select(Receipt)
        .where(condition)
        .where(or_(Receipt.account_id == dispatch.account_id, Receipt.account_id.is_(None)))
        .order_by(Receipt.received_at, Receipt.id)
    )
    return list(session.execute(statement).scalars())


def _delivery(receipt: Receipt, time_zone: str) -> Delivery:
    form = receipt.form or {}
    code = _form_value(form, "ErrorCode")
    status = (_form_value(form, "CallStatus") or _form_value(form, "MessageStatus")
              or _form_value(form, "SmsStatus"))
    return Delivery(
        received_at=receipt.received_at,
        utc=utc_text(receipt.received_at),
        local=local_text(receipt.received_at, time_zone),
        route=receipt.route,
        sid=receipt.provider_sid,
        status=status,
        sequence=_form_value(form, "SequenceNumber"),
        digits=_form_value(form, "Digits"),
        body=_form_value(form, "Body") or _form_value(form, "SpeechResult"),
        answered_by=_form_value(form, "AnsweredBy"),
        error_code=code,
        error_meaning=describe_error(int(code)) if code.isdigit() else "",
        outcome=receipt.outcome,
        signature_ok=receipt.signature_ok,
    )


def _form_value(form: dict[str, Any], name: str) -> str:
    """Return a form field as text; receipts may store repeated fields as lists."""
    value = form.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    return "" if value is None else str(value)
