"""The Quart integration through Quart's test client, on memory, SQLite and Redis: the session
Quart sees, log in with rotation, log out, permanent lifetimes on a frozen clock, modes per
route, flash messages, session_transaction, 503 when the store is down, the CLI group."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import quart
from markupsafe import Markup
from quart.testing import WebsocketResponseError

from coatcheck import SessionError
from coatcheck.contrib.quart import CoatcheckSessionInterface, FlaskSession, Session, session_mode
from coatcheck.testing import FrozenClock
from tests.middleware._support import AsyncProbeStore
from tests.support.servers import require_server

AppFactory = Callable[..., quart.Quart]
STORES = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.server("redis"))]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    host, port = require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-quart-{uuid.uuid4().hex}:"


@pytest_asyncio.fixture
async def make_app(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[AppFactory]:
    interfaces: list[CoatcheckSessionInterface] = []

    def make(store: Any = "memory://", **config: Any) -> quart.Quart:
        app = quart.Quart(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(TESTING=True, SECRET_KEY="a test secret, 32 bytes or more!")
        app.config.update(SESSION_COATCHECK_STORE=store, **config)
        interfaces.append(Session(clock=clock).init_app(app))
        return app

    yield make
    for interface in interfaces:
        await interface.aclose()


def cookie(response: Any) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        key, _, rest = header.partition("=")
        if key == "session":
            return rest.partition(";")[0]
    return None


def demo_app(make_app: AppFactory, store: object, **config: Any) -> quart.Quart:
    app = make_app(store, **config)

    @app.get("/count")
    async def count() -> str:
        quart.session["n"] = quart.session.get("n", 0) + 1
        return f"{quart.session['n']} {quart.session.concurrency}"  # type: ignore[attr-defined]

    @app.get("/locked")
    @session_mode("lock")
    async def locked() -> str:
        quart.session["n"] = quart.session.get("n", 0) + 1
        return str(quart.session.concurrency)  # type: ignore[attr-defined]

    @app.get("/peek")
    @session_mode("read-only")
    async def peek() -> str:
        try:
            quart.session["n"] = 0
        except SessionError:
            return "read-only"
        return "written"

    @app.post("/login/<name>")
    async def login(name: str) -> str:
        quart.session.regenerate()  # type: ignore[attr-defined]
        quart.session["user"] = name
        quart.session.permanent = quart.request.args.get("remember") == "1"
        await quart.flash(Markup("<b>welcome {}</b>").format(name))
        return "in"

    @app.get("/who")
    async def who() -> str:
        messages = quart.get_flashed_messages()
        return f"{quart.session.get('user')} {list(messages)}"

    @app.post("/logout")
    async def logout() -> str:
        quart.session.clear()
        return "out"

    return app


@pytest.mark.asyncio
async def test_count_login_logout(make_app: AppFactory, store: str) -> None:
    app = demo_app(make_app, store)
    client = app.test_client()
    assert await (await client.get("/count")).get_data(as_text=True) == "1 merge"
    first = cookie(await client.get("/count"))
    login = await client.post("/login/ada")
    rotated = cookie(login)
    assert rotated and rotated != first
    who = await (await client.get("/who")).get_data(as_text=True)
    assert who == "ada [Markup('<b>welcome ada</b>')]"
    async with client.session_transaction() as session:
        assert isinstance(session, FlaskSession) and session["n"] == 2
    out = await client.post("/logout")
    assert cookie(out) == ""  # emptied: destroyed, cookie deleted
    assert await (await client.get("/who")).get_data(as_text=True) == "None []"


@pytest.mark.asyncio
async def test_modes_per_route(make_app: AppFactory, store: str) -> None:
    app = demo_app(make_app, store, SESSION_COATCHECK_LOCK_WAIT=0.2)
    client = app.test_client()
    assert await (await client.get("/count")).get_data(as_text=True) == "1 merge"
    for _ in range(2):  # the second would wait out lock_wait had the first kept its lock
        assert await (await client.get("/locked")).get_data(as_text=True) == "lock"
    assert await (await client.get("/peek")).get_data(as_text=True) == "read-only"
    assert await (await client.get("/count")).get_data(as_text=True) == "4 merge"


@pytest.mark.asyncio
async def test_permanent_lifetime_on_the_server(
    make_app: AppFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    app = demo_app(make_app, f"sqlite:///{tmp_path / 'p.db'}", PERMANENT_SESSION_LIFETIME=7200)
    client = app.test_client()
    header = (await client.post("/login/ada?remember=1")).headers["Set-Cookie"]
    assert "Max-Age=7200" in header
    for _ in range(3):
        clock.advance(3600)  # far past the 30-minute idle timeout of other sessions
        assert (await (await client.get("/who")).get_data(as_text=True)).startswith("ada")
    clock.advance(7201)
    assert (await (await client.get("/who")).get_data(as_text=True)).startswith("None")


@pytest.mark.asyncio
async def test_a_store_that_is_down_answers_503(make_app: AppFactory) -> None:
    app = demo_app(make_app, "redis://127.0.0.1:1/0?timeout=0.5")
    response = await app.test_client().get("/count")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "Set-Cookie" not in response.headers
    body = await response.get_data(as_text=True)
    assert body.startswith("Service Unavailable: the session store")


@pytest.mark.asyncio
async def test_headers_merge_and_errors_save_nothing(make_app: AppFactory) -> None:
    app = make_app()

    @app.get("/vary")
    async def vary() -> quart.Response:
        response = quart.Response("")
        response.vary.add("Accept-Language")
        quart.session["a"] = 1
        return response

    @app.get("/fail")
    async def fail() -> tuple[str, int]:
        quart.session["a"] = 2
        return "broken", 500

    @app.get("/a")
    async def read() -> str:
        return str(quart.session.get("a"))

    client = app.test_client()
    response = await client.get("/vary")
    assert response.headers.getlist("Vary") == ["Accept-Language, Cookie"]
    assert (await client.get("/fail")).status_code == 500
    assert await (await client.get("/a")).get_data(as_text=True) == "1"


@pytest.mark.asyncio
async def test_cli_group(make_app: AppFactory, tmp_path: Path) -> None:
    app = demo_app(make_app, f"sqlite:///{tmp_path / 'cli.db'}")
    await app.test_client().get("/count")
    result = app.test_cli_runner().invoke(args=["coatcheck", "stats", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sessions"] == 1


@pytest.mark.asyncio
async def test_websockets_share_the_session_and_are_refused_when_the_store_is_down(
    make_app: AppFactory,
) -> None:
    store = AsyncProbeStore()
    app = demo_app(make_app, store)

    @app.websocket("/ws")
    async def ws() -> None:
        await quart.websocket.accept()
        await quart.websocket.send(f"n={quart.session.get('n')}")
        quart.session["seen"] = True  # saved when the websocket ends

    client = app.test_client()
    await client.get("/count")
    async with client.websocket("/ws") as socket:
        assert await socket.receive() == "n=1"
    async with client.session_transaction() as session:
        assert session["seen"] is True
    store.down = True
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket("/ws") as socket:
            await socket.receive()
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "1"
    store.down = False


@pytest.mark.asyncio
async def test_session_transaction_in_lock_mode(make_app: AppFactory) -> None:
    app = demo_app(
        make_app,
        "memory://",
        SESSION_COATCHECK_CONCURRENCY="lock",
        SESSION_COATCHECK_LOCK_WAIT=0.2,  # a lock left held would make the second fail
    )
    client = app.test_client()
    for value in (1, 2):
        async with client.session_transaction() as session:
            session["n"] = value
        assert await (await client.get("/count")).get_data(as_text=True) == f"{value + 1} lock"
