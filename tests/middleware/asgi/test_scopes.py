"""The ASGI middleware beyond plain HTTP requests: lifespan, the scope it is given, raw
response headers, websockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from coatcheck import AsyncSessionManager
from coatcheck.asgi import SessionMiddleware

from .._support import AsyncProbeStore
from ._app import get, starlette_app, websocket

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
