"""The WSGI protocol's corners: close(), write(), lazy start_response, exc_info, the environ."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any
from wsgiref.handlers import SimpleHandler
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck.testing import FrozenClock
from coatcheck.wsgi import SessionMiddleware

from .._support import BASE_URL, CLIENT_ADDR, ProbeStore, session_config
from ._app import TEXT, StartResponse, wrap

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
