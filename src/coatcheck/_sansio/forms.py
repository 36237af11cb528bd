"""Form tokens and flash messages: two queues a session keeps in its metadata.

Form tokens (Quixote's) defeat cross-site request forgery: a page puts a fresh token in its form
and the handler consumes it, once; at most :data:`MAX_FORM_TOKENS` stay outstanding, oldest
dropped first. Flash messages wait for the next page the client sees. Both are lists in the
document's metadata (``FORM_TOKENS``, ``FLASH``); each function here records the field it
changed in ``changed`` (the request's ``Changes.meta``), so a merge replays it as a queue.
"""

from __future__ import annotations

import hmac
from typing import Any

from .document import FLASH, FORM_TOKENS, MAX_FORM_TOKENS
from .ids import new_token

__all__ = ["add_flash", "add_form_token", "has_form_token", "remove_form_token", "take_flashed"]


def add_form_token(meta: dict[str, Any], changed: set[str]) -> str:
    """A new token, queued last; the oldest go beyond MAX_FORM_TOKENS."""
    tokens: list[str] = list(meta.get(FORM_TOKENS) or ())
    token = new_token()
    tokens.append(token)
    del tokens[:-MAX_FORM_TOKENS]
    meta[FORM_TOKENS] = tokens
    changed.add(FORM_TOKENS)
    return token


def has_form_token(meta: dict[str, Any], token: object) -> bool:
    """True when ``token`` is outstanding; compares in constant time against every token."""
    if not isinstance(token, str):
        return False
    encoded = token.encode("utf-8", "surrogatepass")
    found = False
    for candidate in meta.get(FORM_TOKENS) or ():
        found |= hmac.compare_digest(candidate.encode(), encoded)
    return found


def remove_form_token(meta: dict[str, Any], changed: set[str], token: str) -> None:
    """Drop an outstanding ``token`` so it cannot be used again."""
    meta[FORM_TOKENS] = [t for t in meta.get(FORM_TOKENS) or () if t != token]
    changed.add(FORM_TOKENS)


def add_flash(meta: dict[str, Any], changed: set[str], message: Any, category: str) -> None:
    """Queue ``message`` under ``category``."""
    messages = list(meta.get(FLASH) or ())
    messages.append([category, message])
    meta[FLASH] = messages
    changed.add(FLASH)


def take_flashed(
    meta: dict[str, Any], changed: set[str], category: str | None
) -> list[tuple[str, Any]]:
    """Remove and return the queued ``(category, message)`` pairs of one category, or all."""
    messages = meta.get(FLASH) or []
    taken = [(c, m) for c, m in messages if category is None or c == category]
    if taken:
        meta[FLASH] = [[c, m] for c, m in messages if category is not None and c != category]
        changed.add(FLASH)
    return taken
