"""What the WSGI and ASGI middleware tests share: real stores with a probe, which count the
contract calls and can lose their server; the configuration; checks on responses and logs.

The counting is done by subclassing a real store (the memory store, or any store class), so the
middleware under test talks to real store code; ``down = True`` makes every operation do what
a driver does when its server has gone: try to connect, and get ``ConnectionRefusedError`` from
a port nothing listens on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from typing import Any

import pytest

from coatcheck import CookieConfig, SessionConfig
from coatcheck.stores import AsyncMemoryStore, MemoryStore

__all__ = [
    "BASE_URL",
    "CLIENT_ADDR",
    "MERGE_CASES",
    "WRITES",
    "AsyncProbeStore",
    "ProbeStore",
    "assert_one_security_record",
    "assert_safe_headers",
    "attributes",
    "cookie_config",
    "session_config",
]

#: Where the test clients send their requests (the cookie's domain), and where they come from.
BASE_URL = "https://testserver.local"
CLIENT_ADDR = "203.0.113.5"

# Port 1 (tcpmux) is not served anywhere we run tests; connecting to it is refused at once.
CLOSED_PORT = ("127.0.0.1", 1)

#: The contract operations that change a store.
WRITES = ("create", "update", "touch", "delete", "clear_expired", "unlock")

#: (query for the test app's /headers route, the Vary and Cache-Control the client must get):
#: the app sets ``vary`` and ``cc`` itself and writes to the session.
MERGE_CASES = [
    ("", "Cookie", "no-store"),
    ("vary=Accept-Encoding", "Accept-Encoding, Cookie", "no-store"),
    ("vary=accept-encoding, COOKIE", "accept-encoding, COOKIE", "no-store"),
    ("vary=*", "*", "no-store"),
    ("cc=public, max-age=3600", "Cookie", "no-store"),
    ("cc=private, max-age=0", "Cookie", "private, max-age=0"),
    ("cc=max-age=0, No-Store", "Cookie", "max-age=0, No-Store"),
    ('cc=private="Set-Cookie", max-age=60', "Cookie", "no-store"),
]


class _Probe:
    calls: Counter[str]
    down: bool

    def _probe_init(self) -> None:
        self.calls = Counter()
        self.down = False


class ProbeStore(_Probe, MemoryStore):
    """A MemoryStore that counts its calls and can be taken down."""

    def __init__(self) -> None:
        super().__init__()
        self._probe_init()
        self.name = "probe+memory://"

    def _hit(self, op: str) -> None:
        if self.down:
            socket.create_connection(CLOSED_PORT, timeout=1.0).close()
        self.calls[op] += 1

    def writes(self) -> int:
        return sum(self.calls[op] for op in WRITES)

    def load(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("load")
        return super().load(*args, **kwargs)

    def create(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("create")
        return super().create(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("update")
        return super().update(*args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("touch")
        return super().touch(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("delete")
        return super().delete(*args, **kwargs)

    def clear_expired(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("clear_expired")
        return super().clear_expired(*args, **kwargs)

    def unlock(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("unlock")
        return super().unlock(*args, **kwargs)


class AsyncProbeStore(_Probe, AsyncMemoryStore):
    """An AsyncMemoryStore that counts its calls and can be taken down."""

    def __init__(self) -> None:
        super().__init__()
        self._probe_init()
        self.name = "probe+memory://"

    async def _hit(self, op: str) -> None:
        if self.down:
            _, writer = await asyncio.open_connection(*CLOSED_PORT)
            writer.close()
        self.calls[op] += 1

    def writes(self) -> int:
        return sum(self.calls[op] for op in WRITES)

    async def load(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("load")
        return await super().load(*args, **kwargs)

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("create")
        return await super().create(*args, **kwargs)

    async def update(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("update")
        return await super().update(*args, **kwargs)

    async def touch(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("touch")
        return await super().touch(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("delete")
        return await super().delete(*args, **kwargs)

    async def clear_expired(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("clear_expired")
        return await super().clear_expired(*args, **kwargs)

    async def unlock(self, *args: Any, **kwargs: Any) -> Any:
        await self._hit("unlock")
        return await super().unlock(*args, **kwargs)


def cookie_config(**overrides: Any) -> CookieConfig:
    """The cookie the middleware tests configure: every attribute set, so each can be checked."""
    settings: dict[str, Any] = {
        "name": "sid",
        "path": "/",
        "domain": "testserver.local",
        "secure": True,
        "httponly": True,
        "samesite": "strict",
    }
    settings.update(overrides)
    return CookieConfig(**settings)


def session_config(**overrides: Any) -> SessionConfig:
    settings: dict[str, Any] = {"cookie": cookie_config(), "secret_keys": ["k" * 32]}
    settings.update(overrides)
    return SessionConfig(**settings)


def assert_safe_headers(headers: Any) -> None:
    """No CR, LF or NUL in any response header name or value (no response splitting)."""
    for name, value in headers.multi_items():
        for text in (name, value):
            assert not any(c in text for c in "\r\n\0"), (name, value)


def attributes(set_cookie: str) -> set[str]:
    """The attributes of a Set-Cookie value, without the pair and the lifetime."""
    parts = [p.strip() for p in set_cookie.split(";")[1:]]
    return {p for p in parts if not p.lower().startswith(("expires=", "max-age="))}


def assert_one_security_record(
    caplog: pytest.LogCaptureFixture, reason: str, secrets: list[str]
) -> None:
    """Exactly one coatcheck.security record, with ``reason``, carrying none of ``secrets``."""
    records = [r for r in caplog.records if r.name == "coatcheck.security"]
    assert len(records) == 1, [r.getMessage() for r in records]
    record = records[0]
    assert record.levelno >= logging.WARNING
    assert record.reason == reason  # type: ignore[attr-defined]
    texts = [record.getMessage(), *(str(v) for v in vars(record).values())]
    for secret in secrets:
        assert secret
        assert not any(secret in text for text in texts), "raw ticket leaked into the log"
