"""Server-side sessions for Litestar on coatcheck, in the place of ``ServerSideSessionConfig``.

::

    from coatcheck.contrib.litestar import CoatcheckSessionConfig

    sessions = CoatcheckSessionConfig(store="redis://127.0.0.1:6379/0", secure=True)
    app = Litestar(route_handlers=[...], middleware=[sessions.middleware],
                   on_shutdown=[sessions.aclose])

takes ``ServerSideSessionConfig``'s fields with their meaning and defaults (``key``,
``max_age``, the cookie attributes, ``exclude``, ``exclude_opt_key``, ``scopes``, ...) and
keeps Litestar's API: ``request.session`` is a dict (a :class:`~coatcheck.Session`),
``request.set_session(data)`` replaces its content, ``request.clear_session()`` destroys the
stored session and deletes the cookie, ``request.get_session_id()`` is the session's id. The
sessions live in a coatcheck store (the embedded SQLite store by default, the file
``coatcheck-sessions.db`` in the working directory), not in a Litestar ``Store``; only an
unknown, expired or forged id gives a fresh session, and a request changes only the keys it
touched (``merge`` concurrency) unless its route asks for ``"lock"``. What differs from
Litestar's backend, and every coatcheck field, is in ``docs/litestar.md``.

:func:`regenerate` gives the session a new id at the end of the request (call it on log in).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.exceptions import ImproperlyConfiguredException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.session.base import (
    BaseBackendConfig,
    SessionMiddleware,
)
from litestar.types import Empty, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from .._sansio.headers import (
    log_refusal,
    log_release_failure,
    refusal,
)
from .._sansio.session import Session
from ..errors import SessionLocked, StoreError
from ._litestar_backend import SESSION_KEY, CoatcheckSessionBackend, Connection
from ._litestar_config import DEFAULT_STORE, FROM_MAX_AGE, Settings

__all__ = [
    "DEFAULT_STORE",
    "FROM_MAX_AGE",
    "SESSION_KEY",
    "CoatcheckSessionBackend",
    "CoatcheckSessionConfig",
    "CoatcheckSessionMiddleware",
    "get_session",
    "regenerate",
]

# "Try Again Later" (RFC 6455 registry): the websocket twin of a 503.
_WS_TRY_AGAIN_LATER = 1013
_SAVE_FAILED = b"Internal Server Error: the session could not be saved.\n"

log = logging.getLogger("coatcheck")


@dataclass
class CoatcheckSessionConfig(Settings, BaseBackendConfig[CoatcheckSessionBackend]):
    """``ServerSideSessionConfig``'s fields, coatcheck's sessions behind them.

    Litestar's fields, same meaning and defaults:

    :param key: the cookie's name (1 to 256 characters).
    :param max_age: seconds the session lives: the cookie's ``Max-Age`` (at most 400 days, as
        browsers keep) and the server-side idle timeout, sliding on every request that uses
        the session. At least 1.
    :param scopes: the connection types the middleware serves (HTTP and websocket).
    :param path: the cookie's ``Path``.
    :param domain: the cookie's ``Domain``.
    :param secure: the cookie's ``Secure`` attribute; off by default as in Litestar, and the
        one setting to turn on in production.
    :param httponly: the cookie's ``HttpOnly`` attribute.
    :param samesite: ``"lax"``, ``"strict"`` or ``"none"`` (which needs ``secure``).
    :param exclude: path patterns the middleware skips (no ``request.session`` there).
    :param exclude_opt_key: a route ``opt`` key that skips the middleware when true.
    :param session_id_bytes: random bytes in a session id (coatcheck takes 16 at least).
    :param renew_on_access: coatcheck renews on every HTTP request in any case (the idle
        timeout slides); with True a websocket handshake renews the session too.

    coatcheck's own:

    :param store: a coatcheck store or store URL (not a Litestar store name); by default
        :data:`DEFAULT_STORE`. A store built from a URL is closed by :meth:`aclose`.
    :param secret: a key, or keys newest first, to sign the cookie with (a forged id is then
        refused without a store lookup); unsigned by default, as Litestar's.
    :param concurrency: ``"merge"`` (default), ``"lock"`` or ``"none"``.
    :param mode_opt_key: the route ``opt`` key naming a route's mode (``"lock"``,
        ``"merge"``, ``"none"``, ``"read-only"``): ``@post("/pay", session_mode="lock")``.
    :param idle_timeout: the server-side idle timeout, by default ``max_age``.
    :param absolute_timeout: a hard cap from the session's creation (off, as in Litestar).
    :param destroy_when_emptied: a stored session a request leaves empty is destroyed, so
        ``request.session.clear()`` logs out as ``clear_session()`` does; True here.
    :param create_tables: create the store's tables on first use; by default when the store
        is given as a URL (or is the default), not for a store object.
    :param clock: seconds since the epoch, for tests (:class:`coatcheck.testing.FrozenClock`).

    The other fields are :class:`~coatcheck.SessionConfig`'s, with its defaults and meaning
    (``partitioned``, ``cache_control``, ``serializer``, ``merge_conflict``, ``lock_timeout``,
    ``lock_wait``, ``access_resolution``, ``max_payload_bytes``, ``bind_remote_addr``,
    ``bind_user_agent``, ``regenerate_every_request``, ``cleanup_probability``). The
    manager is built from the fields by the first request; later changes are not seen.
    """

    _backend_class = CoatcheckSessionBackend

    @property
    def middleware(self) -> DefineMiddleware:
        """The middleware to put in a ``middleware`` list of the application (or a layer)."""
        return DefineMiddleware(
            CoatcheckSessionMiddleware, backend=self._backend_class(config=self)
        )


class CoatcheckSessionMiddleware(SessionMiddleware[CoatcheckSessionBackend]):
    """Litestar's ``SessionMiddleware`` with coatcheck's request rules: a store failure is
    answered 503 (``Retry-After: 1``, no ``Set-Cookie``), a 5xx response saves nothing, a
    request that sends no response releases its lock, and a websocket's session is read from
    its handshake and never saved (Litestar saves none either)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = Connection(scope, receive=receive, send=send)
        backend = self.backend
        try:
            session = await backend.open(connection)
        except (StoreError, SessionLocked) as exc:
            log_refusal(exc)
            if scope["type"] == ScopeType.HTTP:
                await _send_unavailable(send, exc)
            else:
                await _refuse_websocket(scope, receive, send, exc)
            return
        cast(MutableMapping[str, Any], scope)[SESSION_KEY] = session
        scope["session"] = session
        ScopeState.from_scope(scope).session_id = session.id
        if scope["type"] != ScopeType.HTTP:
            if backend.config.renew_on_access and not session.is_new and not session.read_only:
                # Saving an unchanged session only touches it (its headers cannot be sent).
                await backend.config.manager.save(session)
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(backend, connection, session, send)
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            if not exchange.settled:
                # No response started (the app raised or sent nothing): nothing is saved.
                await exchange.settle()


