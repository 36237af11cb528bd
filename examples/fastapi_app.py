"""A small FastAPI app on coatcheck: a visit counter, log in (a new session id), log out, a
websocket that reads the session, and a checkout route that holds the session lock; sessions
in the default store, the SQLite file ``coatcheck-sessions.db`` in the working directory.

Run it::

    pip install "coatcheck[fastapi]" uvicorn
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))') \\
        uvicorn --app-dir examples fastapi_app:app

then try http://127.0.0.1:8000/docs. Served over plain http, the cookie cannot be ``Secure``;
behind https set ``HTTPS_ONLY=1`` (``https_only=True``), the one setting that hardens the
defaults.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from coatcheck.contrib.fastapi import SessionDep, SessionMiddleware, session_mode


class Login(BaseModel):
    name: str


def create_app(secret_key: str | None = None, **options: Any) -> FastAPI:
    """The app; ``options`` go to the middleware (``store=``, ``https_only=``, ...)."""
    app = FastAPI(title="coatcheck on FastAPI")

    @app.get("/")
    def counter(session: SessionDep) -> dict[str, Any]:
        session["visits"] = session.get("visits", 0) + 1
        return {"user": session.get("user"), "visits": session["visits"]}

    @app.post("/login")
    async def login(body: Login, session: SessionDep) -> dict[str, str]:
        session.regenerate()  # a new id when privileges change: no session fixation
        session["user"] = body.name
        return {"user": body.name}

    @app.post("/logout")
    def logout(session: SessionDep) -> dict[str, None]:
        session.clear()  # empties the session: the record and the cookie are deleted
        return {"user": None}

    @app.post("/checkout")
    @session_mode("lock")  # no other request of this session runs until this one is saved
    def checkout(session: SessionDep) -> dict[str, Any]:
        orders = session.get("orders", 0) + 1
        session["orders"] = orders
        return {"orders": orders}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"user": session.get("user"), "visits": session.get("visits", 0)})
        await websocket.close()

    key = secret_key or os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    options.setdefault("https_only", os.environ.get("HTTPS_ONLY") == "1")
    app.add_middleware(SessionMiddleware, secret_key=key, **options)
    return app


app = create_app()
