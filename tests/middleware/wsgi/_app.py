"""The WSGI app the middleware tests drive, wrapped in the middleware and validated on both
sides by ``wsgiref.validate.validator``, so a PEP 3333 violation by the middleware (towards the
server or towards the app) fails the test; and the client that drives it, through httpx's WSGI
transport."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

import httpx

from coatcheck import SessionManager
from coatcheck.wsgi import SessionMiddleware

from .._support import BASE_URL, CLIENT_ADDR, assert_safe_headers

__all__ = ["TEXT", "StartResponse", "demo_app", "get", "make_client", "wrap"]

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
        elif path == "/race-login":
            # A second tab logs out while this request logs in (rotates the id).
            peer[0].post("/logout", headers={"Cookie": environ["HTTP_COOKIE"]})
            session.regenerate()
            session["user"] = "ann"
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


def make_client(manager: SessionManager, **options: Any) -> httpx.Client:
    peer: list[httpx.Client] = []
    transport = httpx.WSGITransport(
        app=wrap(demo_app(peer), manager, **options), remote_addr=CLIENT_ADDR
    )
    client = httpx.Client(transport=transport, base_url=BASE_URL)
    peer.append(client)
    return client


def get(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    response = client.get(path, **kwargs)
    assert_safe_headers(response.headers)
    return response