class _Exchange:
    """One HTTP request's session and what became of its save."""

    __slots__ = ("backend", "connection", "failed", "session", "settled", "upstream")

    def __init__(
        self,
        backend: CoatcheckSessionBackend,
        connection: Connection,
        session: Session,
        upstream: Send,
    ) -> None:
        self.backend = backend
        self.connection = connection
        self.session = session
        self.upstream = upstream
        self.failed = False
        #: True once the session was saved or abandoned: its lock, if any, is released.
        self.settled = False

    async def send(self, message: Message) -> None:
        if self.failed:
            # After a 503 nothing of the application's response may follow it.
            return
        if message["type"] != "http.response.start":
            await self.upstream(message)
            return
        if message["status"] >= 500:
            await self.settle()
            await self.upstream(message)
            return
        self.settled = True  # a save releases the lock whatever happens
        scope = self.connection.scope
        try:
            await self.backend.store_in_message(scope.get("session"), message, self.connection)
        except StoreError as exc:
            log_refusal(exc)
            self.failed = True
            await _send_unavailable(self.upstream, exc)
            return
        except Exception:
            # The save refused the session (a value the serializer cannot store, a write in a
            # read-only route, a merge conflict under "raise"). Litestar's error handling
            # cannot answer any more (the response counts as started), so the 500 is sent
            # here, and the error logged with its traceback.
            log.exception("the session could not be saved; answered 500")
            self.failed = True
            await _send_plain(self.upstream, 500, _SAVE_FAILED)
            return
        await self.upstream(message)

    async def settle(self) -> None:
        """Drop an unsaved session's changes and release its lock, if it holds one."""
        if self.settled:
            return
        self.settled = True
        try:
            await self.backend.config.manager.abandon(self.session)
        except StoreError as exc:
            log_release_failure(exc)


def get_session(connection: Connection) -> Session:
    """The request's (or websocket's) coatcheck session, typed as such.

    ``request.session`` is the same object until ``set_session``/``clear_session`` replace
    it. ImproperlyConfiguredException, as Litestar's, when the middleware is not installed.
    """
    session = connection.scope.get(SESSION_KEY)
    if not isinstance(session, Session):
        raise ImproperlyConfiguredException(
            "no coatcheck session in this connection: add CoatcheckSessionConfig(...).middleware "
            "to the application's middleware"
        )
    return session


def regenerate(connection: Connection) -> None:
    """Give the session a new id when the response is sent, keeping its data (and what this
    request sets); the old id stops working. Call it on log in and on any privilege change, to
    defeat session fixation.

    The new id is drawn by the save: until the response starts ``request.get_session_id()``
    is None, and then the new id.
    """
    get_session(connection).regenerate()
    ScopeState.from_scope(connection.scope).session_id = Empty


async def _send_unavailable(send: Send, exc: StoreError | SessionLocked) -> None:
    headers, body = refusal(exc)
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": 503, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_plain(send: Send, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _refuse_websocket(
    scope: Scope, receive: Receive, send: Send, exc: StoreError | SessionLocked
) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    extensions = scope.get("extensions") or {}
    if "websocket.http.response" in extensions:
        headers, body = refusal(exc)
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        await send({"type": "websocket.http.response.start", "status": 503, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": _WS_TRY_AGAIN_LATER, "reason": None})
