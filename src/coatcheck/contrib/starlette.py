"""Server-side sessions for Starlette, a drop-in for ``starlette.middleware.sessions``.

::

    from coatcheck.contrib.starlette import Session, SessionMiddleware

    app = Starlette(routes=..., middleware=[Middleware(SessionMiddleware, secret_key=KEY)])

takes Starlette's own arguments with their meaning and defaults, keeps ``request.session`` a
dict, and stores its content server-side (the embedded SQLite store by default, the file
``coatcheck-sessions.db`` in the working directory); the cookie carries only a signed id.
What differs, and every coatcheck option, is in ``docs/starlette.md``.

The middleware is :class:`coatcheck.asgi.SessionMiddleware` (same HTTP and websocket handling,
same 503 when the store is down) on a manager built from these arguments, plus what Starlette
users expect: ``request.session.clear()`` logs out (``destroy_when_emptied``), the store's
tables are created on first use, per-route modes with :func:`session_mode`, and
:func:`save_session` for a websocket that changes its session.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from starlette.datastructures import Secret
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import asgi
from .._async.manager import AsyncSessionManager
from .._sansio.config import ConcurrencyMode, ConflictPolicy, SessionConfig
from .._sansio.cookies import MAX_COOKIE_AGE, CookieConfig
from .._sansio.headers import ModeFor, SaveOutcome
from .._sansio.serializers import JSONSerializer, Serializer
from .._sansio.session import Session
from .._sansio.signing import MIN_KEY_BYTES
from ..errors import ConfigurationError, SessionError, StoreError
from ..stores.base import AsyncStore
from ._starlette_routes import find_routes, route_mode_for, session_mode

__all__ = [
    "BROWSER_SESSION_IDLE_TIMEOUT",
    "DEFAULT_STORE",
    "FROM_MAX_AGE",
    "MANAGER_KEY",
    "Session",
    "SessionMiddleware",
    "get_session",
    "save_session",
    "session_mode",
]

log = logging.getLogger("coatcheck")

#: The store used when none is given: an SQLite file in the working directory.
DEFAULT_STORE = "sqlite:///coatcheck-sessions.db"
#: The server-side idle timeout of a browser-session cookie (``max_age=None``): Starlette's
#: signed cookie then never expires, and a server-side session must end some time.
BROWSER_SESSION_IDLE_TIMEOUT = 14 * 24 * 3600
#: Where a websocket's scope holds the manager, for :func:`save_session`.
MANAGER_KEY = "coatcheck.manager"
# Shorter secret keys get the start-up warning (32 characters: 192 bits of urlsafe base64).
_MIN_SECRET = 32
_MISSING = (
    "no coatcheck session in this request: add "
    "Middleware(coatcheck.contrib.starlette.SessionMiddleware, secret_key=...) to the "
    "application's middleware"
)


class _Default(enum.Enum):
    FROM_MAX_AGE = "from max_age"


#: ``idle_timeout``'s default: ``max_age`` (or :data:`BROWSER_SESSION_IDLE_TIMEOUT`).
FROM_MAX_AGE = _Default.FROM_MAX_AGE


class SessionMiddleware(asgi.SessionMiddleware):
    """Starlette's ``SessionMiddleware`` arguments, coatcheck's server-side sessions.

    Starlette's arguments, same meaning and defaults:

    :param secret_key: signs the cookie (the id it carries); a sequence of keys, newest first,
        rotates them (the newest signs, all verify).
    :param session_cookie: the cookie's name.
    :param max_age: seconds the session lives: the cookie's ``Max-Age`` (at most 400 days, as
        browsers keep) and the server-side idle timeout. ``None``: a browser-session cookie
        (no ``Max-Age``), the session ending after :data:`BROWSER_SESSION_IDLE_TIMEOUT` idle on
        the server. ``0`` or less: expired at once (``Max-Age=0``, server-side timeout 0).
    :param path: the cookie's ``Path``.
    :param same_site: ``"lax"``, ``"strict"`` or ``"none"`` (which needs ``https_only``).
    :param https_only: the cookie's ``Secure`` attribute; off by default as in Starlette, and
        the one setting to turn on in production (a warning says so at start-up).
    :param domain: the cookie's ``Domain``.
    :param partitioned: the cookie's ``Partitioned`` attribute (needs ``https_only``).

    coatcheck's own, keyword only:

    :param store: a store or a store URL; by default :data:`DEFAULT_STORE`.
    :param concurrency: ``"merge"`` (default), ``"lock"`` or ``"none"``.
    :param mode_for: ``(method, path) -> mode or None`` per request; asked before the routes'
        :func:`session_mode` marks.
    :param id_header: carry the id in this header instead of a cookie (APIs).
    :param idle_timeout: the server-side idle timeout, overriding the one ``max_age`` gives.
    :param absolute_timeout: a hard cap from the session's creation (off by default, as
        Starlette has none).
    :param cache_control: the ``Cache-Control`` of responses that set the cookie.
    :param create_tables: create the store's tables on first use; by default when the store
        was given as a URL (or is the default), not for a store object.
    :param warn_insecure: log the start-up warning about ``https_only=False`` or a short
        ``secret_key``; by default unless running under pytest.
    :param clock: seconds since the epoch, for tests (:class:`coatcheck.testing.FrozenClock`).
    :param destroy_when_emptied: a stored session left empty by a request is destroyed
        (record and cookie deleted), so ``session.clear()`` logs out; True here.

    The other keywords are :class:`~coatcheck.SessionConfig`'s, with its defaults and meaning
    (``merge_conflict``, ``lock_timeout``, ``lock_wait``, ``access_resolution``,
    ``serializer``, ``max_payload_bytes``, ``bind_remote_addr``, ``bind_user_agent``,
    ``regenerate_every_request``, ``cleanup_probability``, ``id_bytes``). They are spelled
    out rather than taken as ``**settings``, which would hide the signature from mypy's
    check of ``Middleware(SessionMiddleware, ...)``.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | bytes | Secret | Sequence[str | bytes | Secret],
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 3600,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        store: AsyncStore | str | None = None,
        concurrency: ConcurrencyMode = "merge",
        mode_for: ModeFor | None = None,
        id_header: str | None = None,
        idle_timeout: float | Literal[_Default.FROM_MAX_AGE] | None = FROM_MAX_AGE,
        absolute_timeout: float | None = None,
        cache_control: str = "no-store",
        create_tables: bool | None = None,
        warn_insecure: bool | None = None,
        clock: Callable[[], float] | None = None,
        destroy_when_emptied: bool = True,
        merge_conflict: ConflictPolicy = "last-writer",
        lock_timeout: float = 30.0,
        lock_wait: float = 10.0,
        access_resolution: float = 60.0,
        serializer: Serializer | None = None,
        max_payload_bytes: int | None = 256 * 1024,
        bind_remote_addr: bool = False,
        bind_user_agent: bool = False,
        regenerate_every_request: bool = False,
        cleanup_probability: float = 0.0,
        id_bytes: int = 32,
    ) -> None:
        keys = _secret_keys(secret_key)
        # Browsers read SameSite in any case; CookieConfig checks the lower-case names.
        samesite = cast(Literal["lax", "strict", "none"], same_site.lower())
        for needs_secure, name in (
            (samesite == "none", "same_site='none'"),
            (partitioned, "partitioned=True"),
        ):
            if needs_secure and not https_only:
                raise ConfigurationError(
                    f"{name} needs https_only=True: browsers reject such a cookie without Secure"
                )
        cookie_max_age, idle = _lifetime(max_age)
        if idle_timeout is not FROM_MAX_AGE:
            idle = idle_timeout
        config = SessionConfig(
            idle_timeout=idle,
            absolute_timeout=absolute_timeout,
            secret_keys=[_signing_key(key) for key in keys],
            sign_cookie=True,
            concurrency=concurrency,
            cookie=CookieConfig(
                name=session_cookie,
                path=path,
                domain=domain,
                secure=https_only,
                httponly=True,
                samesite=samesite,
                partitioned=partitioned,
                max_age=cookie_max_age,
                cache_control=cache_control,
            ),
            serializer=JSONSerializer() if serializer is None else serializer,
            destroy_when_emptied=destroy_when_emptied,
            merge_conflict=merge_conflict,
            lock_timeout=lock_timeout,
            lock_wait=lock_wait,
            access_resolution=access_resolution,
            max_payload_bytes=max_payload_bytes,
            bind_remote_addr=bind_remote_addr,
            bind_user_agent=bind_user_agent,
            regenerate_every_request=regenerate_every_request,
            cleanup_probability=cleanup_probability,
            id_bytes=id_bytes,
        )
        manager = AsyncSessionManager(
            DEFAULT_STORE if store is None else store, config, clock=clock
        )
        super().__init__(app, manager, id_header=id_header, mode_for=mode_for)
        self._owns_store = store is None or isinstance(store, str)
        self._tables_pending = self._owns_store if create_tables is None else create_tables
        self._routes_pending = True
        if warn_insecure is None:
            # Tests build apps with throwaway keys over http; the warning is for deployments.
            warn_insecure = "PYTEST_CURRENT_TEST" not in os.environ
        if warn_insecure:
            _warn_insecure(https_only, keys[0])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._routes_pending or self._tables_pending:
            await self._setup()
        kind = scope["type"]
        if kind == "websocket":
            # Websockets save by hand (save_session), which needs the manager.
            scope = {**scope, MANAGER_KEY: self.manager}
        elif kind == "lifespan" and self._owns_store:
            send = self._closing(send)
        await super().__call__(scope, receive, send)

    def _closing(self, send: Send) -> Send:
        # A store this middleware built is closed at shutdown, before the server hears that
        # the application is done.
        async def closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.manager.aclose()
            await send(message)

        return closing

    async def _setup(self) -> None:
        # On the first connection (or lifespan startup): the router below is complete by then,
        # and an async store can only be reached from the event loop.
        if self._routes_pending:
            self._routes_pending = False
            routes = find_routes(self.app)
            if routes is not None:
                self.mode_for = route_mode_for(routes, self.mode_for)
        if self._tables_pending:
            create: Callable[[], Any] | None = getattr(self.manager.store, "create_tables", None)
            if create is None:
                self._tables_pending = False
                return
            try:
                await create()
            except StoreError as exc:
                # Tried again on the next request; this one's open meets the same failure
                # and is answered 503 by the middleware.
                log.warning("%s; could not create the session tables, will retry", exc)
                return
            self._tables_pending = False


