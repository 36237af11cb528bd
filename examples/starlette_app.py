"""A small Starlette app on coatcheck: a visit counter, log in (a new session id), log out,
and a websocket that reads the session; sessions in the default store, the SQLite file
``coatcheck-sessions.db`` in the working directory.

Run it::

    pip install "coatcheck[starlette]" uvicorn
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))') \\
        uvicorn --app-dir examples starlette_app:app

then open http://127.0.0.1:8000/. Served over plain http, the cookie cannot be ``Secure``;
behind https set ``HTTPS_ONLY=1`` (``https_only=True``), the one setting that hardens the
defaults.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from coatcheck.contrib.starlette import SessionMiddleware, get_session

PAGE = """<!doctype html>
<title>coatcheck on Starlette</title>
<p>{greeting} This is visit {visits} of this session.</p>
{form}
<p id="ws"></p>
<script>
  const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
  ws.onmessage = (e) => document.getElementById("ws").textContent = "websocket: " + e.data;
</script>
"""
LOGIN = """<form method="post" action="/login">
  <input name="name" placeholder="your name" required> <button>Log in</button></form>"""
LOGOUT = """<form method="post" action="/logout"><button>Log out</button></form>"""


def home(request: Request) -> Response:
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    user = session.get("user")
    greeting = "Not logged in." if user is None else f"Logged in as <b>{_escape(user)}</b>."
    page = PAGE.format(greeting=greeting, visits=session["visits"], form=LOGOUT if user else LOGIN)
    return HTMLResponse(page)


async def login(request: Request) -> Response:
    # The form is url-encoded; parse_qs reads it without python-multipart.
    name = parse_qs((await request.body()).decode()).get("name", [""])[0].strip()
    if name:
        session = get_session(request)  # request.session, typed as coatcheck's Session
        session.regenerate()  # a new id when privileges change: no session fixation
        session["user"] = name
    return RedirectResponse("/", status_code=303)


def logout(request: Request) -> Response:
    request.session.clear()  # empties the session: the record and the cookie are deleted
    return RedirectResponse("/", status_code=303)


def whoami(request: Request) -> Response:
    return JSONResponse(
        {"user": request.session.get("user"), "visits": request.session.get("visits", 0)}
    )


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    session = websocket.session
    await websocket.send_json({"user": session.get("user"), "visits": session.get("visits", 0)})
    await websocket.close()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def create_app(secret_key: str | None = None, **options: Any) -> Starlette:
    """The app; ``options`` go to the middleware (``store=``, ``https_only=``, ...)."""
    key = secret_key or os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    options.setdefault("https_only", os.environ.get("HTTPS_ONLY") == "1")
    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/whoami", whoami),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=key, **options)],
    )


app = create_app()
