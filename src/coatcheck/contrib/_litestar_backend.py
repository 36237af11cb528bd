"""The session backend of :mod:`coatcheck.contrib.litestar`: Litestar's
``BaseSessionBackend`` interface on coatcheck's :class:`~coatcheck.AsyncSessionManager`, and
how what the application left in ``scope["session"]`` becomes the coatcheck session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware.session.base import BaseSessionBackend
from litestar.serialization import decode_json, encode_json
from litestar.types import Empty, Message, Scope, ScopeSession
from litestar.utils import get_serializer_from_scope
from litestar.utils.scope.state import ScopeState

from .._sansio.headers import (
    SaveOutcome,
    check_values,
    interrupted_outcome,
    merge_headers,
    request_mode,
)
from .._sansio.session import Session
from ..errors import SessionInterrupted

if TYPE_CHECKING:
    # Named in a string below, the class being defined after this one in that module.
    from .litestar import CoatcheckSessionConfig  # noqa: F401

__all__ = ["SESSION_KEY", "CoatcheckSessionBackend", "Connection"]

#: Where the scope keeps the request's coatcheck session, whatever ``request.set_session``
#: or ``request.clear_session`` later put in ``scope["session"]``.
SESSION_KEY = "coatcheck.session"

Connection = ASGIConnection[Any, Any, Any, Any]


class CoatcheckSessionBackend(BaseSessionBackend["CoatcheckSessionConfig"]):
    """Litestar's session backend interface on the config's
    :class:`~coatcheck.AsyncSessionManager`.

    :class:`CoatcheckSessionMiddleware` opens each request's session with :meth:`open` and
    saves it with :meth:`store_in_message`; :meth:`load_from_connection` and
    :meth:`get_session_id` serve Litestar's ``TestClient`` (``get_session_data`` and
    ``set_session_data``) and anything else written against ``BaseSessionBackend``.
    """

    async def open(self, connection: Connection) -> Session:
        """The connection's session, from its cookie; a new one is given its id now, so that
        ``request.get_session_id()`` knows it during the request (it is stored only if it
        holds something at the end)."""
        config = self.config
        manager = await config.ready_manager()
        scope = connection.scope
        concurrency, read_only = request_mode(_route_mode(scope, config.mode_opt_key))
        # A websocket may stay open for hours: it never holds the session lock meanwhile.
        if scope["type"] == ScopeType.WEBSOCKET and (
            (concurrency or manager.config.concurrency) == "lock"
        ):
            concurrency = "merge"
        client = scope.get("client")
        remote_addr = client[0] if client else None
        user_agent = connection.headers.get("user-agent") if config.bind_user_agent else None
        cookies = [value for name, value in scope["headers"] if name == b"cookie"]
        if cookies:
            # HTTP/2 may split the Cookie header; RFC 9113 8.2.3 says how to join it. The raw
            # header lets coatcheck refuse two different session cookies (cookie tossing).
            session = await manager.open_from_cookie_header(
                b"; ".join(cookies).decode("latin-1"),
                remote_addr=remote_addr,
                user_agent=user_agent,
                concurrency=concurrency,
                read_only=read_only,
            )
        else:
            # Litestar's TestClient hands its cookies over in the connection state instead.
            session = await manager.open(
                connection.cookies.get(config.key) or None,
                remote_addr=remote_addr,
                user_agent=user_agent,
                concurrency=concurrency,
                read_only=read_only,
            )
        if session.is_new and not read_only:
            session.ensure_id()
        return session

    def get_session_id(self, connection: Connection) -> str | None:
        """The id of the session :meth:`open` gave the connection; None before (or without)
        one."""
        session = connection.scope.get(SESSION_KEY)
        return session.id if isinstance(session, Session) else None

    async def load_from_connection(self, connection: Connection) -> dict[str, Any]:
        """A copy of the data of the connection's stored session, read only (nothing locked,
        touched or saved); ``{}`` without one. The middleware uses :meth:`open` instead."""
        manager = await self.config.ready_manager()
        client = connection.scope.get("client")
        session = await manager.open(
            connection.cookies.get(self.config.key) or None,
            remote_addr=client[0] if client else None,
            user_agent=connection.headers.get("user-agent"),
            read_only=True,
        )
        return dict(session)

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: Connection
    ) -> None:
        """Save the connection's session as ``scope_session`` left it, adding the headers the
        save asks for (``Set-Cookie``, ``Vary``, ``Cache-Control``) to ``message``.

        ``scope_session`` is the session itself, a replacement from ``request.set_session``
        (its content becomes the session's, the id stays), or ``Empty`` after
        ``request.clear_session()`` (the stored session is destroyed and the cookie deleted).
        A connection the middleware did not open (Litestar's ``TestClient.set_session_data``)
        has its session opened here first. A store failure raises
        :class:`~coatcheck.errors.StoreError` (the middleware answers 503).
        """
        scope = connection.scope
        session = scope.get(SESSION_KEY)
        if not isinstance(session, Session):
            session = await self.open(connection)
        manager = self.config.manager
        _adopt(session, scope_session, scope)
        if session.is_new and not session.has_info() and not session.destroyed:
            # A new session left empty is not stored (Litestar would store it): its id, given
            # at open, is forgotten, and the response sets no cookie.
            outcome = SaveOutcome([("Vary", "Cookie")] if session.accessed else [])
        else:
            try:
                outcome = await manager.save(session)
            except SessionInterrupted:
                # A concurrent request destroyed it: the client forgets its cookie, as after
                # clear_session().
                outcome = interrupted_outcome(manager.config.cookie)
        # What request.get_session_id() says from now on (in after_response hooks, say).
        gone = outcome.cleared or session.destroyed
        ScopeState.from_scope(scope).session_id = Empty if gone else session.id
        _add_headers(message, outcome.headers)


def _route_mode(scope: Scope, opt_key: str) -> str | None:
    # Litestar routes before the middleware runs, so the route's opt is known here.
    handler = scope.get("route_handler")
    opt: Mapping[str, Any] | None = getattr(handler, "opt", None)
    mode = None if opt is None else opt.get(opt_key)
    return mode if isinstance(mode, str) else None


def _adopt(session: Session, value: object, scope: Scope) -> None:
    """Make ``session`` what the application left in ``scope["session"]``."""
    if value is session:
        return
    if value is Empty or value is None:
        session.destroy()
        return
    if not isinstance(value, Mapping):
        # A data container (a dataclass, a pydantic or msgspec model): the dict Litestar's own
        # backend would store for it.
        value = decode_json(encode_json(value, get_serializer_from_scope(scope)))
        if not isinstance(value, dict):
            raise TypeError(f"set_session() takes a dict or a data container, not {value!r}")
    data = dict(value)
    # Replaced whole, as Litestar does; the id stays (regenerate() gives a new one).
    session.clear()
    session.update(data)


def _add_headers(message: Message, extra: list[tuple[str, str]]) -> None:
    """Merge the save's headers into the start message, in place: Litestar's TestClient reads
    the list it handed over."""
    if not extra:
        return
    raw: list[tuple[bytes, bytes]] = list(message.get("headers") or ())  # type: ignore[call-overload]
    # Only Vary (4 letters) and Cache-Control (13) merge; the length test spares a lower()
    # per header. The usual response has neither: the session's headers go last, as
    # merge_headers would put them, without decoding and encoding every header.
    if any(len(name) in (4, 13) and name.lower() in (b"vary", b"cache-control") for name, _ in raw):
        decoded = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
        pairs = merge_headers(decoded, extra)
        raw = []
    else:
        check_values(extra)
        pairs = extra
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    headers = message.get("headers")
    if isinstance(headers, list):
        headers[:] = raw
    else:
        message["headers"] = raw  # type: ignore[typeddict-unknown-key]
