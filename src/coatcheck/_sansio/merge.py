"""Three-way merge of one request's session changes onto a newer stored version.

When a save finds that another request saved the session since it was loaded, the ``merge``
concurrency mode replays *this* request's changes, key by key, on top of the newer data: requests
that touched different keys both win. ``base`` is the version this request loaded, ``theirs`` the
newer stored one, ``ours`` this request's data. A key both requests changed (even to the same
value: two increments of 5 both write 6) is a conflict; the policy says whether ours wins or
:class:`~coatcheck.errors.SessionConflict` is raised. Form tokens and flash messages merge as
queues: additions and removals of both sides survive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, NamedTuple

from ..errors import SessionConflict, SessionInterrupted
from .config import ConflictPolicy
from .document import (
    DEFAULT,
    FORM_TOKENS,
    MAX_FORM_TOKENS,
    QUEUES,
    USER,
    Codec,
    Corrupt,
    Document,
)
from .operations import MISSING, NotApplicable, Op, replay
from .ops import Record
from .session import Session

__all__ = ["Merged", "changed_keys", "merge", "rebase"]


_MISSING: Any = MISSING  # the operations' own marker: replay() reads it as an absent key


class Merged(NamedTuple):
    """The merge result and the keys both sides changed differently (``ns/key`` or ``key``)."""

    document: Document
    conflicts: list[str]


def _label(ns: str, key: str) -> str:
    return f"{ns}/{key}" if ns else key


def _without(items: list[Any], removed: Iterable[Any]) -> list[Any]:
    # Remove one occurrence per removed item: flash messages may repeat.
    result = list(items)
    for item in removed:
        if item in result:
            result.remove(item)
    return result


def _queue_delta(base: list[Any], ours: list[Any]) -> tuple[list[Any], list[Any]]:
    added = _without(ours, base)
    removed = _without(base, ours)
    return added, removed


def merge(
    ours: Document,
    base: Document,
    theirs: Document,
    changed: Iterable[tuple[str, str]],
    meta_changed: Iterable[str],
    ops: Mapping[tuple[str, str], Sequence[Op]] | None = None,
) -> Merged:
    """Apply the changes of ``ours`` relative to ``base`` on top of ``theirs``.

    A key in ``ops`` was changed by operations alone (``incr``, ``set_add``, ...): they are
    replayed on the value ``theirs`` holds, so both requests' changes count and there is no
    conflict, unless they cannot apply to it (another type), which is one.
    """
    data = {ns: dict(values) for ns, values in theirs.data.items()}
    meta = dict(theirs.meta)
    conflicts: list[str] = []
    ops = ops or {}
    for ns, key in changed:
        other = theirs.data.get(ns, {}).get(key, _MISSING)
        recorded = ops.get((ns, key))
        if recorded is not None:
            try:
                data.setdefault(ns, {})[key] = replay(recorded, other)
                continue
            except NotApplicable:
                pass  # a conflict, settled as a plain write's (below)
        mine = ours.data.get(ns, {}).get(key, _MISSING)
        original = base.data.get(ns, {}).get(key, _MISSING)
        if recorded is not None or other != original:
            # Both requests changed this key. Even when they wrote the same value it is a
            # conflict: two increments of 5 both write 6, and one of them is lost.
            conflicts.append(_label(ns, key))
        if mine is _MISSING:
            data.get(ns, {}).pop(key, None)
        else:
            data.setdefault(ns, {})[key] = mine
    for field in meta_changed:
        if field in QUEUES:
            added, removed = _queue_delta(
                list(base.meta.get(field) or ()), ours.meta.get(field) or []
            )
            merged = _without(list(meta.get(field) or ()), removed)
            merged.extend(item for item in added if field != FORM_TOKENS or item not in merged)
            if field == FORM_TOKENS:
                del merged[:-MAX_FORM_TOKENS]
            meta[field] = merged
            continue
        mine = ours.meta.get(field, _MISSING)
        original = base.meta.get(field, _MISSING)
        other = theirs.meta.get(field, _MISSING)
        if other != original:
            conflicts.append("user" if field == USER else field)
        if mine is _MISSING:
            meta.pop(field, None)
        else:
            meta[field] = mine
    kept = {ns: values for ns, values in data.items() if values}
    kept.setdefault(DEFAULT, {})
    return Merged(Document(kept, meta), conflicts)


def changed_keys(
    ours: Document, base: Document, changed: Set[tuple[str, str]], whole: bool
) -> set[tuple[str, str]]:
    """The keys to replay: those the session recorded, or every key after ``mark_modified()``."""
    keys = set(changed)
    if whole:
        for document in (ours, base):
            for ns, values in document.data.items():
                keys.update((ns, key) for key in values)
    return keys


def rebase(session: Session, newer: Record, codec: Codec, policy: ConflictPolicy) -> None:
    """Put this request's changes on top of ``newer``, the record a concurrent save left.

    Raises SessionConflict when both changed a key and the policy is ``raise``, and
    SessionInterrupted when either stored version cannot be read any more.
    """
    stored = session.stored
    try:
        theirs = codec.decode(newer.payload)
        base = codec.decode(stored.payload if stored is not None else b"")
    except Corrupt:
        raise SessionInterrupted("the stored session changed into something unreadable") from None
    ours = session.document
    changes = session.changes
    keys = changed_keys(ours, base, changes.keys, changes.whole)
    merged = merge(ours, base, theirs, keys, changes.meta, changes.ops)
    if merged.conflicts and policy == "raise":
        raise SessionConflict(merged.conflicts)
    session.rebase(merged.document, newer, keys)
