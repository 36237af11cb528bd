"""What the store benchmark writes: one realistic payload, a fixed clock and fresh keys."""

from __future__ import annotations

import json
import secrets
import time

from coatcheck.stores import LockRequest, _packed

TTL = 1800.0
TTL_MS = int(TTL * 1000)
LOCK = LockRequest("bench-lock-token", 30.0)
NOW = time.time()
EXPIRES = NOW + TTL

# A realistic small session: a user, a CSRF token, a cart, a flash message, preferences.
PAYLOAD = json.dumps(
    {
        "v": 1,
        "d": {
            "uid": 48213,
            "roles": ["customer", "beta"],
            "csrf": "b3f1c9a27e6d4f0a9c8e5d2b1a7f6e34",
            "cart": [{"sku": "SHOE-4471-42", "qty": 1}, {"sku": "SOCK-0193-M", "qty": 3}],
            "flash": [["info", "Your address was saved."]],
            "prefs": {"lang": "en-GB", "tz": "Europe/London", "theme": "dark"},
            "seen": 1764612000.25,
        },
    },
    separators=(",", ":"),
).encode()
# What the key-value raw floors write: the same bytes the store writes, made once.
VALUE = _packed.pack(PAYLOAD, 1, NOW, EXPIRES)

# Every key handed out, so the memcached run can delete what it wrote (memcached cannot list).
ISSUED: list[str] = []


def new_keys(n: int) -> list[str]:
    """Distinct storage keys (64 hex digits, as the core makes them)."""
    keys = [secrets.token_hex(32) for _ in range(n)]
    ISSUED.extend(keys)
    return keys


def unique() -> str:
    """A short tag for a run's own table, key prefix or directory."""
    return secrets.token_hex(5)
