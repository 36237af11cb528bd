"""A small Quart app on coatcheck: a visit counter, log in (a new session id), log out, flash
messages; sessions in an SQLite file in the app's instance folder (the default store).

Run it::

    pip install "coatcheck[quart]"
    QUART_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))') \\
        quart --app examples/quart_app.py run

then open http://127.0.0.1:5000/. ``quart --app examples/quart_app.py coatcheck stats``
counts its sessions.
"""

from __future__ import annotations

import secrets
from typing import Any

from quart import Quart, flash, redirect, render_template_string, request, session, url_for
from werkzeug.wrappers import Response

from coatcheck.contrib.quart import Session, session_mode

PAGE = """<!doctype html>
<title>coatcheck on Quart</title>
{% for category, message in get_flashed_messages(with_categories=true) %}
  <p class="{{ category }}">{{ message }}</p>
{% endfor %}
<p>{% if user %}Logged in as <b>{{ user }}</b>.{% else %}Not logged in.{% endif %}
   This is visit {{ visits }} of this session.</p>
{% if user %}
  <form method="post" action="{{ url_for('logout') }}"><button>Log out</button></form>
{% else %}
  <form method="post" action="{{ url_for('login') }}">
    <input name="name" placeholder="your name" required> <button>Log in</button>
  </form>
{% endif %}
"""


def create_app(instance_path: str | None = None, **config: Any) -> Quart:
    """The app; ``instance_path`` is where the SQLite file goes (Quart's default: ./instance)."""
    app = Quart(__name__, instance_path=instance_path)
    # A random key per start logs everyone out on restart: set QUART_SECRET_KEY to keep them.
    app.config.update(SECRET_KEY=secrets.token_hex(32))
    app.config.from_prefixed_env("QUART")
    app.config.update(config)
    Session(app)

    @app.get("/")
    async def index() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return await render_template_string(
            PAGE, user=session.get("user"), visits=session["visits"]
        )

    @app.post("/login")
    async def login() -> Response:
        name = (await request.form).get("name", "").strip()[:40]
        if not name:
            await flash("Say who you are.", "error")
            return redirect(url_for("index"))
        session.regenerate()  # type: ignore[attr-defined]  # a new id on log in
        session["user"] = name
        await flash(f"Welcome, {name}.")
        return redirect(url_for("index"))

    @app.post("/logout")
    async def logout() -> Response:
        session.clear()
        session.regenerate()  # type: ignore[attr-defined]  # the logged-in id dies
        await flash("Logged out.")
        return redirect(url_for("index"))

    @app.get("/whoami")
    @session_mode("read-only")
    async def whoami() -> str:
        return str(session.get("user") or "")

    return app


if __name__ == "__main__":
    create_app().run()