def get_session(connection: HTTPConnection) -> Session:
    """The request's (or websocket's) coatcheck session, typed as such.

    ``request.session`` is the same object, typed ``dict`` by Starlette. RuntimeError naming
    the middleware when it is not installed.
    """
    session = connection.scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError(_MISSING)
    return session


async def save_session(connection: HTTPConnection) -> SaveOutcome:
    """Save a websocket's session now (HTTP requests are saved by the middleware).

    A websocket carries no response headers, so nothing that needs a new cookie can be saved
    on it: a session that began new, or one asked to :meth:`~coatcheck.Session.regenerate`,
    raises :class:`~coatcheck.errors.SessionError`. The returned outcome's headers cannot be
    sent; they are returned for inspection.
    """
    manager = connection.scope.get(MANAGER_KEY)
    if not isinstance(manager, AsyncSessionManager):
        raise RuntimeError(
            "save_session() is for websockets under coatcheck.contrib.starlette."
            "SessionMiddleware; HTTP requests are saved by the middleware itself"
        )
    session = get_session(connection)
    if session.is_new or session.regenerate_requested:
        raise SessionError(
            "a websocket cannot save a new or regenerated session: no response carries its "
            "cookie (change it in an HTTP request)"
        )
    return await manager.save(session)


def _secret_keys(secret_key: object) -> list[str | bytes]:
    items = [secret_key] if isinstance(secret_key, (str, bytes, Secret)) else secret_key
    if not isinstance(items, Sequence):
        raise ConfigurationError("secret_key must be a string, or a sequence of them newest first")
    keys = [item if isinstance(item, (str, bytes)) else str(item) for item in items]
    if not keys or not all(keys):
        raise ConfigurationError("secret_key must be a non-empty string")
    return keys


