"""The session as a FastAPI dependency, on :mod:`coatcheck.contrib.starlette`'s middleware.

::

    from fastapi import FastAPI
    from coatcheck.contrib.fastapi import SessionDep, SessionMiddleware, session_mode

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=KEY)

    @app.get("/")
    def counter(session: SessionDep) -> dict[str, int]:
        session["visits"] = session.get("visits", 0) + 1
        return {"visits": session["visits"]}

A route's concurrency mode is chosen before the route runs (the session is opened, and in
``lock`` mode locked, before any dependency is resolved), so it is not a dependency: mark the
endpoint with :func:`session_mode`, which the middleware reads from the router.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from .._sansio.session import Session
from .starlette import SessionMiddleware, save_session, session_mode
from .starlette import get_session as _get_session

__all__ = [
    "Session",
    "SessionDep",
    "SessionMiddleware",
    "get_session",
    "save_session",
    "session_mode",
]


async def get_session(connection: HTTPConnection) -> Session:
    """The request's (or websocket's) session; RuntimeError naming the middleware when it is
    not installed.

    A coroutine, so FastAPI resolves it on the event loop instead of sending a plain function
    to its thread pool; sync and async routes alike receive the session.
    """
    return _get_session(connection)


#: ``def route(session: SessionDep)``: the request's :class:`~coatcheck.Session`, typed.
SessionDep = Annotated[Session, Depends(get_session)]
