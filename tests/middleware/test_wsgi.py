"""The WSGI middleware, end to end through httpx's WSGI transport, on a real (probed) store.

Every app and the middleware itself run inside ``wsgiref.validate.validator`` on both sides, so
a PEP 3333 violation by the middleware (towards the server or towards the app) fails the test.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.handlers import SimpleHandler
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck._sansio.ids import new_session_id
from coatcheck.errors import ConfigurationError
from coatcheck.stores import RedisStore, SQLiteStore
from coatcheck.testing import FrozenClock
from coatcheck.wsgi import SessionMiddleware

from ._support import (
    MERGE_CASES,
    ProbeStore,
    assert_one_security_record,
    assert_safe_headers,
    session_config,
)

BASE_URL = "https://testserver.local"
CLIENT_ADDR = "203.0.113.5"
TEXT = [("Content-Type", "text/plain; charset=utf-8")]

StartResponse = Callable[..., Callable[[bytes], object]]


def demo_app(
    peer: list[httpx.Client],
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A small WSGI app: each path does one thing to the session and answers the counter."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session = environ["coatcheck.session"]
        path = environ["PATH_INFO"]
        query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
        status = "200 OK"
        headers = list(TEXT)
        if path == "/untouched":
            return _answer(start_response, status, headers, b"hello")
        if path == "/incr":
            session["n"] = session.get("n", 0) + 1
        elif path == "/login":
            session.regenerate()
            session["user"] = "ann"
        elif path == "/logout":
            session.destroy()
            return _answer(start_response, status, headers, b"bye")
        elif path == "/fail":
            session["n"] = -1
            status = "500 Internal Server Error"
        elif path == "/unavailable":
            session["n"] = -1
            status = "503 Service Unavailable"
        elif path == "/headers":
            session["n"] = 1
            if "vary" in query:
                headers.append(("Vary", query["vary"]))
            if "cc" in query:
                headers.append(("Cache-Control", query["cc"]))
        elif path == "/race":
            # Another request of the same client (a second tab) logs out meanwhile.
            peer[0].post("/logout", headers={"Cookie": environ["HTTP_COOKIE"]})
            session["n"] = 100
        elif path == "/nested":
            # Another request for the same session while this one has it open.
            inner = peer[0].get("/read", headers={"Cookie": environ["HTTP_COOKIE"]})
            return _answer(start_response, status, headers, str(inner.status_code).encode())
        elif path == "/boom":
            session["n"] = -1
            raise RuntimeError("application bug")
        return _answer(start_response, status, headers, repr(session.get("n")).encode())

    return app


def _answer(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    start_response(status, headers)
    return [body]


def wrap(app: Any, manager: SessionManager, **options: Any) -> Any:
    """The middleware, validated as a server towards ``app`` and as an app towards the client."""
    return validator(SessionMiddleware(validator(app), manager, **options))


@pytest.fixture
def store() -> Iterator[ProbeStore]:
    probe = ProbeStore()
    yield probe
    probe.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def manager(store: ProbeStore, clock: FrozenClock) -> SessionManager:
    return SessionManager(store, session_config(), clock=clock)


def make_client(manager: SessionManager, **options: Any) -> httpx.Client:
    peer: list[httpx.Client] = []
    transport = httpx.WSGITransport(
        app=wrap(demo_app(peer), manager, **options), remote_addr=CLIENT_ADDR
    )
    client = httpx.Client(transport=transport, base_url=BASE_URL)
    peer.append(client)
    return client


@pytest.fixture
def client(manager: SessionManager) -> Iterator[httpx.Client]:
    with make_client(manager) as c:
        yield c


def get(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    response = client.get(path, **kwargs)
    assert_safe_headers(response.headers)
    return response


def attributes(set_cookie: str) -> set[str]:
    """The attributes of a Set-Cookie value, without the pair and the lifetime."""
    parts = [p.strip() for p in set_cookie.split(";")[1:]]
    return {p for p in parts if not p.lower().startswith(("expires=", "max-age="))}


# -- lazy creation and the store traffic of each kind of request ------------------------------


def test_no_cookie_and_untouched_session_costs_nothing(
    client: httpx.Client, store: ProbeStore
) -> None:
    response = get(client, "/untouched")
    assert response.status_code == 200
    assert response.text == "hello"
    assert sum(store.calls.values()) == 0
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers
    assert "cache-control" not in response.headers


def test_a_write_sets_the_cookie_and_the_next_request_sees_the_data(
    client: httpx.Client, store: ProbeStore
) -> None:
    first = get(client, "/incr")
    assert first.text == "1"
    assert store.calls["load"] == 0  # no cookie: nothing to read
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

    second = get(client, "/incr")
    assert second.text == "2"
    assert store.calls["load"] == 1
    assert store.calls["update"] == 1
    assert "set-cookie" not in second.headers  # same ticket, browser-session cookie
    assert second.headers["vary"] == "Cookie"


def test_read_only_request_writes_nothing(
    client: httpx.Client, store: ProbeStore, clock: FrozenClock
) -> None:
    get(client, "/incr")
    writes = store.writes()
    response = get(client, "/read")
    assert response.text == "1"
    assert store.calls["load"] == 1
    assert store.writes() == writes
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"
    # Past the access-time resolution a read refreshes expiry, still no cookie: the memory
    # store slides it inside the load (slides_on_load), so no touch of its own.
    clock.advance(61)
    response = get(client, "/read")
    assert store.calls["touch"] == 0
    assert store.calls["update"] == 0
    idle = session_config().idle_timeout
    assert idle is not None
    assert store.count(clock() + idle - 1) == 1  # unslid, it would have expired 60 s earlier
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("path", ["/fail", "/unavailable"])
def test_5xx_response_saves_nothing(client: httpx.Client, store: ProbeStore, path: str) -> None:
    response = get(client, path)
    assert response.status_code >= 500
    assert store.writes() == 0
    assert "set-cookie" not in response.headers
    # With a stored session, the 5xx request's change is dropped too.
    get(client, "/incr")
    writes = store.writes()
    get(client, path)
    assert store.writes() == writes
    assert get(client, "/read").text == "1"


def test_application_exception_propagates_and_saves_nothing(
    client: httpx.Client, store: ProbeStore
) -> None:
    with pytest.raises(RuntimeError, match="application bug"):
        client.get("/boom")
    assert store.writes() == 0


# -- rotation and destruction -----------------------------------------------------------------


def test_login_regenerates_and_the_old_ticket_is_dead(
    client: httpx.Client,
    store: ProbeStore,
    manager: SessionManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = get(client, "/incr").cookies["sid"]
    response = get(client, "/login")
    new = response.cookies["sid"]
    assert new != old
    assert response.headers["cache-control"] == "no-store"
    assert get(client, "/read").text == "1"  # data kept under the new ticket

    with make_client(manager) as stranger, caplog.at_level(logging.INFO):
        replay = get(stranger, "/read", headers={"Cookie": f"sid={old}"})
    assert replay.text == "None"
    assert "set-cookie" not in replay.headers
    assert_one_security_record(caplog, "unknown-id", [old, new])


def test_destroy_sends_a_deleting_cookie_with_the_same_path_and_domain(
    client: httpx.Client, store: ProbeStore
) -> None:
    set_cookie = get(client, "/incr").headers["set-cookie"]
    response = get(client, "/logout")
    deleting = response.headers["set-cookie"]
    assert deleting.startswith("sid=;")
    assert "Max-Age=0" in deleting
    assert attributes(deleting) == attributes(set_cookie)
    assert response.headers["vary"] == "Cookie"
    assert response.headers["cache-control"] == "no-store"
    assert store.calls["delete"] == 1
    assert len(store._entries) == 0
    assert "sid" not in client.cookies
    assert get(client, "/read").text == "None"


def test_destroy_without_a_cookie_sends_only_vary(client: httpx.Client, store: ProbeStore) -> None:
    response = get(client, "/logout")
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"
    assert sum(store.calls.values()) == 0


def test_session_destroyed_by_a_concurrent_request_is_cleared(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = get(client, "/incr").cookies["sid"]
    with caplog.at_level(logging.INFO):
        response = get(client, "/race")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("sid=;")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert len(store._entries) == 0  # the late save did not resurrect it
    assert_one_security_record(caplog, "session-interrupted", [ticket])


# -- untrusted cookies ------------------------------------------------------------------------


def test_two_different_session_cookies_give_a_fresh_session(
    client: httpx.Client,
    manager: SessionManager,
    store: ProbeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = get(client, "/incr").cookies["sid"]
    other = new_session_id()
    loads = store.calls["load"]
    with make_client(manager) as tossed, caplog.at_level(logging.INFO):
        response = get(tossed, "/read", headers={"Cookie": f"sid={real}; sid={other}"})
    assert response.text == "None"
    assert store.calls["load"] == loads  # refused before any lookup
    assert_one_security_record(caplog, "ambiguous-cookie", [real, other])


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
def test_untrusted_cookie_gives_a_fresh_session_and_one_security_record(
    store: ProbeStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    ticket: str,
    reason: str,
    loads: int,
    signed: bool,
) -> None:
    manager = SessionManager(store, session_config(sign_cookie=signed), clock=clock)
    with make_client(manager) as client, caplog.at_level(logging.INFO):
        response = get(client, "/read", headers={"Cookie": f"sid={ticket}"})
        assert response.status_code == 200
        assert response.text == "None"
        assert store.calls["load"] == loads
        assert store.writes() == 0
        assert "set-cookie" not in response.headers
        assert_one_security_record(caplog, reason, [ticket, ticket[:43]])
        # A write after a refused ticket starts a new session with a ticket of our own.
        fresh = get(client, "/incr", headers={"Cookie": f"sid={ticket}"})
        assert fresh.text == "1"
        assert fresh.cookies["sid"] != ticket


# -- the store failing ------------------------------------------------------------------------


def test_store_down_when_loading_gives_503_and_keeps_the_cookie(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    get(client, "/incr")
    ticket = client.cookies["sid"]
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = get(client, "/incr")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("text/plain")
    assert "set-cookie" not in response.headers
    assert client.cookies["sid"] == ticket
    failures = [r for r in caplog.records if r.name == "coatcheck"]
    assert len(failures) == 1
    assert failures[0].store == "probe+memory://"  # type: ignore[attr-defined]
    assert "probe+memory://" in failures[0].getMessage()
    assert "unavailable" in failures[0].getMessage()

    store.down = False  # the server is back: no restart needed
    assert get(client, "/incr").text == "2"


def test_store_down_when_saving_gives_503_without_the_app_body(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = get(client, "/incr")
    assert response.status_code == 503
    assert b"Service Unavailable" in response.content
    assert "set-cookie" not in response.headers
    assert "sid" not in client.cookies
    assert any(r.name == "coatcheck" and r.store == "probe+memory://" for r in caplog.records)  # type: ignore[attr-defined]
    store.down = False
    assert get(client, "/incr").text == "1"


def test_other_store_error_also_gives_503_logged_as_an_error(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    def corrupt_database(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    store.create = corrupt_database  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = get(client, "/incr")
    assert response.status_code == 503
    assert "set-cookie" not in response.headers
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert record.levelno == logging.ERROR
    assert "probe+memory://" in record.getMessage()


# -- headers the application set itself -------------------------------------------------------


@pytest.mark.parametrize(("query", "vary", "cache_control"), MERGE_CASES)
def test_existing_vary_and_cache_control_are_merged(
    client: httpx.Client, query: str, vary: str, cache_control: str
) -> None:
    response = get(client, "/headers?" + query.replace(" ", "%20"))
    assert response.headers.get_list("vary") == [vary]
    assert response.headers.get_list("cache-control") == [cache_control]
    assert len(response.headers.get_list("set-cookie")) == 1


# -- the id in a request header instead of a cookie ------------------------------------------


def test_id_header_mode(manager: SessionManager, store: ProbeStore) -> None:
    with make_client(manager, id_header="X-Session-Id") as client:
        first = get(client, "/incr")
        ticket = first.headers["x-session-id"]
        assert ticket
        assert "set-cookie" not in first.headers
        assert first.headers["vary"] == "X-Session-Id"
        assert first.headers["cache-control"] == "no-store"

        second = get(client, "/incr", headers={"X-Session-Id": ticket})
        assert second.text == "2"
        assert "x-session-id" not in second.headers  # unchanged ticket: nothing to send
        assert second.headers["vary"] == "X-Session-Id"

        # A cookie means nothing in this mode.
        assert get(client, "/read", headers={"Cookie": f"sid={ticket}"}).text == "None"

        rotated = get(client, "/login", headers={"X-Session-Id": ticket})
        new = rotated.headers["x-session-id"]
        assert new and new != ticket
        assert get(client, "/read", headers={"X-Session-Id": new}).text == "2"

        gone = get(client, "/logout", headers={"X-Session-Id": new})
        assert gone.headers["x-session-id"] == ""
        assert "set-cookie" not in gone.headers
        assert len(store._entries) == 0


@pytest.mark.parametrize("name", ["Cookie", "set-cookie", "X Session", "X-Id\r\n", ""])
def test_id_header_must_be_a_free_header_name(manager: SessionManager, name: str) -> None:
    with pytest.raises(ConfigurationError):
        SessionMiddleware(demo_app([]), manager, id_header=name)


# -- the WSGI protocol's corners --------------------------------------------------------------


class ClosingBody:
    """A response body with close(), as file wrappers and generators have."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


