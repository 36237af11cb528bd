"""Through the ASGI middleware: a value nested too deeply is a clear error at save, never a
session deleted as corrupt at a later load, however many middlewares wrap the app."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from coatcheck import AsyncSessionManager, SerializationError
from coatcheck._sansio.tagging import MAX_DEPTH
from coatcheck.asgi import SessionMiddleware

from .._support import BASE_URL, CLIENT_ADDR, AsyncProbeStore

#: The deepest a value in the default namespace may nest: the stored document and its
#: namespace are two levels of the limit.
ROOM = MAX_DEPTH - 2


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while type(value) is list:
        depth += 1
        value = value[0] if value else None
    return depth


async def tree_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/store?depth=N`` stores a list nested N deep under "tree"; ``/depth`` answers how
    deep the stored one is."""
    session = scope["session"]
    if scope["path"] == "/store":
        session["tree"] = nested(int(parse_qs(scope["query_string"].decode())["depth"][0]))
    body = str(depth_of(session.get("tree"))).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def layered(app: Any, layers: int) -> Any:
    """``app`` inside ``layers`` pass-through ASGI middlewares: each a frame deeper."""
    for _ in range(layers):

        async def layer(scope: Any, receive: Any, send: Any, inner: Any = app) -> None:
            await inner(scope, receive, send)

        app = layer
    return app


def client_for(
    manager: AsyncSessionManager, layers: int, cookies: httpx.Cookies
) -> httpx.AsyncClient:
    app = layered(SessionMiddleware(tree_app, manager), layers)
    transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDR, 50000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, cookies=cookies)


@pytest.mark.asyncio
@pytest.mark.parametrize(("save_layers", "load_layers"), [(0, 300), (300, 0), (300, 300)])
async def test_the_deepest_value_a_save_accepts_loads_under_any_middleware_stack(
    manager: AsyncSessionManager, store: AsyncProbeStore, save_layers: int, load_layers: int
) -> None:
    async with client_for(manager, save_layers, httpx.Cookies()) as client:
        assert (await client.get(f"/store?depth={ROOM}")).text == str(ROOM)
        cookies = client.cookies
    async with client_for(manager, load_layers, cookies) as client:
        assert (await client.get("/depth")).text == str(ROOM)
    assert store.calls["delete"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("depth", [ROOM + 1, 600])  # 600 used to save, and not load under 300
@pytest.mark.parametrize("layers", [0, 300])
async def test_a_value_too_deep_fails_at_save_and_the_stored_session_stays(
    manager: AsyncSessionManager, store: AsyncProbeStore, layers: int, depth: int
) -> None:
    async with client_for(manager, layers, httpx.Cookies()) as client:
        assert (await client.get("/store?depth=3")).text == "3"
        writes = store.writes()
        with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} deep") as raised:
            await client.get(f"/store?depth={depth}")
        assert raised.value.key == "tree"
        assert store.writes() == writes  # nothing written
        # The session from before the failed request is there, intact, not deleted as corrupt.
        assert (await client.get("/depth")).text == "3"
    assert store.calls["delete"] == 0
