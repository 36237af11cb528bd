"""Pure ASGI middleware: opens the session before the application runs and saves it before the
``http.response.start`` message leaves.

A thin shell, like :mod:`coatcheck.wsgi`: the rules live in :mod:`coatcheck._sansio.core`
(via :class:`~coatcheck.AsyncSessionManager`) and in :mod:`coatcheck._sansio.headers`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ._async.manager import AsyncSessionManager
from ._sansio.headers import (
    ModeFor,
    check_id_header,
    check_values,
    interrupted_outcome,
    log_refusal,
    log_release_failure,
    merge_headers,
    refusal,
    request_mode,
    response_headers,
)
from ._sansio.session import Session
from .errors import SessionInterrupted, SessionLocked, StoreError

__all__ = ["SessionMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Vary and Cache-Control come from the configuration, the same on every response: encoded
# once (a Set-Cookie differs each time and is never kept here).
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}
# "Try Again Later" (RFC 6455 registry): the websocket twin of a 503.
_WS_TRY_AGAIN_LATER = 1013


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class SessionMiddleware:
    """Give every HTTP and websocket connection a :class:`~coatcheck.Session` in
    ``scope[scope_key]`` (``scope["session"]`` by default, so Starlette's ``request.session``
    works).

    HTTP: the session is saved when the application sends ``http.response.start``, before the
    status and headers leave. A status of 500 or above saves nothing; otherwise the manager
    saves what changed and its headers are merged into the response exactly as in
    :class:`coatcheck.wsgi.SessionMiddleware` (which documents the error handling: a failing
    store gives a plain 503 with ``Retry-After: 1`` and no ``Set-Cookie``, whose body says
    whether the request's changes may have been saved).

    Websocket: the session is opened from the handshake request and put in the scope, and
    nothing is saved automatically: a connection has no response headers to carry a new
    cookie and may outlive many changes. An application that changes the session over a
    websocket calls ``await manager.save(session)`` itself. A websocket never holds the session
    lock (in ``lock`` mode its session is opened in ``merge`` mode), since a connection that
    lasts for hours would block every other request of the session. When the store fails at
    the handshake, the connection is refused (a 503 where the server supports the websocket
    denial response, otherwise a close with code 1013, "try again later").

    Other scopes (``lifespan``, ...) pass through untouched. ``id_header`` works as in the
    WSGI middleware.
    """

    def __init__(
        self,
        app: ASGIApp,
        manager: AsyncSessionManager,
        *,
        scope_key: str = "session",
        id_header: str | None = None,
        mode_for: ModeFor | None = None,
    ) -> None:
        self.mode_for = mode_for
        self.app = app
        self.manager = manager
        self.scope_key = scope_key
        self.id_header = check_id_header(id_header)
        self._id_name = None if id_header is None else id_header.lower().encode("latin-1")
        # The request headers the middleware reads (ASGI header names are lower-case); the
        # User-Agent only matters to a session bound to it.
        wanted = {b"cookie"}
        if manager.config.bind_user_agent:
            wanted.add(b"user-agent")
        if self._id_name is not None:
            wanted.add(self._id_name)
        self._wanted = frozenset(wanted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        manager = self.manager
        cookies: list[bytes] = []
        idents: list[bytes] = []
        user_agent: str | None = None
        id_name = self._id_name
        wanted = self._wanted
        for name, value in scope["headers"]:
            if name not in wanted:
                continue  # one set lookup per header instead of up to three comparisons
            if name == b"cookie":
                cookies.append(value)
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
            else:
                idents.append(value)
        client = scope.get("client")
        remote_addr = client[0] if client else None
        concurrency, read_only = (
            (None, False)
            if self.mode_for is None
            else request_mode(self.mode_for(scope.get("method", "GET"), scope.get("path", "")))
        )
        # A websocket may stay open for hours: it never holds the session lock meanwhile.
        if kind == "websocket" and (concurrency or manager.config.concurrency) == "lock":
            concurrency = "merge"
        try:
            if id_name is None:
                # HTTP/2 may split the Cookie header; RFC 9113 8.2.3 says how to join it.
                cookie = b"; ".join(cookies).decode("latin-1") if cookies else None
                session = await manager.open_from_cookie_header(
                    cookie,
                    remote_addr=remote_addr,
                    user_agent=user_agent,
                    concurrency=concurrency,
                    read_only=read_only,
                )
            else:
                # Joined as a WSGI server would; two different values then fail validation.
                ident = b", ".join(idents).decode("latin-1") if idents else None
                session = await manager.open(
                    ident or None,
                    remote_addr=remote_addr,
                    user_agent=user_agent,
                    concurrency=concurrency,
                    read_only=read_only,
                )
        except (StoreError, SessionLocked) as exc:
            log_refusal(exc)
            if kind == "http":
                await _send_unavailable(send, exc)
            else:
                await _refuse_websocket(scope, receive, send, exc)
            return
        # ASGI: copy the scope before changing it, so nothing leaks to outer layers.
        scope = {**scope, self.scope_key: session}
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, session, send)
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            if not exchange.settled:
                # No response started (the app raised or sent nothing): nothing is saved.
                await exchange.settle()


class _Exchange:
    """One HTTP request's session and what became of its save."""

    __slots__ = ("failed", "middleware", "session", "settled", "started", "upstream")

    def __init__(self, middleware: SessionMiddleware, session: Session, upstream: Send) -> None:
        self.middleware = middleware
        self.session = session
        self.upstream = upstream
        self.started = False
        self.failed = False
        #: True once the session was saved or abandoned: its lock, if any, is released.
        self.settled = False

    async def send(self, message: Message) -> None:
        if self.started:
            # After a 503 nothing of the application's response may follow it.
            if not self.failed or not message["type"].startswith("http.response."):
                await self.upstream(message)
            return
        if message["type"] != "http.response.start":
            await self.upstream(message)
            return
        self.started = True
        if message["status"] >= 500:
            await self.settle()
            await self.upstream(message)
            return
        # The save is inlined here rather than a method of its own: this runs once per
        # request and is the middleware's hot path.
        middleware = self.middleware
        manager = middleware.manager
        self.settled = True  # a save releases the lock whatever happens
        try:
            outcome = await manager.save(self.session)
        except SessionInterrupted:
            outcome = interrupted_outcome(manager.config.cookie)
        except StoreError as exc:
            log_refusal(exc)
            self.failed = True
            await _send_unavailable(self.upstream, exc)
            return
        extra = response_headers(outcome, middleware.id_header)
        if extra:
            message = {**message, "headers": _merge(message.get("headers", ()), extra)}
        await self.upstream(message)

    async def settle(self) -> None:
        """Drop an unsaved session's changes and release its lock, if it holds one."""
        if self.settled:
            return
        self.settled = True
        try:
            await self.middleware.manager.abandon(self.session)
        except StoreError as exc:
            log_release_failure(exc)


def _merge(
    raw: Iterable[tuple[bytes, bytes]], extra: list[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """:func:`~coatcheck._sansio.headers.merge_headers` for ASGI's byte pairs.

    The application's headers keep their names as sent, unless a Vary or Cache-Control of its
    own must be merged (those responses are rebuilt with lower-case names); the session's own
    headers go out lower-case, as ASGI asks.
    """
    headers = list(raw)
    for raw_name, _ in headers:
        # Only Vary (4 letters) and Cache-Control (13) merge; the length test spares a lower()
        # per header on the hot path.
        if len(raw_name) in (4, 13) and raw_name.lower() in (b"vary", b"cache-control"):
            decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
            return _encode(merge_headers(decoded, extra))
    # The usual response (hot path): nothing to merge with, so the session's headers go last,
    # as merge_headers would put them, without decoding and encoding every header.
    for pair in extra:
        encoded = _ENCODED.get(pair)
        if encoded is None:
            check_values((pair,))  # a pair found in _ENCODED passed it before
            name, value = pair
            encoded = (name.lower().encode("latin-1"), value.encode("latin-1"))
            if (name == "Vary" or name == "Cache-Control") and len(_ENCODED) < 16:
                _ENCODED[pair] = encoded
        headers.append(encoded)
    return headers


def _raw_refusal(exc: StoreError | SessionLocked) -> tuple[list[tuple[bytes, bytes]], bytes]:
    # The 503 for exc (headers.refusal), its headers encoded as ASGI sends them.
    headers, body = refusal(exc)
    return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers], body


async def _send_unavailable(send: Send, exc: StoreError | SessionLocked) -> None:
    raw, body = _raw_refusal(exc)
    await send({"type": "http.response.start", "status": 503, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(
    scope: Scope, receive: Receive, send: Send, exc: StoreError | SessionLocked
) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        raw, body = _raw_refusal(exc)
        await send({"type": "websocket.http.response.start", "status": 503, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": _WS_TRY_AGAIN_LATER})
