"""coatcheck.contrib.fastapi: SessionDep in sync and async routes and websockets, on real
stores; a clear error without the middleware; per-route modes through session_mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from pydantic import BaseModel

from coatcheck.contrib.fastapi import (
    Session,
    SessionDep,
    SessionMiddleware,
    get_session,
    save_session,
    session_mode,
)
from coatcheck.testing import FrozenClock
from tests.contrib.starlette._client import STORES, TestClient, store_url

KEY = "a-long-enough-secret-key-for-the-tests"


class Login(BaseModel):
    user: str


def make_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/count")
    def count(session: SessionDep) -> dict[str, int]:  # a sync route: FastAPI's thread pool
        session["count"] = session.get("count", 0) + 1
        return {"count": session["count"]}

    @app.get("/acount")
    async def acount(session: SessionDep) -> dict[str, int]:
        session["count"] = session.get("count", 0) + 1
        return {"count": session["count"]}

    @app.post("/login")
    async def login(body: Login, session: SessionDep) -> dict[str, str]:
        session.regenerate()
        session["user"] = body.user
        return {"user": body.user}

    @app.post("/logout")
    def logout(session: SessionDep) -> dict[str, None]:
        session.clear()
        return {"user": None}

    @app.get("/whoami")
    def whoami(session: SessionDep) -> dict[str, Any]:
        return {"user": session.get("user"), "is_new": session.is_new}

    @app.get("/mode")
    def mode(session: SessionDep) -> dict[str, Any]:
        return {"mode": session.concurrency, "read_only": session.read_only}

    @app.post("/checkout")
    @session_mode("lock")
    def checkout(session: SessionDep) -> dict[str, Any]:
        return {"mode": session.concurrency, "read_only": session.read_only}

    router = APIRouter(prefix="/reports")

    @session_mode("read-only")  # either side of the route decorator
    @router.get("/{name}")
    async def report(name: str, session: SessionDep) -> dict[str, Any]:
        return {"mode": session.concurrency, "read_only": session.read_only, "name": name}

    nested = APIRouter(prefix="/locked")

    @nested.get("/{name}")
    @session_mode("lock")
    def locked_report(name: str, session: SessionDep) -> dict[str, Any]:
        return {"mode": session.concurrency, "read_only": session.read_only, "name": name}

    router.include_router(nested)
    app.include_router(router)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        session["count"] = session.get("count", 0) + 1
        await save_session(websocket)
        await websocket.send_json({"user": session.get("user"), "count": session["count"]})
        await websocket.close()

    options.setdefault("secret_key", KEY)
    app.add_middleware(SessionMiddleware, **options)
    return app


@pytest.fixture(params=STORES)
def client(request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock) -> Iterator[Any]:
    with TestClient(make_app(store=store_url(request.param, tmp_path), clock=clock)) as c:
        yield c


def test_sync_and_async_routes_share_the_session(client: Any) -> None:
    assert client.get("/count").json() == {"count": 1}
    assert client.get("/acount").json() == {"count": 2}
    assert client.get("/count").json() == {"count": 3}


def test_login_rotates_logout_clears(client: Any) -> None:
    client.get("/count")
    before = client.cookies["session"]
    assert client.post("/login", json={"user": "ada"}).json() == {"user": "ada"}
    after = client.cookies["session"]
    assert after != before
    assert client.get("/whoami").json() == {"user": "ada", "is_new": False}
    response = client.post("/logout")
    assert "Max-Age=0" in response.headers["set-cookie"]
    replay = TestClient(client.app, cookies={"session": after})
    assert replay.get("/whoami").json() == {"user": None, "is_new": True}


def test_websocket_gets_the_session(client: Any) -> None:
    client.post("/login", json={"user": "ada"})
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"user": "ada", "count": 1}
    assert client.get("/count").json() == {"count": 2}


def test_route_modes(client: Any) -> None:
    assert client.get("/mode").json() == {"mode": "merge", "read_only": False}
    assert client.post("/checkout").json() == {"mode": "lock", "read_only": False}
    expected = {"mode": "merge", "read_only": True, "name": "q1"}
    assert client.get("/reports/q1").json() == expected
    expected = {"mode": "lock", "read_only": False, "name": "q2"}
    assert client.get("/reports/locked/q2").json() == expected


def test_without_the_middleware_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/")
    def read(session: SessionDep) -> dict[str, Any]:
        return dict(session)

    with TestClient(app) as client, pytest.raises(RuntimeError, match="SessionMiddleware"):
        client.get("/")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 500


def test_session_dep_is_typed() -> None:
    def read(session: SessionDep) -> None: ...

    hint = get_type_hints(read, include_extras=True)["session"]
    assert get_args(hint)[0] is Session
    assert get_type_hints(get_session)["return"] is Session


def test_dependency_override_with_a_detached_session() -> None:
    app = FastAPI()

    @app.get("/")
    def read(session: SessionDep) -> dict[str, Any]:
        return {"user_id": session["user_id"]}

    app.dependency_overrides[get_session] = lambda: Session({"user_id": 1})
    with TestClient(app) as client:
        assert client.get("/").json() == {"user_id": 1}