def _signing_key(key: str | bytes) -> str | bytes:
    """``key`` as coatcheck's signer takes it: unchanged when it is long enough, otherwise
    stretched to 32 bytes (Starlette accepts any length; the start-up warning names a short
    key, and stretching adds no strength). The stretch is fixed, so rotation still works."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    if len(raw) >= MIN_KEY_BYTES:
        return key
    return hashlib.sha256(b"coatcheck.contrib.starlette short secret_key\0" + raw).digest()


def _lifetime(max_age: int | None) -> tuple[int | None, float | None]:
    """Starlette's ``max_age`` as (the cookie's Max-Age, the server-side idle timeout)."""
    if max_age is None:
        return None, BROWSER_SESSION_IDLE_TIMEOUT
    if max_age <= 0:
        return 0, 0
    return min(int(max_age), MAX_COOKIE_AGE), max_age


def _warn_insecure(https_only: bool, newest_key: str | bytes) -> None:
    weak = []
    if not https_only:
        weak.append("the session cookie lacks Secure, so it also travels over plain http")
    if len(newest_key) < _MIN_SECRET:
        weak.append(f"secret_key is shorter than {_MIN_SECRET} characters")
    if weak:
        log.warning(
            "coatcheck.contrib.starlette.SessionMiddleware: %s. Set https_only=True behind "
            "https, with a long random secret_key (warn_insecure=False silences this in "
            "development)",
            "; ".join(weak),
        )
