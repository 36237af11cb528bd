"""A pytest plugin for aiohttp-session's own storage tests (run by test_aiohttp_suite.py in a
subprocess): every app those tests build gets a :class:`CoatcheckStorage`, and their direct
pokes at the backend go through coatcheck.

Loaded with ``-p aiohttp_suite_plugin`` (this directory on ``PYTHONPATH``) and
``--noconftest`` (their conftest starts Redis and memcached in Docker). Per test it replaces,
in the test's module, the helpers the tests call by name:

- ``create_app(handler, ...)``: the same routes, with aiohttp-session's middleware on a
  ``CoatcheckStorage`` (``max_age`` passed on) over the module's backend: Redis for
  ``test_redis_storage`` (the ``redis`` client the test hands over, under a prefix of the
  test's own), memcached for ``test_memcached_storage``, an SQLite file otherwise;
- ``make_cookie(client, [backend,] data)``: a session holding ``data`` stored by coatcheck's
  manager (the sync one where the test calls it without ``await``), its cookie put in the
  client's jar, in place of a record written by hand in aiohttp-session's format;
- ``load_cookie(client, backend)``: the stored session the client's cookie names, in
  aiohttp-session's shape (``{"session": data, "created": seconds}``, ``{}`` for none).

and provides the fixtures their conftest did: ``aiohttp_client`` (aiohttp's own
``TestServer``/``TestClient``, closed after the test), ``redis_url``, and ``redis`` and
``memcached``, which answer the calls the tests make on them (``ttl``, ``exists``, ``get``)
for the session the key names (``AIOHTTP_SESSION_<cookie value>``) from coatcheck's records.
Each test records how many storages it built and how many sessions they loaded (junit
properties), so the caller can tell that the storage under test was coatcheck's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_session
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from coatcheck import SessionManager
from coatcheck.contrib.aiohttp import AiohttpSession, CoatcheckStorage
from coatcheck.stores import AsyncMemcachedStore, AsyncRedisStore

COOKIE = "AIOHTTP_SESSION"
SECRET = "aiohttp-session-suite-secret-key-0123456789"
REDIS_URL = os.environ.get("COATCHECK_SUITE_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED_URL = os.environ.get("COATCHECK_SUITE_MEMCACHED_URL", "memcached://127.0.0.1:11211")


class CountingStorage(CoatcheckStorage):
    """CoatcheckStorage that counts the sessions it loads, for the junit properties."""

    loaded = 0

    async def load_session(self, request: web.Request) -> AiohttpSession:
        type(self).loaded += 1
        return await super().load_session(request)


class Glue:
    """One test's coatcheck side: its backend, the storages its apps got."""

    def __init__(self, module: str, folder: Path) -> None:
        self.kind = module.rpartition(".")[2].removeprefix("test_").removesuffix("_storage")
        self.database = folder / "sessions.db"
        self.prefix = f"coatcheck-suite-{uuid.uuid4().hex}:"
        self.storages: list[CoatcheckStorage] = []
        #: test_encrypted_cookie_storage's key of the app: a cookie made with another one
        #: stands for a session the app cannot read.
        self.app_key: Any = None

    @property
    def storage(self) -> CoatcheckStorage:
        assert self.storages, "make_cookie/load_cookie before create_app"
        return self.storages[-1]

    def build(self, backend: Any = None, max_age: int | None = None) -> CoatcheckStorage:
        store: Any
        if self.kind == "redis":
            client = backend.client if isinstance(backend, RedisProbe) else backend
            if not isinstance(client, aioredis.Redis):
                raise TypeError(f"expected a aioredis.Redis, got {client!r}")
            store = AsyncRedisStore(client, prefix=self.prefix)
        elif self.kind == "memcached":
            store = AsyncMemcachedStore(url=MEMCACHED_URL, prefix=self.prefix)
        else:
            store = f"sqlite:///{self.database}"
        storage = CountingStorage(
            store, max_age=max_age, secret_key=SECRET, create_tables=True, warn_insecure=False
        )
        self.storages.append(storage)
        return storage

    def create_app(self, handler: Any, *args: Any, **kwargs: Any) -> web.Application:
        """Each module's create_app, its routes as theirs, on CoatcheckStorage."""
        if self.kind in ("redis", "memcached"):
            # create_app(handler, backend, max_age=None, key_factory=...)
            backend = kwargs.get(self.kind, args[0] if args else None)
            max_age = kwargs.get("max_age", args[1] if len(args) > 1 else None)
            storage = self.build(backend, max_age)
            handlers = [("/", handler)]
        elif self.kind in ("cookie", "encrypted_cookie"):
            # create_app(handler) / create_app(handler, key)
            storage, handlers = self.build(), [("/", handler)]
        else:
            # test_http_exception / test_response_types: create_app(*(url, handler))
            storage, handlers = self.build(), [handler, *args]
        app = web.Application(middlewares=[aiohttp_session.session_middleware(storage)])
        for url, route in handlers:
            app.router.add_route("GET", url, route)
        return app

    async def make_cookie(self, client: TestClient, *args: Any) -> None:
        manager = self.storage.manager
        session = await manager.open(None)
        session.update(args[-1])
        outcome = await manager.save(session)
        assert outcome.ticket is not None
        client.session.cookie_jar.update_cookies({COOKIE: outcome.ticket})

    def storage_class(self, *args: Any, max_age: int | None = None, **kwargs: Any) -> Any:
        """In place of a storage class a test builds itself (its key ignored)."""
        return self.build(max_age=max_age)

    def make_cookie_sync(self, client: TestClient, *args: Any) -> None:
        # Called without await: the sync manager writes the same SQLite file.
        config = self.storage.manager.config
        if len(args) == 2 and args[0] is not self.app_key:
            # make_cookie(client, other_fernet, data): a cookie sealed with another key is,
            # here, a ticket signed with another secret key.
            config = dataclasses.replace(config, secret_keys=["another" + SECRET])
        with SessionManager(f"sqlite:///{self.database}", config) as manager:
            manager.store.create_tables()  # type: ignore[attr-defined]
            session = manager.open(None)
            session.update(args[-1])
            outcome = manager.save(session)
        assert outcome.ticket is not None
        client.session.cookie_jar.update_cookies({COOKIE: outcome.ticket})

    async def stored(self, ticket: str | None) -> AiohttpSession | None:
        """The stored session ``ticket`` names (opened read-only: nothing is touched)."""
        if not ticket:
            return None
        session = await self.storage.manager.open(ticket, read_only=True)
        assert isinstance(session, AiohttpSession)
        return None if session.is_new else session

    async def load_cookie(self, client: TestClient, *args: Any) -> Any:
        cookies = client.session.cookie_jar.filter_cookies(client.make_url("/"))
        morsel = cookies.get(COOKIE)
        session = await self.stored(None if morsel is None else morsel.value)
        return {} if session is None else aiohttp_shape(session)

    async def stored_by_name(self, name: str | bytes) -> AiohttpSession | None:
        text = name.decode() if isinstance(name, bytes) else name
        assert text.startswith(COOKIE + "_"), text
        return await self.stored(text.removeprefix(COOKIE + "_"))


