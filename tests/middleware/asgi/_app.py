"""The Starlette app the ASGI middleware tests drive, the client that drives it through httpx's
ASGI transport, and a websocket conversation played by hand."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from coatcheck import AsyncSessionManager
from coatcheck.asgi import SessionMiddleware

from .._support import BASE_URL, CLIENT_ADDR, assert_safe_headers

__all__ = ["get", "make_client", "starlette_app", "websocket"]


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

    async def race_login(request: Request) -> Response:
        # A second tab logs out while this request logs in (rotates the id).
        await peer[0].post("/logout", headers={"Cookie": request.headers["cookie"]})
        request.session.regenerate()
        request.session["user"] = "ann"
        return PlainTextResponse("ann")

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
            Route("/race-login", race_login),
            Route("/nested", nested),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
            WebSocketRoute("/ws-nested", ws_nested),
        ]
    )


def make_client(manager: AsyncSessionManager, **options: Any) -> httpx.AsyncClient:
    peer: list[httpx.AsyncClient] = []
    app = SessionMiddleware(starlette_app(peer), manager, **options)
    transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDR, 50000))
    client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
    peer.append(client)
    return client


async def get(client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    response = await client.get(path, **kwargs)
    assert_safe_headers(response.headers)
    return response


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
