"""Session ids and tokens: generation, validation, and the forms they take at rest and in logs.

A session id is ``secrets.token_urlsafe(nbytes)``: *nbytes* bytes from the OS CSPRNG, base64url
without padding. It is untrusted input whenever it comes back from a client, so it is checked
against an allow-list (:func:`is_valid_session_id`) before anything else touches it. Stores never
see the id itself, only :func:`storage_key` (its SHA-256), so a leaked store yields no usable
cookie; logs never see it either, only :func:`fingerprint` (a keyed HMAC).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets

from ..errors import ConfigurationError

__all__ = [
    "MIN_ID_BYTES",
    "agent_digest",
    "fingerprint",
    "id_length",
    "id_pattern",
    "is_valid_session_id",
    "new_session_id",
    "new_token",
    "storage_key",
]

MIN_ID_BYTES = 16
"""The fewest random bytes an id or token may have: 128 bits (OWASP, ASVS 5 7.2.3)."""

# The last base64 character of an unpadded encoding carries 2 (nbytes % 3 == 1) or 4
# (nbytes % 3 == 2) data bits; the rest are zero in any id token_urlsafe() produces. Only these
# characters can therefore end a genuine id, which rejects non-canonical look-alikes too.
_LAST_CHAR = {0: "A-Za-z0-9_-", 1: "AQgw", 2: "AEIMQUYcgkosw048"}


def _check_nbytes(nbytes: int) -> None:
    if type(nbytes) is not int or nbytes < MIN_ID_BYTES:
        raise ConfigurationError(
            f"ids need an int of at least {MIN_ID_BYTES} bytes, got {nbytes!r}"
        )


def new_session_id(nbytes: int = 32) -> str:
    """Return a new random session id of *nbytes* bytes (at least 16) from the OS CSPRNG."""
    _check_nbytes(nbytes)
    return secrets.token_urlsafe(nbytes)


def id_length(nbytes: int) -> int:
    """Return the exact length in characters of an id made by ``new_session_id(nbytes)``."""
    _check_nbytes(nbytes)
    return (4 * nbytes + 2) // 3


@functools.lru_cache(maxsize=16, typed=True)
def _id_pattern(nbytes: int) -> re.Pattern[str]:
    _check_nbytes(nbytes)
    body = id_length(nbytes) - 1
    # Explicit ASCII ranges: \w would admit Unicode letters and digits such as "٣".
    return re.compile(f"[A-Za-z0-9_-]{{{body}}}[{_LAST_CHAR[nbytes % 3]}]")


def is_valid_session_id(value: object, nbytes: int = 32) -> bool:
    """Tell whether *value* could be an id made by ``new_session_id(nbytes)``.

    An allow-list check: a ``str`` of exactly :func:`id_length` ASCII characters from
    ``[A-Za-z0-9_-]``, in canonical base64url form. Never raises for any *value*; *nbytes* is
    configuration and a bad one raises :class:`~coatcheck.errors.ConfigurationError`.
    """
    if type(value) is not str:
        return False
    return _id_pattern(nbytes).fullmatch(value) is not None


def id_pattern(nbytes: int = 32) -> re.Pattern[str]:
    """The compiled allow-list behind :func:`is_valid_session_id`, to ``fullmatch`` a str."""
    return _id_pattern(nbytes)


def storage_key(session_id: str) -> str:
    """Return the key a store files the session under: the SHA-256 hex digest of the id."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(session_id: str, key: bytes) -> str:
    """Return how *session_id* may appear in logs: 16 hex chars of HMAC-SHA256 under *key*.

    Safe for any string, including an invalid id from a hostile cookie. The key keeps log
    readers from confirming a guessed id offline.
    """
    mac = hmac.new(key, session_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return mac.hexdigest()[:16]


def new_token(nbytes: int = 16) -> str:
    """Return a random URL-safe token of *nbytes* bytes (at least 16), for form or lock tokens."""
    _check_nbytes(nbytes)
    return secrets.token_urlsafe(nbytes)


def agent_digest(user_agent: str | None) -> str:
    """What a session bound to its User-Agent keeps of it: 16 hex digits of its SHA-256.

    The binding needs equality only, so the string itself is never stored.
    """
    return hashlib.sha256((user_agent or "").encode("utf-8", "replace")).hexdigest()[:16]