def aiohttp_shape(session: AiohttpSession) -> dict[str, Any]:
    """A stored session as aiohttp-session's storages keep it."""
    return {"session": dict(session), "created": session.created}


class RedisProbe:
    """The tests' ``redis``: a real client (for create_app), answering ``ttl`` and
    ``exists`` for aiohttp-session's key names from coatcheck's records."""

    def __init__(self, client: aioredis.Redis, glue: Glue) -> None:
        self.client = client
        self.glue = glue

    async def ttl(self, name: str) -> int:
        session = await self.glue.stored_by_name(name)
        if session is None:
            return -2  # Redis's answer for a key that does not exist
        ttl: int = await self.client.ttl(f"{self.glue.prefix}{{{session.key}}}")
        return ttl

    async def exists(self, name: str) -> int:
        return int(await self.glue.stored_by_name(name) is not None)


class MemcachedProbe:
    """The tests' ``memcached``: ``get`` of aiohttp-session's key names answers the stored
    session in aiohttp-session's JSON, from coatcheck's record."""

    def __init__(self, glue: Glue) -> None:
        self.glue = glue

    async def get(self, key: bytes) -> bytes | None:
        session = await self.glue.stored_by_name(key)
        return None if session is None else json.dumps(aiohttp_shape(session)).encode()


@pytest.fixture
def _glue(request: pytest.FixtureRequest, tmp_path: Path) -> Glue:
    return Glue(request.module.__name__, tmp_path)


@pytest_asyncio.fixture(autouse=True)
async def _coatcheck_storage(
    request: pytest.FixtureRequest, _glue: Glue, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    module = request.module
    CountingStorage.loaded = 0
    monkeypatch.setattr(module, "create_app", _glue.create_app)
    if hasattr(module, "make_cookie"):
        is_async = _glue.kind in ("redis", "memcached")
        maker = _glue.make_cookie if is_async else _glue.make_cookie_sync
        monkeypatch.setattr(module, "make_cookie", maker)
    if hasattr(module, "load_cookie"):
        monkeypatch.setattr(module, "load_cookie", _glue.load_cookie)
    if _glue.kind == "encrypted_cookie":
        # test_fernet_ttl builds its storage itself; make_cookie's key is told apart.
        monkeypatch.setattr(module, "EncryptedCookieStorage", _glue.storage_class)
        _glue.app_key = request.getfixturevalue("fernet")
    yield
    request.node.user_properties.append(("coatcheck_storages", len(_glue.storages)))
    request.node.user_properties.append(("coatcheck_sessions", CountingStorage.loaded))
    for storage in _glue.storages:
        await storage.aclose()


@pytest_asyncio.fixture
async def aiohttp_client() -> AsyncIterator[Callable[[web.Application], Awaitable[TestClient]]]:
    clients: list[TestClient] = []

    async def make(app: web.Application) -> TestClient:
        client: TestClient = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest_asyncio.fixture(name="redis")
async def redis_probe(_glue: Glue) -> AsyncIterator[RedisProbe]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    yield RedisProbe(client, _glue)
    # Only this test's keys: the server is shared.
    keys = [key async for key in client.scan_iter(match=_glue.prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(name="memcached")
def memcached_probe(_glue: Glue) -> MemcachedProbe:
    return MemcachedProbe(_glue)
