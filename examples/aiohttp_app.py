"""A small aiohttp app on coatcheck's aiohttp-session storage: a visit counter, log in (a new
session, a new id), "remember me" (a lifetime of that session's own), log out; sessions in
the default store, the SQLite file ``coatcheck-sessions.db`` in the working directory.

Run it::

    pip install "coatcheck[aiohttp]"
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))') \\
        python examples/aiohttp_app.py

then open http://127.0.0.1:8080/. Served over plain http, the cookie cannot be ``Secure``;
behind https set ``SECURE=1`` (``secure=True``), the one setting that hardens the defaults.
``SESSION_STORE=redis://127.0.0.1:6379/0`` keeps the sessions in Redis instead.
"""

from __future__ import annotations

import html
import os
import secrets

from aiohttp import web

from coatcheck.contrib.aiohttp import CoatcheckStorage, get_session, new_session, setup

PAGE = """<!doctype html>
<title>coatcheck on aiohttp</title>
<p>{greeting} This is visit {visits} of this session.</p>
{form}
"""
LOGIN = """<form method="post" action="/login">
  <input name="name" placeholder="your name" required>
  <label><input type="checkbox" name="remember"> remember me for 30 days</label>
  <button>Log in</button></form>"""
LOGOUT = """<form method="post" action="/logout"><button>Log out</button></form>"""
REMEMBER = 30 * 24 * 3600


async def home(request: web.Request) -> web.Response:
    session = await get_session(request)
    session["visits"] = session.get("visits", 0) + 1
    user = session.get("user")
    greeting = "Not logged in." if user is None else f"Logged in as <b>{html.escape(user)}</b>."
    page = PAGE.format(greeting=greeting, visits=session["visits"], form=LOGOUT if user else LOGIN)
    return web.Response(text=page, content_type="text/html")


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    if name:
        visits = (await get_session(request)).get("visits", 0)
        # A new session on every change of privilege: the old id stops working (fixation).
        session = await new_session(request)
        session["user"] = name
        session["visits"] = visits
        if form.get("remember"):
            session.max_age = REMEMBER  # this session's cookie and idle timeout only
    raise web.HTTPSeeOther("/")


async def logout(request: web.Request) -> web.Response:
    (await get_session(request)).invalidate()  # the stored session and the cookie go
    raise web.HTTPSeeOther("/")


async def whoami(request: web.Request) -> web.Response:
    session = await get_session(request)
    return web.json_response({"user": session.get("user"), "visits": session.get("visits", 0)})


def create_app() -> web.Application:
    """The app; its settings come from the environment."""
    app = web.Application()
    storage = CoatcheckStorage(
        os.environ.get("SESSION_STORE"),  # None: the default SQLite file
        secret_key=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        secure=os.environ.get("SECURE") == "1",
        max_age=24 * 3600,
    )
    # aiohttp_session.setup(app, storage) works too; this one also creates the tables at
    # start-up, closes the store at cleanup and releases a lock a failed request held.
    setup(app, storage)
    app.router.add_get("/", home)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/whoami", whoami)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
