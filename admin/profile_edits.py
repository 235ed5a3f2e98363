"""Quick roster edits of a profile: member status and numbers, dated overrides, pool order.

An edit is applied to the current version's document and then validated exactly like an
import, so a refused edit shows the same messages. Nothing is stored until the manager has
seen the diff and confirmed it with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from dispatch.profile import LoadedProfile, diff_profiles, dump_profile_yaml, load_profile

EDIT_KINDS: dict[str, tuple[str, ...]] = {
    "member": ("member", "active", "voice", "sms"),
    "add_override": ("member", "start", "end", "on_call", "note"),
    "remove_override": ("index",),
    "pool_order": ("pool", "order"),
}


class EditError(ValueError):
    """A quick edit whose form input is missing or names something not in the profile."""


@dataclass(frozen=True)
class Edit:
    """One quick edit as submitted: its kind and its raw form fields."""

    kind: str
    fields: Mapping[str, str]

    def describe(self) -> str:
        shown = ", ".join(f"{name}={value}" for name, value in self.fields.items() if value)
        return f"{self.kind}: {shown}"


@dataclass(frozen=True)
class Preview:
    loaded: LoadedProfile
    document: str
    diff: str


def parse_edit(form: Mapping[str, str], prefix: str = "") -> Edit:
    """Read an edit from form fields (optionally prefixed); raise EditError when malformed."""
    kind = form.get(prefix + "kind", "").strip()
    if kind not in EDIT_KINDS:
        raise EditError(f"edit kind {kind[:40]!r} is invalid: use one of {', '.join(EDIT_KINDS)}")
    fields = {name: form.get(prefix + name, "").strip()[:500] for name in EDIT_KINDS[kind]}
    return Edit(kind, fields)


def preview_edit(document: str, edit: Edit) -> Preview:
    """Apply ``edit`` to a stored document and validate the result like an import.

    Raise EditError for bad form input and ProfileError when the edited profile is invalid.
    """
    data = load_profile(document).profile.model_dump(mode="json", exclude_none=True)
    APPLY[edit.kind](data, edit.fields)
    loaded = load_profile(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    new_document = dump_profile_yaml(loaded.profile)
    return Preview(loaded, new_document, diff_profiles(document, new_document))


def _member(data: dict[str, Any], key: str) -> dict[str, Any]:
    for member in data.get("members", []):
        if member.get("key") == key:
            return dict(member)
    raise EditError(f"member {key[:64]!r} not found in the current profile")


def _replace_member(data: dict[str, Any], updated: dict[str, Any]) -> None:
    data["members"] = [
        updated if member.get("key") == updated["key"] else member for member in data["members"]
    ]


def _apply_member(data: dict[str, Any], fields: Mapping[str, str]) -> None:
    member = _member(data, fields["member"])
    member["active"] = _yes_no(fields["active"], "active")
    phones = {"voice": fields["voice"] or None, "sms": fields["sms"] or None}
    member["phones"] = {channel: number for channel, number in phones.items() if number}
    _replace_member(data, member)


def _apply_add_override(data: dict[str, Any], fields: Mapping[str, str]) -> None:
    _member(data, fields["member"])
    for name in ("start", "end"):
        if not fields[name]:
            raise EditError(
                f"{name} is missing: give the local date and time, e.g. 2025-06-10T17:00"
            )
    override: dict[str, Any] = {
        "member": fields["member"],
        "start": fields["start"],
        "end": fields["end"],
        "on_call": _yes_no(fields["on_call"], "on_call"),
    }
    if fields["note"]:
        override["note"] = fields["note"]
    schedule = data.setdefault("schedule", {})
    schedule["overrides"] = [*schedule.get("overrides", []), override]


def _apply_remove_override(data: dict[str, Any], fields: Mapping[str, str]) -> None:
    overrides = list(data.get("schedule", {}).get("overrides", []))
    text = fields["index"]
    if not text.isdigit() or int(text) >= len(overrides):
        raise EditError(f"override {text[:20]!r} not found: the profile has {len(overrides)}")
    del overrides[int(text)]
    data["schedule"]["overrides"] = overrides


def _apply_pool_order(data: dict[str, Any], fields: Mapping[str, str]) -> None:
    key = fields["pool"]
    order = [part.strip() for part in fields["order"].replace("\n", ",").split(",")]
    members = [part for part in order if part]
    pools = data.get("pools", [])
    if not any(pool.get("key") == key for pool in pools):
        raise EditError(f"pool {key[:64]!r} not found in the current profile")
    data["pools"] = [
        {**pool, "members": members} if pool.get("key") == key else pool for pool in pools
    ]


def _yes_no(value: str, name: str) -> bool:
    if value in ("yes", "true", "1", "on"):
        return True
    if value in ("no", "false", "0", "off", ""):
        return False
    raise EditError(f"{name}={value[:20]!r} is invalid: use yes or no")


APPLY = {
    "member": _apply_member,
    "add_override": _apply_add_override,
    "remove_override": _apply_remove_override,
    "pool_order": _apply_pool_order,
}
