"""A small Litestar app on coatcheck: a visit counter, log in (a new session id), log out,
a checkout that holds the session lock, and a websocket that reads the session; sessions in
the default store, the SQLite file ``coatcheck-sessions.db`` in the working directory.

Run it::

    pip install "coatcheck[litestar]" uvicorn
    uvicorn --app-dir examples litestar_app:app

then open http://127.0.0.1:8000/. Served over plain http, the cookie cannot be ``Secure``;
behind https set ``SECURE=1`` (``secure=True``), the one setting that hardens the defaults.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from litestar import Litestar, MediaType, Request, WebSocket, get, post, websocket
from litestar.response import Redirect

from coatcheck.contrib.litestar import CoatcheckSessionConfig, get_session, regenerate

PAGE = """<!doctype html>
<title>coatcheck on Litestar</title>
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

AnyRequest = Request[Any, Any, Any]


@get("/", media_type=MediaType.HTML)
async def home(request: AnyRequest) -> str:
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    user = session.get("user")
    greeting = "Not logged in." if user is None else f"Logged in as <b>{_escape(user)}</b>."
    return PAGE.format(greeting=greeting, visits=session["visits"], form=LOGOUT if user else LOGIN)


@post("/login")
async def login(request: AnyRequest) -> Redirect:
    # The form is url-encoded; parse_qs reads it without a body model.
    name = parse_qs((await request.body()).decode()).get("name", [""])[0].strip()
    if name:
        regenerate(request)  # a new id when privileges change: no session fixation
        request.session["user"] = name
    return Redirect("/", status_code=303)


@post("/logout")
async def logout(request: AnyRequest) -> Redirect:
    request.clear_session()  # the stored session is destroyed, the cookie deleted
    return Redirect("/", status_code=303)


@get("/whoami")
async def whoami(request: AnyRequest) -> dict[str, Any]:
    return {
        "user": request.session.get("user"),
        "visits": request.session.get("visits", 0),
        "session_id": request.get_session_id(),
    }


# The session lock is held from load to save: two checkouts of one session run one at a time.
@post("/checkout", session_mode="lock")
async def checkout(request: AnyRequest) -> dict[str, Any]:
    session = get_session(request)  # request.session, typed as coatcheck's Session
    session["orders"] = session.get("orders", 0) + 1
    return {"orders": session["orders"], "mode": session.concurrency}


@websocket("/ws")
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    session = socket.session
    await socket.send_json({"user": session.get("user"), "visits": session.get("visits", 0)})
    await socket.close()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def create_app(**options: Any) -> Litestar:
    """The app; ``options`` are :class:`CoatcheckSessionConfig` fields (``store=``, ...)."""
    options.setdefault("secure", os.environ.get("SECURE") == "1")
    sessions = CoatcheckSessionConfig(**options)
    return Litestar(
        route_handlers=[home, login, logout, whoami, checkout, ws],
        middleware=[sessions.middleware],
        on_shutdown=[sessions.aclose],  # closes the store the config built
    )


app = create_app()
