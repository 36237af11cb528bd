"""The app, bare and behind a session middleware, and the server's side played by hand.

WSGI with a prepared environ, ASGI with scope/receive/send on one event loop; no sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__ = [
    "COOKIE",
    "KEY",
    "act",
    "asgi_app",
    "asgi_scope",
    "asgi_ticket",
    "cookie_from",
    "last_headers",
    "receive",
    "send",
    "wsgi_app",
    "wsgi_call",
    "wsgi_environ",
    "wsgi_ticket",
]

COOKIE = "session"  # the default cookie name
KEY = "coatcheck.session"


# -- the app, bare and wrapped -------------------------------------------------------------------


def act(session: Any, scenario: str) -> None:
    """What the app does with the session in each scenario."""
    if scenario == "read-only":
        session.get("n")
    else:
        session["n"] = session.get("n", 0) + 1


def wsgi_app(scenario: str) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = environ.get(KEY)
        if session is not None:
            act(session, scenario)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    return app


def asgi_app(scenario: str) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope.get("session")
        if session is not None:
            act(session, scenario)
        # New messages every time: a middleware may add to them in place (Starlette's does).
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


# -- the server side, played by hand -------------------------------------------------------------

last_headers: list[Any] = []


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    last_headers[:] = headers
    return None


def wsgi_environ(cookie: str | None, name: str = COOKIE) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench.local",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.5",
        "HTTP_HOST": "bench.local",
        "HTTP_USER_AGENT": "overhead-benchmark/1.0",
        "wsgi.url_scheme": "https",
    }
    if cookie:
        environ["HTTP_COOKIE"] = f"theme=dark; {name}={cookie}"
    return environ


def wsgi_call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> None:
    result = app(environ, _start_response)
    for _ in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def asgi_scope(cookie: str | None, name: str = COOKIE) -> dict[str, Any]:
    headers = [(b"host", b"bench.local"), (b"user-agent", b"overhead-benchmark/1.0")]
    if cookie:
        headers.append((b"cookie", f"theme=dark; {name}={cookie}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.5", 50000),
        "server": ("bench.local", 443),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    if message["type"] == "http.response.start":
        last_headers[:] = message["headers"]


def cookie_from(headers: Iterable[tuple[Any, Any]], cookie: str = COOKIE) -> str:
    for name, value in headers:
        name = name.decode() if isinstance(name, bytes) else name
        value = (value.decode() if isinstance(value, bytes) else value).strip()  # Beaker: " b…"
        if name.lower() == "set-cookie" and value.startswith(cookie + "="):
            return str(value.split(";", 1)[0].split("=", 1)[1])
    raise RuntimeError("the middleware set no session cookie")


def wsgi_ticket(app: Callable[..., Iterable[bytes]]) -> str:
    """Create a session through the (writing) middleware-wrapped app; return its cookie value."""
    wsgi_call(app, wsgi_environ(None))
    return cookie_from(last_headers)


async def asgi_ticket(app: Callable[..., Awaitable[None]]) -> str:
    await app(asgi_scope(None), receive, send)
    return cookie_from(last_headers)
