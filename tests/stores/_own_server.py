"""A throwaway Redis or memcached server on a free port, for tests that stop and restart it,
and what a store on one must survive.

The shared servers are never stopped; these ones belong to the test that started them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest

from coatcheck.stores import AsyncStore, Create, Load, Store

from ..support.servers import unavailable
from ._support import HOUR, NOW, key

__all__ = [
    "OwnServer",
    "async_check_restarts",
    "check_restarts",
    "free_port",
    "own_server",
    "require_binaries",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class OwnServer:
    """A server process the test may stop and start again on the same port."""

    def __init__(self, command: list[str]) -> None:
        self.port = free_port()
        self._command = [arg.replace("{port}", str(self.port)) for arg in command]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self._command[0]} did not start") from None

    def stop(self) -> None:
        """Kill the server, as a crash would (memcached's graceful stop lingers a second)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


def _existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"none of the users {names} exists")


def require_binaries(*binaries: str) -> None:
    """Skip the test when one of the programs is not installed; under ``CI=true``, fail it."""
    for binary in binaries:
        if shutil.which(binary) is None:
            unavailable(f"{binary} is not installed", ".ci/services.sh installs it")


@contextmanager
def own_server(kind: str) -> Iterator[OwnServer]:
    """Start a private ``redis`` or ``memcached`` server; skip (fail under CI) without one."""
    binary = {"redis": "redis-server", "memcached": "memcached"}[kind]
    require_binaries(binary)
    if kind == "redis":
        command = [binary, "--port", "{port}", "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no"]
    else:
        command = [binary, "-l", "127.0.0.1", "-p", "{port}", "-U", "0"]
        if os.geteuid() == 0:  # memcached refuses to run as root without a user to become
            command += ["-u", _existing_user("memcache", "nobody")]
    server = OwnServer(command)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def check_restarts(server: OwnServer, store: Store) -> None:
    """Restart ``server`` under ``store`` (which keeps nothing across a restart): between two
    requests, and with a request while it is down; the store works each time it is back."""
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    # Restarted between two requests: the pooled connection is stale, the next call works.
    server.stop()
    server.start()
    assert store.load(Load(key(1), NOW)) is None  # no persistence: the record went with it
    server.stop()
    with pytest.raises(store.unavailable_errors):
        store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    server.start()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    store.close()


async def async_check_restarts(
    server: OwnServer,
    store: AsyncStore,
    after_restart: Callable[[], Awaitable[object]],
    while_down: Callable[[], Awaitable[object]],
) -> None:
    """:func:`check_restarts` for an async store: ``after_restart`` is the first call once the
    server is back (it finds nothing: ``None``), ``while_down`` the one that must fail."""
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    server.stop()
    server.start()
    assert await after_restart() is None
    server.stop()
    with pytest.raises(store.unavailable_errors):
        await while_down()
    server.start()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    await store.aclose()
