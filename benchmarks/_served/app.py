"""The app ``benchmarks/served.py`` runs under gunicorn (``wsgi``) and uvicorn (``asgi``).

Configured by environment variables, read once per worker process:

- ``SERVED_STORE``: the store URL (shared by every worker: not ``memory://``);
- ``SERVED_MODE``: ``none``, ``merge`` or ``lock``;
- ``SERVED_WRITE``: ``assign`` (``session["n"] = session["n"] + 1``) or ``incr``
  (``session.incr("n")``, the operation a merge replays);
- ``SERVED_HOLD``: seconds each ``/hit`` spends between its read and its write (the work a
  request does while it holds the session);
- ``SERVED_LOCK_WAIT``: the manager's ``lock_wait``.

Routes: ``/start`` makes a session holding ``n = 0``; ``/hit`` adds one to ``n`` (503 when
the middleware refuses: ``SessionLocked``, a store outage); ``/count`` reads ``n``
(read-only) into the body.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from coatcheck import AsyncSessionManager, CookieConfig, SessionManager
from coatcheck.asgi import SessionMiddleware as ASGIMiddleware
from coatcheck.wsgi import SessionMiddleware as WSGIMiddleware

__all__ = ["asgi", "wsgi"]

STORE = os.environ.get("SERVED_STORE", "sqlite:///served.db")
MODE = os.environ.get("SERVED_MODE", "merge")
WRITE = os.environ.get("SERVED_WRITE", "assign")
HOLD = float(os.environ.get("SERVED_HOLD", "0"))
SETTINGS: dict[str, Any] = {
    "concurrency": MODE,
    "lock_wait": float(os.environ.get("SERVED_LOCK_WAIT", "10")),
    "idle_timeout": 3600.0,
    # Plain http on 127.0.0.1: a Secure cookie would never come back.
    "cookie": CookieConfig(secure=False),
}


def _mode_for(method: str, path: str) -> str | None:
    return "read-only" if path == "/count" else None


# -- WSGI (gunicorn's sync workers) ----------------------------------------------------------


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session = environ["coatcheck.session"]
    path = environ.get("PATH_INFO", "/")
    body = b"ok"
    if path == "/start":
        session["n"] = 0
    elif path == "/hit":
        value = session["n"]
        if HOLD:
            time.sleep(HOLD)
        if WRITE == "incr":
            session.incr("n")
        else:
            session["n"] = value + 1
    elif path == "/count":
        body = str(session.get("n", -1)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


_manager = SessionManager(STORE, **SETTINGS)
if hasattr(_manager.store, "create_tables"):
    _manager.store.create_tables()
wsgi = WSGIMiddleware(_wsgi_app, _manager, mode_for=_mode_for)


# -- ASGI (uvicorn's workers) -------------------------------------------------------------------


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})  # lifespan.startup / .shutdown
            if kind == "lifespan.shutdown":
                return
    session = scope["session"]
    path = scope.get("path", "/")
    body = b"ok"
    if path == "/start":
        session["n"] = 0
    elif path == "/hit":
        value = session["n"]
        if HOLD:
            await asyncio.sleep(HOLD)
        if WRITE == "incr":
            session.incr("n")
        else:
            session["n"] = value + 1
    elif path == "/count":
        body = str(session.get("n", -1)).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _LazyASGI:
    """The ASGI middleware, built inside the worker's event loop on its first call (an async
    store's connections belong to the loop that made them)."""

    def __init__(self) -> None:
        self._app: ASGIMiddleware | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            manager = AsyncSessionManager(STORE, **SETTINGS)
            create = getattr(manager.store, "create_tables", None)
            if create is not None:
                await create()
            self._app = ASGIMiddleware(_asgi_app, manager, mode_for=_mode_for)
        await self._app(scope, receive, send)


asgi = _LazyASGI()
