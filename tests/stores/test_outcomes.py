"""What a 503 says when the store froze: "may have been saved" once a write was sent and not
confirmed (and then it does land, when the server resumes), "nothing was saved" when the store
failed before any write; both within the store's ``timeout``, through the WSGI and ASGI
middleware, on a private Redis and a private PostgreSQL that the tests freeze."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from coatcheck import AsyncSessionManager, SessionManager
from coatcheck._sansio.headers import OUTCOME_UNKNOWN_BODY, UNAVAILABLE_BODY
from coatcheck.asgi import SessionMiddleware as ASGIMiddleware
from coatcheck.stores import AsyncRedisStore, PostgreSQLStore, RedisStore, Store
from coatcheck.wsgi import SessionMiddleware as WSGIMiddleware

from ..middleware._support import session_config
from ._frozen import TIMES, FreezableServer, freezable_server
from ._support import unique

TIMEOUT = 0.5
MARGIN = 0.5
HEADER = "X-Session-Id"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[FreezableServer]:
    with freezable_server("redis") as server:
        yield server


@pytest.fixture(scope="module")
def pg_server() -> Iterator[FreezableServer]:
    with freezable_server("postgresql") as server:
        yield server


def _redis_url(server: FreezableServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0?prefix={unique('outcome:')}&timeout={TIMEOUT}"


class _Counter:
    """An app that counts visits in the session, freezing ``server`` first when asked to:
    after the middleware loaded the session, before it saves it."""

    def __init__(self, server: FreezableServer) -> None:
        self.server = server
        self.freeze_next = False

    def visit(self, session: Any) -> bytes:
        if self.freeze_next:
            self.freeze_next = False
            self.server.freeze()
        session["n"] = session.get("n", 0) + 1
        return str(session["n"]).encode()

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = self.visit(environ["coatcheck.session"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]


def _get(app: Any, ticket: str | None) -> tuple[str, dict[str, str], bytes]:
    """One GET through a WSGI app: status, headers and body."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "wsgi.url_scheme": "https",
    }
    if ticket is not None:
        environ["HTTP_X_SESSION_ID"] = ticket
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer.update(status=status, headers=dict(headers))
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def _frozen_saves(store: Store, server: FreezableServer, name: str) -> None:
    counter = _Counter(server)
    manager = SessionManager(store, session_config())
    app = WSGIMiddleware(counter.wsgi, manager, id_header=HEADER)
    status, headers, body = _get(app, None)
    assert (status, body) == ("200 OK", b"1")
    ticket = headers[HEADER]
    try:
        # Frozen between the load and the save: the write is sent and never confirmed.
        counter.freeze_next = True
        started = time.monotonic()
        status, headers, body = _get(app, ticket)
        took = TIMES[f"{name} WSGI 503, save unconfirmed"] = time.monotonic() - started
        assert status.startswith("503")
        assert body == OUTCOME_UNKNOWN_BODY
        assert int(headers["Content-Length"]) == len(body)
        assert took < TIMEOUT + MARGIN
        # Still frozen: the load fails before any write is sent.
        started = time.monotonic()
        status, _, body = _get(app, ticket)
        TIMES[f"{name} WSGI 503, load failed"] = time.monotonic() - started
        assert status.startswith("503")
        assert body == UNAVAILABLE_BODY
        assert b"nothing was saved" in body
    finally:
        server.thaw()
    # Resumed: the unconfirmed write landed after all, which is why the 503 could not say
    # "nothing was saved"; and the store serves again at once.
    deadline = time.monotonic() + 2.0
    while True:
        status, _, body = _get(app, ticket)
        assert status == "200 OK"
        if body == b"3" or time.monotonic() > deadline:
            break
    assert body == b"3"
    store.close()


@pytest.mark.server("redis")
def test_a_frozen_redis_through_wsgi(redis_server: FreezableServer) -> None:
    _frozen_saves(RedisStore.from_url(_redis_url(redis_server)), redis_server, "redis sync")


@pytest.mark.server("postgresql")
def test_a_frozen_postgresql_through_wsgi(pg_server: FreezableServer) -> None:
    url = f"postgresql://postgres@127.0.0.1:{pg_server.port}/postgres"
    store = PostgreSQLStore.from_url(f"{url}?table={unique('cc_outcome_')}&timeout={TIMEOUT}")
    store.create_tables()
    _frozen_saves(store, pg_server, "postgresql sync")


async def _asgi_get(app: Any, ticket: str | None) -> tuple[int, bytes]:
    headers = [] if ticket is None else [(HEADER.lower().encode(), ticket.encode())]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "scheme": "https"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    if ticket is None:
        ((_, value),) = [(n, v) for n, v in sent[0]["headers"] if n == HEADER.lower().encode()]
        return status, value
    return status, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.server("redis")
@pytest.mark.asyncio
async def test_a_frozen_redis_through_asgi(redis_server: FreezableServer) -> None:
    counter = _Counter(redis_server)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = counter.visit(scope["session"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    store = AsyncRedisStore.from_url(_redis_url(redis_server))
    asgi = ASGIMiddleware(app, AsyncSessionManager(store, session_config()), id_header=HEADER)
    _, ticket = await _asgi_get(asgi, None)
    try:
        counter.freeze_next = True
        started = time.monotonic()
        status, body = await _asgi_get(asgi, ticket.decode())
        took = TIMES["redis async ASGI 503, save unconfirmed"] = time.monotonic() - started
        assert (status, body) == (503, OUTCOME_UNKNOWN_BODY)
        assert took < TIMEOUT + MARGIN
        status, body = await _asgi_get(asgi, ticket.decode())
        assert (status, body) == (503, UNAVAILABLE_BODY)
    finally:
        redis_server.thaw()
    await asyncio.sleep(0.2)  # the resumed server applies what it had been sent
    assert await _asgi_get(asgi, ticket.decode()) == (200, b"3")
    await store.aclose()
