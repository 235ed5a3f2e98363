"""Round-robin arithmetic: who is next after the pool's pointer.

Pure functions; the engine supplies the pool order, the stored pointer and each member's
eligibility, and stores the result in the same transaction that inserts the offer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pick:
    member_key: str
    position: int
    skipped: tuple[tuple[str, str], ...]  # (member key, reason) in the order they were passed over


def start_position(
    order: Sequence[str], pointer_key: str | None, pointer_position: int | None
) -> int:
    """Return the index to start searching from: just after the pointer.

    When the last-offered member has left the pool, the rotation continues from the position
    they held, so the member who now stands there is next and nobody is skipped or repeated.
    """
    if not order:
        return 0
    if pointer_key is not None and pointer_key in order:
        return (list(order).index(pointer_key) + 1) % len(order)
    if pointer_position is not None:
        return pointer_position % len(order)
    return 0


def pick_next(
    order: Sequence[str],
    pointer_key: str | None,
    pointer_position: int | None,
    skip_reasons: Mapping[str, str | None],
) -> Pick | None:
    """Pick the first member after the pointer whose skip reason is None.

    ``skip_reasons`` maps each member key to why it cannot take this offer, or None when it
    can. Returns None when nobody in ``order`` is eligible (including an empty pool).
    """
    size = len(order)
    if size == 0:
        return None
    start = start_position(order, pointer_key, pointer_position)
    skipped: list[tuple[str, str]] = []
    for step in range(size):
        position = (start + step) % size
        key = order[position]
        reason = skip_reasons.get(key)
        if reason is None:
            return Pick(key, position, tuple(skipped))
        skipped.append((key, reason))
    return None