def session_client(app: Any, manager: SessionManager, **kwargs: Any) -> httpx.Client:
    transport = httpx.WSGITransport(app=wrap(app, manager), remote_addr=CLIENT_ADDR, **kwargs)
    return httpx.Client(transport=transport, base_url=BASE_URL)


def test_body_close_is_called_once(manager: SessionManager, store: ProbeStore) -> None:
    body = ClosingBody([b"a", b"b"])

    def app(environ: dict[str, Any], start_response: StartResponse) -> ClosingBody:
        environ["coatcheck.session"]["n"] = 1
        start_response("200 OK", list(TEXT))
        return body

    with session_client(app, manager) as client:
        response = client.get("/")
    assert response.content == b"ab"
    assert "set-cookie" in response.headers
    assert body.closed == 1


def test_body_close_is_called_when_the_save_fails(
    manager: SessionManager, store: ProbeStore
) -> None:
    body = ClosingBody([b"secret"])

    def app(environ: dict[str, Any], start_response: StartResponse) -> ClosingBody:
        environ["coatcheck.session"]["n"] = 1
        start_response("200 OK", list(TEXT))
        return body

    store.down = True
    with session_client(app, manager) as client:
        response = client.get("/")
    assert response.status_code == 503
    assert b"secret" not in response.content
    assert body.closed == 1


