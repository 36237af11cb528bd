"""Per-route concurrency modes: the session_mode mark (routes, mounts, a route an earlier one
shadows), mode_for asked first, lock really held, read-only refusing writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from coatcheck import ConfigurationError
from coatcheck.contrib.starlette import SessionMiddleware, get_session, session_mode

from ._client import STORES, TestClient, store_url

KEY = "a-long-enough-secret-key-for-the-tests"


def mode(request: Request) -> JSONResponse:
    session = get_session(request)
    session["seen"] = True
    return JSONResponse({"mode": session.concurrency})


@session_mode("lock")
def locked(request: Request) -> JSONResponse:
    return mode(request)


@session_mode("none")
def unguarded(request: Request) -> JSONResponse:
    return mode(request)


@session_mode("read-only")
def reader(request: Request) -> JSONResponse:
    session = get_session(request)
    return JSONResponse({"read_only": session.read_only, "count": session.get("count", 0)})


@session_mode("read-only")
def bad_reader(request: Request) -> JSONResponse:
    request.session["count"] = 1
    return JSONResponse({})


def routes() -> list[Any]:
    return [
        Route("/plain", mode),
        Route("/locked", locked, methods=["POST"]),
        Route("/read", reader),
        Route("/bad-read", bad_reader),
        # Shadowed: /plain above matches first, so its mode (none) is the one that applies.
        Route("/plain", unguarded),
        Mount("/api", routes=[Route("/locked/{item}", locked), Route("/none", unguarded)]),
    ]


def make_client(tmp_path: Path, kind: str = "memory", **options: Any) -> TestClient:
    middleware = Middleware(
        SessionMiddleware, secret_key=KEY, store=store_url(kind, tmp_path), **options
    )
    return TestClient(Starlette(routes=routes(), middleware=[middleware]))


def test_marks_choose_the_mode(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        assert client.get("/plain").json() == {"mode": "merge"}
        assert client.post("/locked").json() == {"mode": "lock"}
        assert client.get("/api/locked/7").json() == {"mode": "lock"}
        assert client.get("/api/none").json() == {"mode": "none"}
        assert client.get("/read").json() == {"read_only": True, "count": 0}
        assert client.get("/locked").status_code == 405  # a method the route refuses


def test_read_only_route_refuses_writes(tmp_path: Path) -> None:
    with make_client(tmp_path) as client, pytest.raises(Exception, match="read-only"):
        client.get("/bad-read")


def test_mode_for_is_asked_first(tmp_path: Path) -> None:
    def mode_for(method: str, path: str) -> Any:
        return "none" if path == "/locked" else None

    with make_client(tmp_path, mode_for=mode_for) as client:
        assert client.post("/locked").json() == {"mode": "none"}
        assert client.get("/api/locked/1").json() == {"mode": "lock"}


def test_configured_concurrency_is_the_default(tmp_path: Path) -> None:
    with make_client(tmp_path, concurrency="lock") as client:
        assert client.get("/plain").json() == {"mode": "lock"}


def test_unknown_mode_fails_at_the_mark() -> None:
    with pytest.raises(ConfigurationError):
        session_mode("exclusive")  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", STORES)
async def test_lock_route_serialises_requests(tmp_path: Path, kind: str) -> None:
    # Two read-modify-writes on one session at once: in lock mode the second waits for the
    # first's save, so neither increment is lost even though both read before writing.
    started = asyncio.Event()

    @session_mode("lock")
    async def slow_increment(request: Request) -> JSONResponse:
        session = get_session(request)
        count = session.get("count", 0)
        started.set()
        await asyncio.sleep(0.05)
        session["count"] = count + 1
        return JSONResponse({"count": session["count"]})

    app = Starlette(
        routes=[Route("/inc", slow_increment)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY, store=store_url(kind, tmp_path))],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        first = await client.get("/inc")
        assert first.json() == {"count": 1}
        started.clear()
        one = asyncio.ensure_future(client.get("/inc"))
        await asyncio.wait_for(started.wait(), 5)
        two = asyncio.ensure_future(client.get("/inc"))
        responses = await asyncio.wait_for(asyncio.gather(one, two), 10)
        counts = sorted(response.json()["count"] for response in responses)
        assert counts == [2, 3]
        await app.middleware_stack.app.manager.aclose()  # type: ignore[union-attr]
