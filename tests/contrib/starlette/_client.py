"""What the Starlette and FastAPI integration tests share: Starlette's TestClient, the stores
the middleware runs on, and a Redis URL of the test's own.

``starlette.testclient`` prefers the ``httpx2`` package and, on plain ``httpx``, warns once at
import that this is deprecated; that warning says nothing about coatcheck, so it is silenced
for the import alone (filterwarnings=error would fail collection on it).
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from tests.support import servers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["STORES", "TestClient", "store_url"]

#: The stores every integration test parametrised on ``store_kind`` runs on.
STORES = [
    "memory",
    "sqlite",
    "files",
    pytest.param("redis", marks=pytest.mark.server("redis")),
]


def store_url(kind: str, tmp_path: Path) -> str:
    """A fresh store of ``kind`` as a URL: files under ``tmp_path``, Redis keys under a prefix
    of this test's own (nothing is flushed; the keys expire with their sessions)."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    if kind == "files":
        return f"file://{tmp_path / 'sessions'}"
    host, port = servers.require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-test-{uuid.uuid4().hex}:"