def run_wsgiref(app: Any, manager: SessionManager) -> tuple[str, list[tuple[str, str]], bytes]:
    """Serve one request with the standard library's own WSGI server code (which implements
    write() for real, unlike httpx's transport); returns status, headers and body."""
    environ: dict[str, Any] = {"REMOTE_ADDR": CLIENT_ADDR, "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    out, err = io.BytesIO(), io.StringIO()
    handler = SimpleHandler(io.BytesIO(), out, err, environ, multithread=False)
    handler.run(wrap(app, manager))
    assert not err.getvalue(), err.getvalue()
    head, _, body = out.getvalue().partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    return status_line.split(" ", 1)[1], headers, body


def test_write_callable(manager: SessionManager) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        environ["coatcheck.session"]["n"] = 1
        write = start_response("200 OK", list(TEXT))
        write(b"written, ")
        return [b"returned"]

    status, headers, body = run_wsgiref(app, manager)
    assert status == "200 OK"
    assert body == b"written, returned"
    assert [n for n, _ in headers].count("Set-Cookie") == 1


def test_write_callable_after_a_failed_save_writes_nothing(
    manager: SessionManager, store: ProbeStore
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        environ["coatcheck.session"]["n"] = 1
        write = start_response("200 OK", list(TEXT))
        write(b"leaked")
        return []

    store.down = True
    status, headers, body = run_wsgiref(app, manager)
    assert status == "503 Service Unavailable"
    assert b"leaked" not in body
    assert b"Service Unavailable" in body
    assert "Set-Cookie" not in [n for n, _ in headers]


def test_generator_app_that_starts_the_response_lazily(
    manager: SessionManager, store: ProbeStore
) -> None:
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        try:
            environ["coatcheck.session"]["n"] = 1
            start_response("200 OK", list(TEXT))
            yield b"lazy"
        finally:
            closed.append(True)

    with session_client(app, manager) as client:
        response = client.get("/")
        assert response.content == b"lazy"
        assert "set-cookie" in response.headers
        assert closed == [True]

        store.down = True
        client.cookies.clear()  # a new visitor: the app runs, and only its save fails
        failed = client.get("/")
    assert failed.status_code == 503
    assert b"lazy" not in failed.content
    assert closed == [True, True]


def test_exc_info_replacement_after_the_save_keeps_the_session_headers(
    manager: SessionManager, store: ProbeStore
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        environ["coatcheck.session"]["n"] = 1
        start_response("200 OK", list(TEXT))
        try:
            raise ValueError("rendering failed")
        except ValueError:
            start_response("500 Internal Server Error", list(TEXT), sys.exc_info())
        return [b"error page"]

    with session_client(app, manager, raise_app_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == 500
    # The save happened at the first start_response; the client must learn the ticket.
    assert response.headers["set-cookie"].startswith("sid=")
    assert store.calls["create"] == 1


def test_exc_info_as_the_first_call_saves_nothing(
    manager: SessionManager, store: ProbeStore
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        environ["coatcheck.session"]["n"] = 1
        try:
            raise ValueError("early failure")
        except ValueError:
            start_response("500 Internal Server Error", list(TEXT), sys.exc_info())
        return [b"error page"]

    with session_client(app, manager, raise_app_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == 500
    assert "set-cookie" not in response.headers
    assert store.writes() == 0


def test_environ_key_and_client_binding(store: ProbeStore, clock: FrozenClock) -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        session = environ["my.session"]
        seen.append(session.remote_addr)
        session["n"] = 1
        start_response("200 OK", list(TEXT))
        return [b""]

    manager = SessionManager(store, session_config(bind_user_agent=True), clock=clock)
    transport = httpx.WSGITransport(
        app=validator(SessionMiddleware(validator(app), manager, environ_key="my.session")),
        remote_addr=CLIENT_ADDR,
    )
    with httpx.Client(transport=transport, base_url=BASE_URL) as client:
        client.get("/", headers={"User-Agent": "browser/1"})
        client.get("/", headers={"User-Agent": "browser/1"})
        assert store.calls["update"] == 1  # same agent: the session was found
        client.get("/", headers={"User-Agent": "other/2"})
        assert store.calls["create"] == 2  # another agent: a fresh session
    assert seen[0] == CLIENT_ADDR


# -- other real stores --------------------------------------------------------------------------


def test_sqlite_store_round_trip_and_statements(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.db")
    store.create_tables()
    try:
        manager = SessionManager(store, session_config())
        with make_client(manager) as client:
            assert get(client, "/untouched").status_code == 200  # opens no connection
            assert get(client, "/incr").text == "1"
            seen: list[str] = []
            with store._db.connection() as conn:  # the pool's one connection
                conn.set_trace_callback(seen.append)
            assert get(client, "/read").text == "1"
            assert [s.split()[0] for s in seen] == ["SELECT"]  # a read is one SELECT
            seen.clear()
            assert get(client, "/incr").text == "2"
            assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"]
            seen.clear()
            assert get(client, "/logout").headers["set-cookie"].startswith("sid=;")
            assert [s.split()[0] for s in seen] == ["SELECT", "DELETE"]
            assert store.count(time.time()) == 0
    finally:
        store.close()


def test_redis_store_at_a_closed_port_gives_503(caplog: pytest.LogCaptureFixture) -> None:
    # A real driver, whose server is down: nothing listens on port 1.
    store = RedisStore.from_url("redis://127.0.0.1:1/0?socket_timeout=2")
    try:
        manager = SessionManager(store, session_config())
        with make_client(manager) as client, caplog.at_level(logging.INFO, logger="coatcheck"):
            response = get(client, "/read", headers={"Cookie": f"sid={new_session_id()}"})
            assert response.status_code == 503
            assert "set-cookie" not in response.headers
            assert get(client, "/untouched").status_code == 200  # no cookie: no store call
    finally:
        store.close()
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert "redis://127.0.0.1:1/0" in record.getMessage()


def test_app_error_after_a_503_still_propagates(manager: SessionManager, store: ProbeStore) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        environ["coatcheck.session"]["n"] = 1
        start_response("200 OK", list(TEXT))  # the save fails: the response becomes a 503
        try:
            raise ValueError("template error")
        except ValueError:
            start_response("500 Internal Server Error", list(TEXT), sys.exc_info())
        return [b"error page"]

    store.down = True
    with session_client(app, manager) as client, pytest.raises(ValueError, match="template"):
        client.get("/")


# -- lock mode: the lock is always released, and a held lock is a 503 ------------------------


def lock_manager(store: ProbeStore, clock: FrozenClock) -> SessionManager:
    # lock_wait=0: a held lock is reported at once instead of after a wait.
    return SessionManager(store, session_config(concurrency="lock", lock_wait=0), clock=clock)


def test_lock_mode_a_request_finding_the_session_locked_gets_503(
    store: ProbeStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    with make_client(lock_manager(store, clock)) as client:
        get(client, "/incr")
        with caplog.at_level(logging.INFO, logger="coatcheck"):
            assert get(client, "/nested").text == "503"
        assert any("lock" in r.getMessage() for r in caplog.records if r.name == "coatcheck")
        assert get(client, "/read").text == "1"  # the outer request's save released it


@pytest.mark.parametrize("path", ["/fail", "/boom", "/untouched"])
def test_lock_mode_an_unsaved_request_releases_the_lock(
    store: ProbeStore, clock: FrozenClock, path: str
) -> None:
    with make_client(lock_manager(store, clock)) as client:
        get(client, "/incr")
        if path == "/boom":
            with pytest.raises(RuntimeError):
                client.get(path)
        else:
            client.get(path)
        response = get(client, "/incr")
        assert response.status_code == 200
        assert response.text == "2"


# -- per-route modes ---------------------------------------------------------------------------


def read_only_reads(method: str, path: str) -> str | None:
    return "read-only" if method == "GET" and path == "/read" else None


def test_mode_for_read_only_route_is_not_blocked_by_a_lock_and_never_writes(
    store: ProbeStore, clock: FrozenClock
) -> None:
    with make_client(lock_manager(store, clock), mode_for=read_only_reads) as client:
        get(client, "/incr")
        # /nested holds the session lock while its inner /read runs: a read-only route
        # takes no lock, so it is served instead of getting a 503.
        assert get(client, "/nested").text == "200"
        clock.advance(120)  # past the 60 s access resolution
        writes = store.writes()
        assert get(client, "/read").text == "1"
        assert store.writes() == writes  # not even a touch


def test_mode_for_can_pick_lock_for_one_route(store: ProbeStore, clock: FrozenClock) -> None:
    manager = SessionManager(store, session_config(lock_wait=0), clock=clock)  # merge by default

    def lock_nested(method: str, path: str) -> str | None:
        return "lock" if path in ("/nested", "/read") else None

    with make_client(manager, mode_for=lock_nested) as client:
        get(client, "/incr")
        assert get(client, "/nested").text == "503"  # both routes lock: the inner one waits
    with make_client(manager) as client:
        get(client, "/incr")
        assert get(client, "/nested").text == "200"  # merge mode takes no lock


def test_mode_for_returning_nonsense_is_a_configuration_error(
    store: ProbeStore, clock: FrozenClock
) -> None:
    manager = SessionManager(store, session_config(), clock=clock)
    with (
        make_client(manager, mode_for=lambda method, path: "sometimes") as client,
        pytest.raises(ConfigurationError),
    ):
        client.get("/read")
