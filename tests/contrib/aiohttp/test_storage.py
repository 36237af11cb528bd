"""CoatcheckStorage on real stores: counting, rotation with new_session(), invalidate(), a
session's own max_age, strict ids, merge of concurrent requests, lock release, a failing
store, the headers, the start-up warning."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

import aiohttp_session
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from coatcheck import SessionDestroyed, SessionError
from coatcheck.contrib.aiohttp import AiohttpSession, CoatcheckStorage, get_session, setup
from coatcheck.testing import FrozenClock

from ._app import AIOHTTP_SESSION_KEYS, KEY, STORES, client, make_app, store_url

pytestmark = [pytest.mark.asyncio, AIOHTTP_SESSION_KEYS]
COOKIE = "AIOHTTP_SESSION"


def storage_on(kind: str, tmp_path: Path, **options: object) -> CoatcheckStorage:
    return CoatcheckStorage(store_url(kind, tmp_path), secret_key=KEY, **options)  # type: ignore[arg-type]


def present(c: TestClient, ticket: str) -> None:
    """Make the client send ``ticket`` as its only session cookie (a replay)."""
    c.session.cookie_jar.clear()
    c.session.cookie_jar.update_cookies({COOKIE: ticket})


def set_cookie(response: object) -> list[str]:
    return list(response.headers.getall("Set-Cookie", []))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", STORES)
async def test_counts_with_one_cookie_holding_only_a_signed_id(kind: str, tmp_path: Path) -> None:
    async with client(make_app(storage_on(kind, tmp_path))) as c:
        first = await c.get("/count")
        assert await first.json() == {"count": 1, "new": True}
        [header] = set_cookie(first)
        assert header.startswith(f"{COOKIE}=") and "; HttpOnly" in header
        assert "; SameSite=Lax" in header and "Max-Age" not in header  # browser session
        assert "count" not in header and first.headers["Cache-Control"] == "no-store"
        assert first.headers["Vary"] == "Cookie"
        second = await c.get("/count")
        assert await second.json() == {"count": 2, "new": False}
        # A write re-sends the (unchanged) cookie, as aiohttp-session's storages do.
        assert set_cookie(second) == [header]
        read = await c.get("/whoami")
        assert await read.json() == {"user": None, "new": False}
        assert set_cookie(read) == [] and read.headers["Vary"] == "Cookie"


@pytest.mark.parametrize("kind", STORES)
async def test_new_session_rotates_and_the_old_id_is_dead(kind: str, tmp_path: Path) -> None:
    async with client(make_app(storage_on(kind, tmp_path))) as c:
        await c.get("/count")
        before = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
        response = await c.get("/login?user=ada")
        after = response.cookies[COOKIE].value
        assert after and after != before
        # aiohttp-session's new_session() starts empty: the count stayed behind.
        assert await (await c.get("/whoami")).json() == {"user": "ada", "new": False}
        assert await (await c.get("/count")).json() == {"count": 1, "new": False}
        present(c, before)  # replay the old ticket
        assert await (await c.get("/whoami")).json() == {"user": None, "new": True}


async def test_new_session_without_get_session_still_kills_the_old_one(tmp_path: Path) -> None:
    storage = storage_on("sqlite", tmp_path)
    async with client(make_app(storage)) as c:
        await c.get("/login?user=ada")
        old = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
        await c.get("/login?user=bob")  # the handler never calls get_session()
        present(c, old)
        assert await (await c.get("/whoami")).json() == {"user": None, "new": True}


async def test_an_empty_new_session_deletes_the_old_cookie(tmp_path: Path) -> None:
    async def start_over(request: web.Request) -> web.Response:
        await aiohttp_session.new_session(request)
        return web.Response()

    app = make_app(storage_on("sqlite", tmp_path))
    app.router.add_get("/start-over", start_over)
    async with client(app) as c:
        await c.get("/count")
        old = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
        [header] = set_cookie(await c.get("/start-over"))
        assert header.startswith(f"{COOKIE}=;") and "Max-Age=0" in header
        present(c, old)
        assert await (await c.get("/count")).json() == {"count": 1, "new": True}


@pytest.mark.parametrize("kind", STORES)
async def test_invalidate_destroys_the_record_and_deletes_the_cookie(
    kind: str, tmp_path: Path
) -> None:
    async with client(make_app(storage_on(kind, tmp_path))) as c:
        await c.get("/login?user=ada")
        ticket = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
        response = await c.get("/logout")
        morsel = response.cookies[COOKIE]
        assert morsel.value == "" and morsel["max-age"] == "0"
        present(c, ticket)
        assert await (await c.get("/whoami")).json() == {"user": None, "new": True}


async def test_a_session_cannot_be_written_after_invalidate() -> None:
    session = AiohttpSession({"a": 1})
    session.invalidate()
    assert session.empty and session._changed
    with pytest.raises(SessionDestroyed):
        session["b"] = 2


async def test_max_age_gives_one_session_its_own_lifetime(tmp_path: Path) -> None:
    clock = FrozenClock()
    storage = storage_on("sqlite", tmp_path, max_age=60, clock=clock)
    async with client(make_app(storage)) as c:
        response = await c.get("/remember?seconds=3600")
        assert await response.json() == {"max_age": 3600}
        assert "Max-Age=3600" in set_cookie(response)[0]
        clock.advance(1800)  # past the storage's max_age, within the session's own
        assert await (await c.get("/count")).json() == {"count": 1, "new": False}
        assert "Max-Age=3600" in set_cookie(await c.get("/count"))[0]  # kept when stored
        clock.advance(3601)
        assert await (await c.get("/whoami")).json() == {"user": None, "new": True}
    (tmp_path / "other").mkdir()
    other = storage_on("sqlite", tmp_path / "other", max_age=60, clock=clock)
    async with client(make_app(other)) as c:
        first = await c.get("/count")
        assert "Max-Age=60" in set_cookie(first)[0]
        clock.advance(61)  # the storage's max_age is the idle timeout on the server too
        assert await (await c.get("/count")).json() == {"count": 1, "new": True}


@pytest.mark.parametrize("ticket", ["forged", "x" * 43, "a.b.c", ""])
async def test_unknown_or_forged_ids_get_a_fresh_session(ticket: str, tmp_path: Path) -> None:
    async with client(make_app(storage_on("sqlite", tmp_path))) as c:
        present(c, ticket)
        response = await c.get("/count")
        assert await response.json() == {"count": 1, "new": True}
        assert response.cookies[COOKIE].value not in (ticket, "")


async def test_a_record_that_does_not_decode_gives_a_new_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = storage_on("sqlite", tmp_path, create_tables=True)
    async with client(make_app(storage)) as c:
        await c.get("/count")
        ticket = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
        # closing(): sqlite3's own context manager commits but leaves the connection open.
        with contextlib.closing(sqlite3.connect(tmp_path / "sessions.db")) as db, db:
            tables = [row[0] for row in db.execute("select name from sqlite_master")]
            table = next(name for name in tables if "session" in name)
            db.execute(f"update {table} set payload = ?", (b"garbage",))  # noqa: S608
        with caplog.at_level(logging.WARNING, logger="coatcheck.security"):
            response = await c.get("/whoami")
        assert await response.json() == {"user": None, "new": True}
        assert any("session refused" in r.getMessage() for r in caplog.records)
        present(c, ticket)
        assert (await (await c.get("/count")).json())["new"] is True


@pytest.mark.parametrize("kind", STORES)
async def test_merge_keeps_both_of_two_concurrent_writes(kind: str, tmp_path: Path) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        session = await get_session(request)
        session["slow"] = True
        started.set()
        await release.wait()
        return web.Response()

    async def fast(request: web.Request) -> web.Response:
        (await get_session(request))["fast"] = True
        return web.Response()

    storage = storage_on(kind, tmp_path)
    app = make_app(storage)
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    async with client(app) as c:
        await c.get("/count")
        pending = asyncio.ensure_future(c.get("/slow"))
        await started.wait()
        await c.get("/fast")
        release.set()
        await pending
        ticket = c.session.cookie_jar.filter_cookies(c.make_url("/"))[COOKIE].value
        session = await storage.manager.open(ticket, read_only=True)
        assert dict(session) == {"count": 1, "slow": True, "fast": True}


async def test_lock_mode_releases_the_lock_when_the_handler_raises(tmp_path: Path) -> None:
    async def boom(request: web.Request) -> web.Response:
        (await get_session(request))["x"] = 1
        raise RuntimeError("boom")

    storage = storage_on("sqlite", tmp_path, concurrency="lock", lock_wait=0.2)
    app = make_app(storage)
    app.router.add_get("/boom", boom)
    async with client(app) as c:
        await c.get("/count")
        assert (await c.get("/boom")).status == 500
        # Not held: the next request gets in at once, and the failed write was dropped.
        assert await (await c.get("/count")).json() == {"count": 2, "new": False}


async def test_lock_mode_needs_coatcheck_setup(tmp_path: Path) -> None:
    storage = storage_on("sqlite", tmp_path, concurrency="lock")
    async with client(make_app(storage, coatcheck_setup=False)) as c:
        assert (await c.get("/count")).status == 500
    await storage.aclose()


async def test_a_failing_store_answers_503_without_a_cookie() -> None:
    storage = CoatcheckStorage("redis://127.0.0.1:1/0?timeout=0.5", secret_key=KEY)
    async with client(make_app(storage)) as c:
        response = await c.get("/count")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1" and not set_cookie(response)
        assert (await response.text()).startswith("Service Unavailable: the session store")


async def test_the_apps_vary_and_cache_control_are_merged(tmp_path: Path) -> None:
    async def cached(request: web.Request) -> web.Response:
        (await get_session(request))["x"] = 1
        return web.Response(headers={"Vary": "Accept", "Cache-Control": "public, max-age=60"})

    app = make_app(storage_on("sqlite", tmp_path))
    app.router.add_get("/cached", cached)
    async with client(app) as c:
        response = await c.get("/cached")
        assert response.headers.getall("Vary") == ["Accept, Cookie"]
        assert response.headers.getall("Cache-Control") == ["no-store"]


async def test_changed_says_whether_the_save_has_work(tmp_path: Path) -> None:
    seen: list[bool] = []

    async def look(request: web.Request) -> web.Response:
        session = await get_session(request)
        seen.append(session._changed)  # nothing read or written yet
        session["k"] = "v"
        seen.append(session._changed)
        return web.Response()

    app = make_app(storage_on("sqlite", tmp_path))
    app.router.add_get("/look", look)
    async with client(app) as c:
        await c.get("/look")
    assert seen == [False, True]


async def test_read_only_routes_refuse_writes(tmp_path: Path) -> None:
    storage = storage_on("sqlite", tmp_path, mode_for=lambda m, p: "read-only")
    async with client(make_app(storage)) as c:
        assert (await c.get("/count")).status == 500
        assert (await c.get("/whoami")).status == 200


async def test_setup_creates_tables_at_startup_and_closes_the_store(tmp_path: Path) -> None:
    storage = storage_on("sqlite", tmp_path)
    app = web.Application()
    setup(app, storage)
    async with client(app):
        assert (tmp_path / "sessions.db").is_file()
    assert not storage._tables_pending


async def test_the_session_is_aiohttp_sessions_and_coatchecks() -> None:
    session = AiohttpSession({"a": 1})
    assert isinstance(session, aiohttp_session.Session)
    assert session.new and session.identity is None and not session.empty
    session._mapping["b"] = 2  # aiohttp-session's inner dict is the session itself
    assert session["b"] == 2 and "b" in {key for _, key in session.changes.keys}
    with pytest.raises(SessionError):
        session.set_new_identity("chosen")
    session.max_age = 10
    assert session.own_lifetime == {"idle_timeout": 10, "cookie_max_age": 10}
    assert session.max_age == 10
    session.max_age = None  # a browser-session cookie; the server still ends it
    assert session.own_lifetime == {"idle_timeout": 14 * 24 * 3600, "cookie_max_age": None}
    assert session.max_age is None
    session.max_age = -5  # expired at once, as aiohttp-session's max_age <= 0
    assert session.own_lifetime == {"idle_timeout": 0, "cookie_max_age": 0}
    with pytest.raises(SessionError):
        session.max_age = 1.5  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({}, True),
        ({"secure": True}, False),
        ({"secure": True, "secret_key": "short-key-16byte"}, True),
    ],
)
async def test_start_up_warning(
    options: dict[str, object], warned: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        CoatcheckStorage(f"sqlite:///{tmp_path / 's.db'}", warn_insecure=True, **options)  # type: ignore[arg-type]
    assert any("CoatcheckStorage" in r.getMessage() for r in caplog.records) is warned
