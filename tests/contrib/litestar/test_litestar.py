"""coatcheck.contrib.litestar on SQLite and Redis: Litestar's session API, strict ids,
rotation, merges, per-route modes, the failure rules, the TestClient helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, WebSocket, delete, get, post, websocket
from litestar.exceptions import ImproperlyConfiguredException
from litestar.testing import TestClient

from coatcheck import AsyncSessionManager, ConfigurationError
from coatcheck.contrib.litestar import CoatcheckSessionConfig, get_session, regenerate
from coatcheck.testing import FrozenClock
from tests.support import servers

BASE = "http://testserver.local"
STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.server("redis"))]


@dataclasses.dataclass
class Cart:
    items: list[str]


@get("/")
async def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"data": dict(request.session), "id": request.get_session_id()}


@post("/set")
async def set_data(request: Request[Any, Any, Any]) -> dict[str, Any]:
    request.set_session(await request.json())
    return {"id": request.get_session_id()}


@post("/cart")
async def set_cart(request: Request[Any, Any, Any]) -> None:
    request.set_session(Cart(items=["tea"]))  # type: ignore[arg-type]


@post("/login")
async def login(request: Request[Any, Any, Any]) -> dict[str, Any]:
    regenerate(request)
    request.session["user"] = "ada"
    return {"id": request.get_session_id()}


@delete("/", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> None:
    request.clear_session()


@post("/clear")
async def clear(request: Request[Any, Any, Any]) -> None:
    request.session.clear()


@post("/fail")
async def fail(request: Request[Any, Any, Any]) -> None:
    request.session["half"] = "done"
    raise RuntimeError("boom")


@post("/pay", session_mode="lock")
async def pay(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"mode": get_session(request).concurrency}


@websocket("/ws")
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_json(dict(socket.session))
    socket.session["from_ws"] = True  # never saved: a websocket sends no cookie
    await socket.close()


HANDLERS = [read, set_data, set_cart, login, logout, clear, fail, pay, ws]


def present(client: TestClient[Litestar], cookie: str) -> None:
    """Make ``cookie`` the only session cookie the client sends."""
    client.cookies.clear()
    client.cookies.set("session", cookie, domain="testserver.local")


def store_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    host, port = servers.require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-test-{uuid.uuid4().hex}:"


@pytest.fixture(params=STORES)
def config(request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock) -> Any:
    return CoatcheckSessionConfig(store=store_url(request.param, tmp_path), clock=clock)


@pytest.fixture
def client(config: CoatcheckSessionConfig) -> Iterator[TestClient[Litestar]]:
    app = Litestar(HANDLERS, middleware=[config.middleware], on_shutdown=[config.aclose])
    with TestClient(app, base_url=BASE, session_config=config) as test_client:
        yield test_client


def test_set_session_is_stored_under_the_id_of_the_cookie(
    client: TestClient[Litestar], config: CoatcheckSessionConfig
) -> None:
    first = client.get("/")
    assert first.json()["data"] == {}
    assert "set-cookie" not in first.headers  # an empty new session is not stored
    response = client.post("/set", json={"user": "ada"})
    sid = response.json()["id"]
    assert sid and client.cookies["session"] == sid
    assert sid != first.json()["id"]
    assert client.get("/").json() == {"data": {"user": "ada"}, "id": sid}
    # The record is in the config's own coatcheck store.
    assert client.get_session_data() == {"user": "ada"}
    # set_session replaces the whole content, keeping the id.
    client.post("/set", json={"cart": [1]})
    assert client.get("/").json() == {"data": {"cart": [1]}, "id": sid}


def test_clear_session_destroys_the_record_and_deletes_the_cookie(
    client: TestClient[Litestar],
) -> None:
    client.post("/set", json={"user": "ada"})
    old = client.cookies["session"]
    response = client.delete("/")
    assert response.headers["set-cookie"].startswith("session=; ")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert "session" not in client.cookies
    # Replaying the old cookie finds nothing: the record is gone.
    present(client, old)
    replay = client.get("/")
    assert replay.json()["data"] == {}
    assert replay.json()["id"] != old


def test_session_clear_logs_out_too(client: TestClient[Litestar]) -> None:
    client.post("/set", json={"user": "ada"})
    old = client.cookies["session"]
    assert "Max-Age=0" in client.post("/clear").headers["set-cookie"]
    present(client, old)
    assert client.get("/").json()["data"] == {}


def test_regenerate_gives_a_new_id_and_kills_the_old(client: TestClient[Litestar]) -> None:
    client.post("/set", json={"cart": ["tea"]})
    old = client.cookies["session"]
    assert client.post("/login").json()["id"] is None  # not known until the response
    new = client.cookies["session"]
    assert new != old
    assert client.get("/").json() == {"data": {"cart": ["tea"], "user": "ada"}, "id": new}
    present(client, old)
    assert client.get("/").json()["data"] == {}


@pytest.mark.parametrize(
    "cookie",
    [secrets.token_urlsafe(32), "x" * 43, "garbage", "null", "a" * 5000, "%00%ff"],
    ids=["unknown-id", "wrong-shape", "garbage", "null", "huge", "escapes"],
)
def test_unknown_or_bad_cookie_gives_a_fresh_session(
    client: TestClient[Litestar], cookie: str
) -> None:
    present(client, cookie)
    response = client.get("/")
    assert response.status_code == 200
    assert response.json()["data"] == {}
    assert response.json()["id"] != cookie
    present(client, cookie)
    sid = client.post("/set", json={"a": 1}).json()["id"]
    assert sid != cookie and client.cookies["session"] == sid  # never adopted


def test_data_container_is_stored_as_litestar_would(client: TestClient[Litestar]) -> None:
    client.post("/cart")
    assert client.get("/").json()["data"] == {"items": ["tea"]}


def test_error_response_saves_nothing(client: TestClient[Litestar]) -> None:
    client.post("/set", json={"user": "ada"})
    assert client.post("/fail").status_code == 500
    assert client.get("/").json()["data"] == {"user": "ada"}


def test_route_mode_from_opt(client: TestClient[Litestar]) -> None:
    client.post("/set", json={"user": "ada"})
    assert client.post("/pay").json() == {"mode": "lock"}
    assert client.post("/pay").json() == {"mode": "lock"}  # the lock was released


def test_websocket_reads_the_session_and_saves_nothing(client: TestClient[Litestar]) -> None:
    client.post("/set", json={"user": "ada"})
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_json() == {"user": "ada"}
    assert client.get("/").json()["data"] == {"user": "ada"}


def test_test_client_session_helpers(client: TestClient[Litestar]) -> None:
    client.set_session_data({"user": "bob"})
    assert client.get("/").json()["data"] == {"user": "bob"}
    client.set_session_data({"user": "eve"})
    assert client.get_session_data() == {"user": "eve"}


def test_max_age_is_the_server_side_idle_timeout(tmp_path: Path, clock: FrozenClock) -> None:
    config = CoatcheckSessionConfig(
        store=f"sqlite:///{tmp_path / 's.db'}", max_age=600, clock=clock
    )
    app = Litestar(HANDLERS, middleware=[config.middleware], on_shutdown=[config.aclose])
    with TestClient(app, base_url=BASE) as client:
        response = client.post("/set", json={"user": "ada"})
        assert "Max-Age=600;" in response.headers["set-cookie"]
        clock.advance(500)
        assert client.get("/").json()["data"] == {"user": "ada"}  # slides the timeout
        clock.advance(500)
        assert client.get("/").json()["data"] == {"user": "ada"}
        clock.advance(601)
        assert client.get("/").json()["data"] == {}


@pytest.mark.asyncio
async def test_concurrent_requests_merge(tmp_path: Path) -> None:
    gate = asyncio.Event()

    @post("/slow")
    async def slow(request: Request[Any, Any, Any]) -> None:
        request.session["slow"] = 1
        await gate.wait()

    @post("/fast")
    async def fast(request: Request[Any, Any, Any]) -> None:
        request.session["fast"] = 2

    config = CoatcheckSessionConfig(store=f"sqlite:///{tmp_path / 's.db'}")
    app = Litestar([read, set_data, slow, fast], middleware=[config.middleware])
    # httpx's transport runs the app on this event loop, so the gate works across requests.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        await client.post("/set", json={"start": 0})
        slow_request = asyncio.create_task(client.post("/slow"))
        await asyncio.sleep(0.05)  # /slow has loaded the session and waits
        assert (await client.post("/fast")).status_code == 201
        gate.set()
        assert (await slow_request).status_code == 201
        data = (await client.get("/")).json()["data"]
    await config.aclose()
    assert data == {"start": 0, "slow": 1, "fast": 2}


def test_signed_cookie(tmp_path: Path) -> None:
    config = CoatcheckSessionConfig(
        store=f"sqlite:///{tmp_path / 's.db'}", secret="a-long-enough-secret-key-for-tests"
    )
    app = Litestar(HANDLERS, middleware=[config.middleware], on_shutdown=[config.aclose])
    with TestClient(app, base_url=BASE) as client:
        sid = client.post("/set", json={"user": "ada"}).json()["id"]
        cookie = client.cookies["session"]
        assert cookie != sid and cookie.startswith(sid)  # the id with its signature
        assert client.get("/").json()["data"] == {"user": "ada"}
        present(client, sid)  # the id without its signature is refused
        assert client.get("/").json()["data"] == {}


def test_store_down_is_a_503(tmp_path: Path) -> None:
    # Nothing listens on port 1: the first write fails.
    config = CoatcheckSessionConfig(store="redis://127.0.0.1:1/0")
    app = Litestar(HANDLERS, middleware=[config.middleware], on_shutdown=[config.aclose])
    with TestClient(app, base_url=BASE) as client:
        response = client.post("/set", json={"user": "ada"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "set-cookie" not in response.headers


def test_config_checks() -> None:
    with pytest.raises(ImproperlyConfiguredException):
        CoatcheckSessionConfig(key="")
    with pytest.raises(ImproperlyConfiguredException):
        CoatcheckSessionConfig(max_age=0)
    with pytest.raises(ConfigurationError):
        CoatcheckSessionConfig(samesite="none")  # needs secure=True
    with pytest.raises(ConfigurationError):
        CoatcheckSessionConfig(session_id_bytes=8)


def test_get_session_needs_the_middleware() -> None:
    @get("/raw")
    async def raw(request: Request[Any, Any, Any]) -> None:
        get_session(request)

    with TestClient(Litestar([raw], debug=False), base_url=BASE) as client:
        assert client.get("/raw").status_code == 500


@pytest.mark.asyncio
async def test_aclose_closes_an_owned_store(tmp_path: Path) -> None:
    config = CoatcheckSessionConfig(store=f"sqlite:///{tmp_path / 's.db'}")
    manager = await config.ready_manager()
    assert isinstance(manager, AsyncSessionManager)
    await config.aclose()
    assert config.manager is not manager  # a new one for a later request
    await config.aclose()


@post("/unstorable")
async def unstorable(request: Request[Any, Any, Any]) -> None:
    request.session["thing"] = object()


@get("/peek", session_mode="read-only")
async def peek(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return dict(request.session)


@post("/poke", session_mode="read-only")
async def poke(request: Request[Any, Any, Any]) -> None:
    request.session["poked"] = True


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_unstorable_value_read_only_route(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = CoatcheckSessionConfig(store=f"sqlite:///{tmp_path / 's.db'}", concurrency="lock")
    app = Litestar(
        [read, set_data, unstorable, peek, poke],
        middleware=[config.middleware],
        on_shutdown=[config.aclose],
        debug=False,
    )
    with TestClient(app, base_url=BASE) as client:
        client.post("/set", json={"user": "ada"})
        # Litestar's logging set-up replaces the root handlers (caplog's among them).
        seen = _Records()
        logging.getLogger("coatcheck").addHandler(seen)
        try:
            assert client.post("/unstorable").status_code == 500
        finally:
            logging.getLogger("coatcheck").removeHandler(seen)
        assert [r.getMessage() for r in seen.records] == [
            "the session could not be saved; answered 500"
        ]
        assert seen.records[0].exc_info is not None  # with its traceback
        assert client.get("/peek").json() == {"user": "ada"}
        assert client.post("/poke").status_code == 500  # a read-only session refuses writes
        # Nothing stuck: the lock of each failed request was released.
        assert client.get("/").json()["data"] == {"user": "ada"}


def test_renew_on_access_renews_on_a_websocket_handshake(
    tmp_path: Path, clock: FrozenClock
) -> None:
    config = CoatcheckSessionConfig(
        store=f"sqlite:///{tmp_path / 's.db'}", max_age=600, renew_on_access=True, clock=clock
    )
    app = Litestar(HANDLERS, middleware=[config.middleware], on_shutdown=[config.aclose])
    with TestClient(app, base_url=BASE) as client:
        client.post("/set", json={"user": "ada"})
        for _ in range(3):
            clock.advance(500)
            with client.websocket_connect("/ws") as socket:
                assert socket.receive_json() == {"user": "ada"}
        assert client.get("/").json()["data"] == {"user": "ada"}


def test_session_headers_merge_with_the_apps(tmp_path: Path) -> None:
    @post("/cached")
    async def cached(request: Request[Any, Any, Any]) -> Response[str]:
        request.session["seen"] = True
        headers = {"Vary": "Accept-Encoding", "Cache-Control": "public, max-age=60"}
        return Response("ok", headers=headers)

    config = CoatcheckSessionConfig(store=f"sqlite:///{tmp_path / 's.db'}")
    app = Litestar([cached], middleware=[config.middleware], on_shutdown=[config.aclose])
    with TestClient(app, base_url=BASE) as client:
        response = client.post("/cached")
        assert response.headers.get_list("vary") == ["Accept-Encoding, Cookie"]
        # A response that sets someone's cookie is never kept by a shared cache.
        assert response.headers["cache-control"] == "no-store"
        assert response.cookies["session"]
