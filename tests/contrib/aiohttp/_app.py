"""What the aiohttp integration tests share: an app with the usual routes on a
CoatcheckStorage, the stores it runs on, and a client for it.

aiohttp 3.14 warns (``NotAppKeyWarning``) once per key about plain ``str`` request keys,
which aiohttp-session 2.12 uses for its own; that warning is aiohttp-session's, so the tests
let it through from that module only (:data:`AIOHTTP_SESSION_KEYS`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp_session
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from coatcheck.contrib.aiohttp import CoatcheckStorage, get_session, new_session, setup
from tests.support import servers

__all__ = ["AIOHTTP_SESSION_KEYS", "KEY", "STORES", "client", "make_app", "store_url"]

KEY = "a-long-enough-secret-key-for-the-aiohttp-tests"
AIOHTTP_SESSION_KEYS = pytest.mark.filterwarnings(
    "ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session"
)
#: The stores the integration tests run on.
STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.server("redis"))]


def store_url(kind: str, tmp_path: Path) -> str:
    """A fresh store of ``kind``: an SQLite file under ``tmp_path``, or Redis keys under a
    prefix of this test's own (nothing is flushed; the keys expire with their sessions)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    host, port = servers.require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-test-{uuid.uuid4().hex}:"


async def count(request: web.Request) -> web.Response:
    session = await get_session(request)
    session["count"] = session.get("count", 0) + 1
    return web.json_response({"count": session["count"], "new": session.new})


async def whoami(request: web.Request) -> web.Response:
    session = await get_session(request)
    return web.json_response({"user": session.get("user"), "new": session.new})


async def login(request: web.Request) -> web.Response:
    session = await new_session(request)  # rotation: the previous session dies
    session["user"] = request.query["user"]
    return web.json_response({"user": session["user"]})


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    return web.json_response({})


async def remember(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.max_age = int(request.query["seconds"])
    session["remembered"] = True
    return web.json_response({"max_age": session.max_age})


def make_app(storage: CoatcheckStorage, *, coatcheck_setup: bool = True) -> web.Application:
    """The test routes on ``storage``, with coatcheck's setup() or aiohttp-session's."""
    app = web.Application()
    if coatcheck_setup:
        setup(app, storage)
    else:
        aiohttp_session.setup(app, storage)
    for path, handler in (
        ("/count", count),
        ("/whoami", whoami),
        ("/login", login),
        ("/logout", logout),
        ("/remember", remember),
    ):
        app.router.add_get(path, handler)
    return app


@asynccontextmanager
async def client(app: web.Application, **options: Any) -> AsyncIterator[TestClient]:
    """A test client on ``app`` (its startup and cleanup handlers run)."""
    async with TestClient(TestServer(app), **options) as test_client:
        yield test_client
