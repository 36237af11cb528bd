"""HMAC-SHA256 signing with a list of keys: the newest signs, every one verifies.

Each secret is first bound to a *purpose* (``HMAC(secret, b"coatcheck:" + purpose)``), so a MAC
made for one cookie name or use never verifies for another (rack-session's "different purpose"
case). Listing an old secret after a new one lets values signed before a key rotation keep
working; :meth:`Signer.verify` says when a value was signed by an older key, so the caller can
re-issue it under the newest (Django's ``SECRET_KEY_FALLBACKS``, itsdangerous' key list).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from ..errors import ConfigurationError

__all__ = ["MIN_KEY_BYTES", "Signer"]

MIN_KEY_BYTES = 16
"""The shortest secret :class:`Signer` accepts, in bytes (once UTF-8 encoded)."""

_MAC_BYTES = 32
_MAC_CHARS = 43  # base64url of 32 bytes, without the one "=" of padding


def _derive(secret: bytes, purpose: bytes) -> tuple[hmac.HMAC, hmac.HMAC]:
    text_key = hmac.new(secret, b"coatcheck:" + purpose, hashlib.sha256).digest()
    # Byte blobs get a key one derivation further down, so a MAC over a text value can never
    # be replayed as the MAC of a byte payload (or the reverse) under the same purpose.
    bytes_key = hmac.new(text_key, b"bytes", hashlib.sha256).digest()
    # Keyed but unfed HMAC objects: copy() and update() is faster than hmac.new() per call.
    return hmac.new(text_key, digestmod=hashlib.sha256), hmac.new(
        bytes_key, digestmod=hashlib.sha256
    )


class Signer:
    """Sign and verify values with HMAC-SHA256 under a purpose and a list of keys.

    :param keys: secrets, newest first; at least one, each at least 16 bytes. ``str`` secrets
        are UTF-8 encoded. The first key signs; all of them verify.
    :param purpose: what the MACs are for (say ``"cookie:sid"``); a MAC made for one purpose
        never verifies for another.
    """

    __slots__ = ("_bytes_macs", "_purpose", "_text_macs")

    def __init__(self, keys: Sequence[str | bytes], *, purpose: str) -> None:
        if isinstance(keys, (str, bytes, bytearray)):
            raise ConfigurationError("keys must be a list of secrets, newest first, not one secret")
        if not isinstance(purpose, str) or not purpose:
            raise ConfigurationError("a Signer needs a non-empty purpose string")
        secrets: list[bytes] = []
        for key in keys:
            if isinstance(key, str):
                secret = key.encode("utf-8")
            elif isinstance(key, (bytes, bytearray)):
                secret = bytes(key)
            else:
                raise ConfigurationError(
                    f"a secret key must be str or bytes, not {type(key).__name__}"
                )
            if len(secret) < MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"every secret key must be at least {MIN_KEY_BYTES} bytes long"
                )
            secrets.append(secret)
        if not secrets:
            raise ConfigurationError("a Signer needs at least one secret key")
        derived = [_derive(secret, purpose.encode("utf-8")) for secret in secrets]
        self._purpose = purpose
        self._text_macs = tuple(text for text, _ in derived)
        self._bytes_macs = tuple(blob for _, blob in derived)

    @property
    def purpose(self) -> str:
        """The purpose the keys are bound to."""
        return self._purpose

    def __repr__(self) -> str:
        return f"Signer(purpose={self._purpose!r}, keys=<{len(self._text_macs)} hidden>)"

    def sign(self, value: str) -> str:
        """Return ``value + "." + MAC``, the MAC in base64url without padding, by the newest key."""
        mac = self._text_macs[0].copy()
        mac.update(value.encode("utf-8", "surrogatepass"))
        return value + "." + base64.urlsafe_b64encode(mac.digest())[:_MAC_CHARS].decode("ascii")

    def verify(self, signed: str) -> tuple[str, bool] | None:
        """Check a value made by :meth:`sign`.

        Return ``(value, signed_by_newest_key)``, or ``None`` when *signed* is malformed or its
        MAC matches no key. Never raises for any input.
        """
        value, dot, given = signed.rpartition(".")
        # compare_digest() refuses non-ASCII str, and a wrong length can never match anyway.
        if not dot or len(given) != _MAC_CHARS or not given.isascii():
            return None
        message = value.encode("utf-8", "surrogatepass")
        for index, base in enumerate(self._text_macs):
            mac = base.copy()
            mac.update(message)
            expected = base64.urlsafe_b64encode(mac.digest())[:_MAC_CHARS].decode("ascii")
            if hmac.compare_digest(expected, given):
                return value, index == 0
        return None

    def sign_bytes(self, data: bytes) -> bytes:
        """Return the 32-byte MAC of *data* by the newest key, followed by *data*."""
        mac = self._bytes_macs[0].copy()
        mac.update(data)
        return mac.digest() + data

    def verify_bytes(self, blob: bytes) -> bytes | None:
        """Return the data of a blob made by :meth:`sign_bytes`, or ``None`` if any key's MAC fails.

        Never raises for any input.
        """
        if not isinstance(blob, (bytes, bytearray)) or len(blob) < _MAC_BYTES:
            return None
        view = memoryview(blob)  # slices of a view copy nothing
        given, data = view[:_MAC_BYTES], view[_MAC_BYTES:]
        for base in self._bytes_macs:
            mac = base.copy()
            mac.update(data)
            if hmac.compare_digest(mac.digest(), given):
                return data.tobytes()
        return None
