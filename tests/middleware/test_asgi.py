"""The ASGI middleware, end to end: a Starlette app using ``request.session``, driven through
httpx's ASGI transport, on a real (probed) asyncio store."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from coatcheck import AsyncSessionManager
from coatcheck._sansio.ids import new_session_id
from coatcheck.asgi import SessionMiddleware
from coatcheck.stores import AsyncRedisStore, AsyncSQLiteStore
from coatcheck.testing import FrozenClock

from ._support import (
    MERGE_CASES,
    AsyncProbeStore,
    assert_one_security_record,
    assert_safe_headers,
    session_config,
)

BASE_URL = "https://testserver.local"
CLIENT_ADDR = "203.0.113.5"


def starlette_app(peer: list[httpx.AsyncClient]) -> Starlette:
    """The same small app as the WSGI tests', written the Starlette way."""

    async def untouched(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def read(request: Request) -> Response:
        return PlainTextResponse(repr(request.session.get("n")))

    async def incr(request: Request) -> Response:
        request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse(repr(request.session["n"]))

    async def login(request: Request) -> Response:
        request.session.regenerate()  # type: ignore[attr-defined]
        request.session["user"] = "ann"
        return PlainTextResponse(repr(request.session.get("n")))

    async def logout(request: Request) -> Response:
        request.session.destroy()  # type: ignore[attr-defined]
        return PlainTextResponse("bye")

    async def fail(request: Request) -> Response:
        request.session["n"] = -1
        return PlainTextResponse("failed", status_code=int(request.query_params.get("status", 500)))

    async def headers(request: Request) -> Response:
        request.session["n"] = 1
        extra = {}
        if "vary" in request.query_params:
            extra["Vary"] = request.query_params["vary"]
        if "cc" in request.query_params:
            extra["Cache-Control"] = request.query_params["cc"]
        return PlainTextResponse("1", headers=extra)

    async def race(request: Request) -> Response:
        # Another request of the same client (a second tab) logs out meanwhile.
        await peer[0].post("/logout", headers={"Cookie": request.headers["cookie"]})
        request.session["n"] = 100
        return PlainTextResponse("100")

    async def nested(request: Request) -> Response:
        # Another request for the same session while this one has it open.
        inner = await peer[0].get("/read", headers={"Cookie": request.headers["cookie"]})
        return PlainTextResponse(str(inner.status_code))

    async def boom(request: Request) -> Response:
        request.session["n"] = -1
        raise RuntimeError("application bug")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        session = websocket.scope["session"]
        await websocket.send_text(repr(session.get("n")))
        session["n"] = 99  # not saved: websockets save nothing automatically
        await websocket.close()

    async def ws_nested(websocket: WebSocket) -> None:
        await websocket.accept()
        inner = await peer[0].get("/incr", headers={"Cookie": websocket.headers["cookie"]})
        await websocket.send_text(f"{inner.status_code} {inner.text}")
        await websocket.close()

    return Starlette(
        routes=[
            Route("/untouched", untouched),
            Route("/read", read),
            Route("/incr", incr),
            Route("/login", login),
            Route("/logout", logout, methods=["GET", "POST"]),
            Route("/fail", fail),
            Route("/headers", headers),
            Route("/race", race),
            Route("/nested", nested),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
            WebSocketRoute("/ws-nested", ws_nested),
        ]
    )


@pytest_asyncio.fixture
async def store() -> AsyncIterator[AsyncProbeStore]:
    probe = AsyncProbeStore()
    yield probe
    await probe.aclose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def manager(store: AsyncProbeStore, clock: FrozenClock) -> AsyncSessionManager:
    return AsyncSessionManager(store, session_config(), clock=clock)


def make_client(manager: AsyncSessionManager, **options: Any) -> httpx.AsyncClient:
    peer: list[httpx.AsyncClient] = []
    app = SessionMiddleware(starlette_app(peer), manager, **options)
    transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDR, 50000))
    client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
    peer.append(client)
    return client


@pytest_asyncio.fixture
async def client(manager: AsyncSessionManager) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(manager) as c:
        yield c


