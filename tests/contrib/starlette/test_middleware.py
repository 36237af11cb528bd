"""coatcheck.contrib.starlette.SessionMiddleware on real stores: log in with rotation, log out
with clear(), websockets, max_age enforced server-side, a failing store, the cookie's
attributes from Starlette's arguments."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from coatcheck import SessionConfig, SessionError
from coatcheck.contrib.starlette import (
    DEFAULT_STORE,
    Session,
    SessionMiddleware,
    get_session,
    save_session,
)
from coatcheck.testing import FrozenClock

from ._client import STORES, TestClient, store_url

KEY = "a-long-enough-secret-key-for-the-tests"


async def login(request: Request) -> JSONResponse:
    session = get_session(request)
    session.regenerate()  # a new id on every change of privilege: no session fixation
    session["user"] = (await request.json())["user"]
    return JSONResponse({"user": session["user"]})


def logout(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"user": None})


def counter(request: Request) -> JSONResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    return JSONResponse({"count": request.session["count"]})


def whoami(request: Request) -> JSONResponse:
    session = get_session(request)
    return JSONResponse({"user": session.get("user"), "is_new": session.is_new})


async def ws_whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.session.get("user")})
    await websocket.close()


async def ws_count(websocket: WebSocket) -> None:
    await websocket.accept()
    websocket.session["count"] = websocket.session.get("count", 0) + 1
    try:
        await save_session(websocket)
    except SessionError as exc:
        await websocket.send_json({"error": str(exc)})
    else:
        await websocket.send_json({"count": websocket.session["count"]})
    await websocket.close()


ROUTES = [
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/count", counter),
    Route("/whoami", whoami),
    WebSocketRoute("/ws", ws_whoami),
    WebSocketRoute("/ws/count", ws_count),
]


def make_app(**options: Any) -> Starlette:
    options.setdefault("secret_key", KEY)
    return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, **options)])


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path)


@pytest.fixture
def client(store: str, clock: FrozenClock) -> Iterator[TestClient]:
    # The with block runs the lifespan, whose shutdown closes the store the middleware built.
    with TestClient(make_app(store=store, clock=clock)) as c:
        yield c


def cookie_of(response: Any) -> str:
    match = re.match(r"session=([^;]*);", response.headers["set-cookie"])
    assert match is not None
    return match[1]


def test_login_rotates_and_logout_deletes(client: TestClient) -> None:
    assert client.get("/count").json() == {"count": 1}
    anonymous = client.cookies["session"]
    response = client.post("/login", json={"user": "ada"})
    assert response.json() == {"user": "ada"}
    logged_in = cookie_of(response)
    assert logged_in != anonymous
    assert client.get("/whoami").json() == {"user": "ada", "is_new": False}
    assert client.get("/count").json() == {"count": 2}  # data kept across the rotation
    # The id from before the login is dead: it opens a fresh session.
    stale = TestClient(client.app, cookies={"session": anonymous})
    assert stale.get("/whoami").json() == {"user": None, "is_new": True}

    response = client.post("/logout")
    assert response.headers["set-cookie"].startswith("session=; ")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert "session" not in client.cookies
    # clear() destroyed the record: the logged-in id opens nothing any more.
    replay = TestClient(client.app, cookies={"session": logged_in})
    assert replay.get("/whoami").json() == {"user": None, "is_new": True}


def test_clear_deletes_the_sqlite_record(tmp_path: Path) -> None:
    url = store_url("sqlite", tmp_path)
    with TestClient(make_app(store=url)) as client:
        client.post("/login", json={"user": "ada"})
        db = sqlite3.connect(tmp_path / "sessions.db")
        try:
            rows = "SELECT count(*) FROM coatcheck_sessions"
            assert db.execute(rows).fetchone() == (1,)
            client.post("/logout")
            assert db.execute(rows).fetchone() == (0,)
        finally:
            db.close()


def test_websocket_reads_the_session(client: TestClient) -> None:
    client.post("/login", json={"user": "ada"})
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"user": "ada"}


def test_websocket_saves_an_existing_session(client: TestClient) -> None:
    assert client.get("/count").json() == {"count": 1}
    with client.websocket_connect("/ws/count") as ws:
        assert ws.receive_json() == {"count": 2}
    assert client.get("/count").json() == {"count": 3}


def test_websocket_refuses_to_save_a_new_session(client: TestClient) -> None:
    with client.websocket_connect("/ws/count") as ws:
        assert "cannot save a new or regenerated session" in ws.receive_json()["error"]


def test_max_age_is_enforced_server_side(tmp_path: Path, clock: FrozenClock) -> None:
    app = make_app(store=store_url("sqlite", tmp_path), max_age=100, clock=clock)
    with TestClient(app) as client:
        response = client.get("/count")
        assert "Max-Age=100;" in response.headers["set-cookie"]
        cookie = client.cookies["session"]
        clock.advance(99)
        assert client.get("/count").json() == {"count": 2}  # idle: the use slid it
        clock.advance(99)
        assert client.get("/count").json() == {"count": 3}
        clock.advance(101)
        # The browser would have dropped the cookie; a client that kept it gets nothing.
        client.cookies["session"] = cookie
        assert client.get("/whoami").json() == {"user": None, "is_new": True}


@pytest.mark.parametrize("max_age", [0, -1])
def test_max_age_zero_expires_at_once(tmp_path: Path, max_age: int) -> None:
    with TestClient(make_app(store=store_url("sqlite", tmp_path), max_age=max_age)) as client:
        response = client.post("/login", json={"user": "ada"})
        assert "; Max-Age=0; " in response.headers["set-cookie"]
        again = TestClient(client.app, cookies={"session": cookie_of(response)})
        assert again.get("/whoami").json() == {"user": None, "is_new": True}


def test_browser_session_cookie(tmp_path: Path) -> None:
    with TestClient(make_app(store=store_url("sqlite", tmp_path), max_age=None)) as client:
        response = client.get("/count")
        assert "Max-Age" not in response.headers["set-cookie"]
        assert "Expires" not in response.headers["set-cookie"]


def test_cookie_attributes_from_starlettes_arguments(tmp_path: Path) -> None:
    app = make_app(
        store=store_url("memory", tmp_path),
        session_cookie="sid",
        path="/app",
        same_site="strict",
        https_only=True,
        domain="example.com",
        partitioned=True,
    )
    with TestClient(app, base_url="https://example.com") as client:
        header = client.get("/count").headers["set-cookie"]
    assert header.startswith("sid=")
    attributes = header.split("; ")[1:]
    for expected in ("Path=/app", "Domain=example.com", "Secure", "HttpOnly", "Partitioned"):
        assert expected in attributes
    assert "SameSite=Strict" in attributes


def test_store_down_answers_503() -> None:
    # Nothing listens on port 1: every connection is refused.
    with TestClient(make_app(store="redis://127.0.0.1:1/0?timeout=0.5")) as client:
        response = client.get("/count")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "set-cookie" not in response.headers


def test_default_store_is_an_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_STORE == "sqlite:///coatcheck-sessions.db"
    with TestClient(make_app()) as client:
        assert client.get("/count").json() == {"count": 1}  # the table was created
        assert client.get("/count").json() == {"count": 2}
    assert (tmp_path / "coatcheck-sessions.db").exists()


def test_session_is_coatchecks(tmp_path: Path) -> None:
    def kind(request: Request) -> JSONResponse:
        return JSONResponse({"coatcheck": isinstance(request.session, Session)})

    app = Starlette(
        routes=[Route("/", kind)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY, store="memory://")],
    )
    with TestClient(app) as client:
        assert client.get("/").json() == {"coatcheck": True}


def test_get_session_without_the_middleware_names_it() -> None:
    app = Starlette(routes=[Route("/", whoami)])
    with TestClient(app) as client, pytest.raises(RuntimeError, match="SessionMiddleware"):
        client.get("/")


def test_secret_key_rotation(tmp_path: Path) -> None:
    url = store_url("sqlite", tmp_path)
    old = "the-old-secret-key-of-this-application"
    with TestClient(make_app(store=url, secret_key=old)) as client:
        client.post("/login", json={"user": "ada"})
        cookie = client.cookies["session"]
    with TestClient(make_app(store=url, secret_key=[KEY, old]), cookies={"session": cookie}) as c:
        assert c.get("/whoami").json() == {"user": "ada", "is_new": False}
    with TestClient(make_app(store=url, secret_key=KEY), cookies={"session": cookie}) as c:
        assert c.get("/whoami").json() == {"user": None, "is_new": True}


def test_one_warning_at_start_up_when_not_hardened(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        SessionMiddleware(counter, secret_key="short", store="memory://", warn_insecure=True)
    [record] = caplog.records
    assert "https_only=True" in record.getMessage()
    assert "shorter than 32" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        SessionMiddleware(counter, secret_key=KEY, https_only=True, store="memory://")
        SessionMiddleware(counter, secret_key="short", store="memory://")  # under pytest
    assert caplog.records == []


@pytest.mark.parametrize(
    "options",
    [
        {"same_site": "none"},
        {"partitioned": True},
        {"secret_key": ""},
        {"secret_key": []},
    ],
)
def test_contradictions_fail_at_construction(options: dict[str, Any]) -> None:
    options = {"secret_key": KEY, "store": "memory://", **options}
    with pytest.raises(ValueError, match=r"https_only|secret_key"):
        SessionMiddleware(counter, **options)


# SessionConfig fields that Starlette's arguments decide, under their Starlette names.
DERIVED = {"cookie", "secret_keys", "sign_cookie", "idle_timeout"}


def test_every_session_setting_is_an_argument_with_its_default() -> None:
    parameters = inspect.signature(SessionMiddleware).parameters
    for field in dataclasses.fields(SessionConfig):
        if field.name in DERIVED:
            continue
        assert field.name in parameters, f"SessionConfig.{field.name} is not an argument"
        default = parameters[field.name].default
        if field.name == "destroy_when_emptied":
            assert default is True  # the integration's own default: clear() logs out
        elif field.name == "absolute_timeout":
            assert default is None  # Starlette's sessions have no hard cap
        elif field.name == "serializer":
            assert default is None  # None: SessionConfig's own, JSONSerializer
        else:
            assert default == field.default, field.name
