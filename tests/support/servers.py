"""Where the test servers are, and what to do when one is missing.

Under ``CI=true`` a missing server fails the test (CI must never pass by skipping); locally it
skips with the reason, so a developer without, say, memcached can still run the rest.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

__all__ = ["SERVERS", "declared", "on_ci", "require_server", "unavailable"]

# name -> (host, port); overridable so a developer can point at other servers.
SERVERS: dict[str, tuple[str, int]] = {
    "postgresql": (os.environ.get("COATCHECK_TEST_PG_HOST", "127.0.0.1"), 5432),
    "mysql": (os.environ.get("COATCHECK_TEST_MYSQL_HOST", "127.0.0.1"), 3306),
    "redis": (os.environ.get("COATCHECK_TEST_REDIS_HOST", "127.0.0.1"), 6379),
    "memcached": (os.environ.get("COATCHECK_TEST_MEMCACHED_HOST", "127.0.0.1"), 11211),
}

_seen: dict[str, bool] = {}

#: The servers the running test declared with ``@pytest.mark.server(name)``, set by
#: tests/conftest.py before its fixtures run (a plain set: worker threads read it too).
declared: set[str] = set()


def on_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where nothing a test needs may be missing."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str, ci_hint: str, local_hint: str = "") -> NoReturn:
    """Something the test needs is missing: fail under ``CI=true`` (CI must never pass by
    skipping), skip locally, with the reason."""
    if on_ci():
        pytest.fail(f"{message} ({ci_hint})")
    pytest.skip(f"{message} ({local_hint})" if local_hint else message)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_server(name: str) -> tuple[str, int]:
    """Return the server's address, or fail (CI) / skip (locally) when nothing listens there."""
    if name not in declared:
        pytest.fail(
            f"this test needs the {name} server but is not marked @pytest.mark.server({name!r}),"
            ' so pytest -m "not server" would not leave it out'
        )
    host, port = SERVERS[name]
    if name not in _seen:
        _seen[name] = _answers(host, port)
    if not _seen[name]:
        unavailable(
            f"{name} server not reachable at {host}:{port}",
            "CI=true: servers are required; .ci/run starts them",
            "start it, or run .ci/run which does",
        )
    return host, port


# The session-rule tests (tests/rules) run on the memory store and on one server store per
# flavour; the store contract suite (tests/contract) runs on every store. unasync turns the
# async name into the sync one, so each flavour's generated tests pick their own.
async_rules_store = "redis"
sync_rules_store = "postgresql"