async def get(client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    response = await client.get(path, **kwargs)
    assert_safe_headers(response.headers)
    return response


def attributes(set_cookie: str) -> set[str]:
    parts = [p.strip() for p in set_cookie.split(";")[1:]]
    return {p for p in parts if not p.lower().startswith(("expires=", "max-age="))}


# -- lazy creation and the store traffic of each kind of request ------------------------------


@pytest.mark.asyncio
async def test_no_cookie_and_untouched_session_costs_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    response = await get(client, "/untouched")
    assert response.text == "hello"
    assert sum(store.calls.values()) == 0
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers
    assert "cache-control" not in response.headers


@pytest.mark.asyncio
async def test_a_write_sets_the_cookie_and_the_next_request_sees_the_data(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    first = await get(client, "/incr")
    assert first.text == "1"
    assert store.calls["load"] == 0
    assert store.calls["create"] == 1
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith("sid=")
    assert attributes(set_cookie) == {
        "Domain=testserver.local",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    }
    assert first.headers["vary"] == "Cookie"
    assert first.headers["cache-control"] == "no-store"

    second = await get(client, "/incr")
    assert second.text == "2"
    assert store.calls["load"] == 1
    assert store.calls["update"] == 1
    assert "set-cookie" not in second.headers
    assert second.headers["vary"] == "Cookie"


@pytest.mark.asyncio
async def test_read_only_request_writes_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore, clock: FrozenClock
) -> None:
    await get(client, "/incr")
    writes = store.writes()
    response = await get(client, "/read")
    assert response.text == "1"
    assert store.writes() == writes
    assert "set-cookie" not in response.headers
    assert response.headers["vary"] == "Cookie"
    clock.advance(61)
    response = await get(client, "/read")
    # The memory store slides the expiry inside the load (slides_on_load): no touch.
    assert store.calls["touch"] == 0
    assert store.calls["update"] == 0
    idle = session_config().idle_timeout
    assert idle is not None
    assert await store.count(clock() + idle - 1) == 1  # unslid, it expired 60 s earlier
    assert "set-cookie" not in response.headers


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_response_saves_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore, status: int
) -> None:
    response = await get(client, f"/fail?status={status}")
    assert response.status_code == status
    assert store.writes() == 0
    assert "set-cookie" not in response.headers
    await get(client, "/incr")
    writes = store.writes()
    await get(client, f"/fail?status={status}")
    assert store.writes() == writes
    assert (await get(client, "/read")).text == "1"


@pytest.mark.asyncio
async def test_application_exception_propagates_and_saves_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    with pytest.raises(RuntimeError, match="application bug"):
        await client.get("/boom")
    assert store.writes() == 0


# -- rotation and destruction -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_login_regenerates_and_the_old_ticket_is_dead(
    client: httpx.AsyncClient,
    manager: AsyncSessionManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = (await get(client, "/incr")).cookies["sid"]
    response = await get(client, "/login")
    new = response.cookies["sid"]
    assert new != old
    assert (await get(client, "/read")).text == "1"
    async with make_client(manager) as stranger:
        with caplog.at_level(logging.INFO):
            replay = await get(stranger, "/read", headers={"Cookie": f"sid={old}"})
    assert replay.text == "None"
    assert "set-cookie" not in replay.headers
    assert_one_security_record(caplog, "unknown-id", [old, new])


