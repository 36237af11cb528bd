"""Plain helpers of the aiohttp integration: the session's headers put on an aiohttp response,
the 503 raised when the store fails, the secret keys read, and the start-up warning."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

from aiohttp import web

from .._sansio.headers import check_values, merge_headers, refusal
from ..errors import ConfigurationError, SessionLocked, StoreError

__all__ = ["add_headers", "secret_keys", "unavailable", "warn_insecure"]

log = logging.getLogger("coatcheck")

# Shorter secret keys get the start-up warning (32 characters: 192 bits of urlsafe base64).
_MIN_SECRET = 32
# The 503's own Content-Type and Content-Length are aiohttp's to set from its text.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


def add_headers(response: web.StreamResponse, extra: list[tuple[str, str]]) -> None:
    """Put a save's headers on ``response``, merging Vary and Cache-Control with its own
    (:func:`~coatcheck._sansio.headers.merge_headers`)."""
    if not extra:
        return
    current = response.headers
    if "Vary" in current or "Cache-Control" in current:
        merged = merge_headers(current.items(), extra)
        current.clear()
        current.extend(merged)
        return
    # The usual response: nothing to merge with, the session's headers are added.
    check_values(extra)
    current.extend(extra)


def unavailable(exc: StoreError | SessionLocked) -> web.HTTPServiceUnavailable:
    """The 503 for ``exc`` (:func:`~coatcheck._sansio.headers.refusal`), raised from the
    storage so aiohttp answers it whichever middleware called the storage."""
    headers, body = refusal(exc)
    kept = [(name, value) for name, value in headers if name.lower() not in _BODY_HEADERS]
    return web.HTTPServiceUnavailable(
        headers=kept, text=body.decode("utf-8"), content_type="text/plain"
    )


def secret_keys(secret_key: object) -> list[str | bytes]:
    """``secret_key`` as a list of keys, newest first (empty: no signing)."""
    if secret_key is None:
        return []
    items: Iterable[object] = (
        [secret_key] if isinstance(secret_key, (str, bytes)) else cast(Iterable[object], secret_key)
    )
    keys = list(items)
    if not keys or not all(isinstance(key, (str, bytes)) and key for key in keys):
        raise ConfigurationError("secret_key must be a non-empty string, or a sequence of them")
    return cast(list[str | bytes], keys)


def warn_insecure(secure: bool, keys: list[str | bytes]) -> None:
    """Log the start-up warning when the cookie lacks Secure or the newest key is short."""
    weak = []
    if not secure:
        weak.append("the session cookie lacks Secure, so it also travels over plain http")
    if keys and len(keys[0]) < _MIN_SECRET:
        weak.append(f"secret_key is shorter than {_MIN_SECRET} characters")
    if weak:
        log.warning(
            "coatcheck.contrib.aiohttp.CoatcheckStorage: %s. Set secure=True behind https, "
            "with a long random secret_key (warn_insecure=False silences this in development)",
            "; ".join(weak),
        )