@pytest.mark.asyncio
async def test_destroy_sends_a_deleting_cookie_with_the_same_path_and_domain(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    set_cookie = (await get(client, "/incr")).headers["set-cookie"]
    response = await get(client, "/logout")
    deleting = response.headers["set-cookie"]
    assert deleting.startswith("sid=;")
    assert "Max-Age=0" in deleting
    assert attributes(deleting) == attributes(set_cookie)
    assert response.headers["vary"] == "Cookie"
    assert response.headers["cache-control"] == "no-store"
    assert len(store._entries) == 0
    assert "sid" not in client.cookies


@pytest.mark.asyncio
async def test_destroy_without_a_cookie_sends_only_vary(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    response = await get(client, "/logout")
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"
    assert sum(store.calls.values()) == 0


@pytest.mark.asyncio
async def test_session_destroyed_by_a_concurrent_request_is_cleared(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = (await get(client, "/incr")).cookies["sid"]
    with caplog.at_level(logging.INFO):
        response = await get(client, "/race")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("sid=;")
    assert len(store._entries) == 0
    assert_one_security_record(caplog, "session-interrupted", [ticket])


# -- untrusted cookies ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_two_different_session_cookies_give_a_fresh_session(
    client: httpx.AsyncClient,
    manager: AsyncSessionManager,
    store: AsyncProbeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = (await get(client, "/incr")).cookies["sid"]
    other = new_session_id()
    loads = store.calls["load"]
    async with make_client(manager) as tossed:
        with caplog.at_level(logging.INFO):
            response = await get(tossed, "/read", headers={"Cookie": f"sid={real}; sid={other}"})
    assert response.text == "None"
    assert store.calls["load"] == loads
    assert_one_security_record(caplog, "ambiguous-cookie", [real, other])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("ticket", "reason", "loads", "signed"),
    [
        (new_session_id(), "unknown-id", 1, False),
        ("not-a-session-id", "malformed-id", 0, False),
        ("A" * 5000, "malformed-id", 0, False),
        (new_session_id() + ".forgedsignature", "bad-signature", 0, True),
    ],
    ids=["unknown", "malformed", "oversized", "forged"],
)
async def test_untrusted_cookie_gives_a_fresh_session_and_one_security_record(
    store: AsyncProbeStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    ticket: str,
    reason: str,
    loads: int,
    signed: bool,
) -> None:
    manager = AsyncSessionManager(store, session_config(sign_cookie=signed), clock=clock)
    async with make_client(manager) as client:
        with caplog.at_level(logging.INFO):
            response = await get(client, "/read", headers={"Cookie": f"sid={ticket}"})
        assert response.text == "None"
        assert store.calls["load"] == loads
        assert store.writes() == 0
        assert "set-cookie" not in response.headers
        assert_one_security_record(caplog, reason, [ticket, ticket[:43]])
        fresh = await get(client, "/incr", headers={"Cookie": f"sid={ticket}"})
        assert fresh.text == "1"
        assert fresh.cookies["sid"] != ticket


# -- the store failing ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_store_down_when_loading_gives_503_and_keeps_the_cookie(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    await get(client, "/incr")
    ticket = client.cookies["sid"]
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = await get(client, "/incr")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("text/plain")
    assert "set-cookie" not in response.headers
    assert client.cookies["sid"] == ticket
    failures = [r for r in caplog.records if r.name == "coatcheck"]
    assert len(failures) == 1
    assert failures[0].store == "probe+memory://"  # type: ignore[attr-defined]
    assert "unavailable" in failures[0].getMessage()
    store.down = False
    assert (await get(client, "/incr")).text == "2"


@pytest.mark.asyncio
async def test_store_down_when_saving_gives_503_without_the_app_body(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = await get(client, "/incr")
    assert response.status_code == 503
    assert response.content.startswith(b"Service Unavailable")
    assert "set-cookie" not in response.headers
    assert any(r.name == "coatcheck" for r in caplog.records)
    store.down = False
    assert (await get(client, "/incr")).text == "1"


@pytest.mark.asyncio
async def test_other_store_error_also_gives_503_logged_as_an_error(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def corrupt_database(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    store.create = corrupt_database  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = await get(client, "/incr")
    assert response.status_code == 503
    assert "set-cookie" not in response.headers
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert record.levelno == logging.ERROR


# -- headers the application set itself -------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("query", "vary", "cache_control"), MERGE_CASES)
async def test_existing_vary_and_cache_control_are_merged(
    client: httpx.AsyncClient, query: str, vary: str, cache_control: str
) -> None:
    response = await get(client, "/headers?" + query.replace(" ", "%20"))
    assert response.headers.get_list("vary") == [vary]
    assert response.headers.get_list("cache-control") == [cache_control]
    assert len(response.headers.get_list("set-cookie")) == 1
    assert all(name == name.lower() for name, _ in response.headers.raw)


# -- the id in a request header instead of a cookie ------------------------------------------


@pytest.mark.asyncio
async def test_id_header_mode(manager: AsyncSessionManager, store: AsyncProbeStore) -> None:
    async with make_client(manager, id_header="X-Session-Id") as client:
        first = await get(client, "/incr")
        ticket = first.headers["x-session-id"]
        assert ticket
        assert "set-cookie" not in first.headers
        assert first.headers["vary"] == "X-Session-Id"
        assert first.headers["cache-control"] == "no-store"

        second = await get(client, "/incr", headers={"X-Session-Id": ticket})
        assert second.text == "2"
        assert "x-session-id" not in second.headers
        assert (await get(client, "/read", headers={"Cookie": f"sid={ticket}"})).text == "None"

        rotated = await get(client, "/login", headers={"X-Session-Id": ticket})
        new = rotated.headers["x-session-id"]
        assert new and new != ticket
        gone = await get(client, "/logout", headers={"X-Session-Id": new})
        assert gone.headers["x-session-id"] == ""
        assert "set-cookie" not in gone.headers
        assert len(store._entries) == 0


# -- other scopes -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_lifespan_passes_through_untouched(manager: AsyncSessionManager) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await SessionMiddleware(app, manager)(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert seen[0][0] is scope
    assert "session" not in scope


async def raw_http(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """One HTTP request with an empty body, the server side played by hand; the messages the
    application sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_the_outer_scope_is_not_changed(manager: AsyncSessionManager) -> None:
    inner: list[Any] = []

    async def app(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        inner.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = {"type": "http", "headers": [], "method": "GET", "path": "/"}
    sent = await raw_http(SessionMiddleware(app, manager), scope)
    assert "session" not in scope
    assert inner[0]["session"] is not None
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("app_headers", "expected"),
    [
        # Nothing to merge: the application's names go out as it sent them.
        (
            [(b"Content-Type", b"text/plain"), (b"X-Custom", b"1")],
            [(b"Content-Type", b"text/plain"), (b"X-Custom", b"1"), (b"vary", b"Cookie")],
        ),
        # An upper-case Vary of the application's is still found and merged.
        (
            [(b"VARY", b"Accept"), (b"X-Custom", b"1")],
            [(b"vary", b"Accept, Cookie"), (b"x-custom", b"1")],
        ),
    ],
)
async def test_raw_response_headers_are_merged_whatever_their_case(
    manager: AsyncSessionManager,
    app_headers: list[tuple[bytes, bytes]],
    expected: list[tuple[bytes, bytes]],
) -> None:
    async def app(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        scope["session"].get("n")  # read: the response varies on Cookie
        await send({"type": "http.response.start", "status": 200, "headers": app_headers})
        await send({"type": "http.response.body", "body": b""})

    scope = {"type": "http", "headers": [], "method": "GET", "path": "/"}
    sent = await raw_http(SessionMiddleware(app, manager), scope)
    assert sent[0]["headers"] == expected


async def websocket(
    app: Any, cookie: str, extensions: dict[str, Any] | None = None, path: str = "/ws"
) -> list[dict[str, Any]]:
    """One websocket conversation, the server side played by hand: connect, then whatever the
    app sends until it closes or refuses."""
    incoming: list[dict[str, Any]] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "wss",
        "server": ("testserver.local", 443),
        "client": (CLIENT_ADDR, 50000),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver.local"), (b"cookie", cookie.encode())],
        "subprotocols": [],
        "extensions": extensions or {},
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_websocket_gets_the_session_and_saves_nothing(
    client: httpx.AsyncClient, manager: AsyncSessionManager, store: AsyncProbeStore
) -> None:
    ticket = (await get(client, "/incr")).cookies["sid"]
    writes = store.writes()
    app = SessionMiddleware(starlette_app([]), manager)
    sent = await websocket(app, f"sid={ticket}")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "1"
    assert store.writes() == writes  # the change to 99 was not saved
    assert (await get(client, "/read")).text == "1"


@pytest.mark.asyncio
@pytest.mark.parametrize("denial", [True, False], ids=["denial-response", "close"])
async def test_websocket_refused_when_the_store_is_down(
    client: httpx.AsyncClient, manager: AsyncSessionManager, store: AsyncProbeStore, denial: bool
) -> None:
    ticket = (await get(client, "/incr")).cookies["sid"]
    store.down = True
    app = SessionMiddleware(starlette_app([]), manager)
    extensions: dict[str, Any] = {"websocket.http.response": {}} if denial else {}
    sent = await websocket(app, f"sid={ticket}", extensions)
    if denial:
        assert [m["type"] for m in sent] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
        assert sent[0]["status"] == 503
        assert (b"retry-after", b"1") in sent[0]["headers"]
    else:
        assert sent == [{"type": "websocket.close", "code": 1013}]


# -- other real stores --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    store = AsyncSQLiteStore(tmp_path / "sessions.db")
    await store.create_tables()
    try:
        manager = AsyncSessionManager(store, session_config())
        async with make_client(manager) as client:
            assert (await get(client, "/untouched")).status_code == 200
            assert (await get(client, "/incr")).text == "1"
            assert (await get(client, "/read")).text == "1"
            assert (await get(client, "/incr")).text == "2"
            old = client.cookies["sid"]
            assert (await get(client, "/login")).cookies["sid"] != old
            assert (await get(client, "/read")).text == "2"
            gone = await get(client, "/logout")
            assert gone.headers["set-cookie"].startswith("sid=;")
            assert await store.count(time.time()) == 0
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_redis_store_at_a_closed_port_gives_503(caplog: pytest.LogCaptureFixture) -> None:
    store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0?socket_timeout=2")
    try:
        manager = AsyncSessionManager(store, session_config())
        async with make_client(manager) as client:
            with caplog.at_level(logging.INFO, logger="coatcheck"):
                response = await get(client, "/read", headers={"Cookie": f"sid={new_session_id()}"})
            assert response.status_code == 503
            assert "set-cookie" not in response.headers
            assert (await get(client, "/untouched")).status_code == 200
    finally:
        await store.aclose()
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert "redis://127.0.0.1:1/0" in record.getMessage()


# -- lock mode: the lock is always released, and a held lock is a 503 ------------------------


def lock_manager(store: AsyncProbeStore, clock: FrozenClock) -> AsyncSessionManager:
    return AsyncSessionManager(store, session_config(concurrency="lock", lock_wait=0), clock=clock)


@pytest.mark.asyncio
async def test_lock_mode_a_request_finding_the_session_locked_gets_503(
    store: AsyncProbeStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_client(lock_manager(store, clock)) as client:
        await get(client, "/incr")
        with caplog.at_level(logging.INFO, logger="coatcheck"):
            assert (await get(client, "/nested")).text == "503"
        assert any("lock" in r.getMessage() for r in caplog.records if r.name == "coatcheck")
        assert (await get(client, "/read")).text == "1"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/fail", "/boom", "/untouched"])
async def test_lock_mode_an_unsaved_request_releases_the_lock(
    store: AsyncProbeStore, clock: FrozenClock, path: str
) -> None:
    async with make_client(lock_manager(store, clock)) as client:
        await get(client, "/incr")
        if path == "/boom":
            with pytest.raises(RuntimeError):
                await client.get(path)
        else:
            await client.get(path)
        response = await get(client, "/incr")
        assert response.status_code == 200
        assert response.text == "2"


@pytest.mark.asyncio
async def test_lock_mode_a_websocket_holds_no_lock(
    store: AsyncProbeStore, clock: FrozenClock
) -> None:
    manager = lock_manager(store, clock)
    async with make_client(manager) as client:
        ticket = (await get(client, "/incr")).cookies["sid"]
        peer: list[httpx.AsyncClient] = [client]
        app = SessionMiddleware(starlette_app(peer), manager)
        sent = await websocket(app, f"sid={ticket}", path="/ws-nested")
        assert sent[1]["text"] == "200 2"  # an HTTP request during the connection went through
