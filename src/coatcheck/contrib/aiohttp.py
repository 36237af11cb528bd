"""Server-side sessions for aiohttp: a storage for aiohttp-session on coatcheck's async manager.

::

    import aiohttp_session
    from coatcheck.contrib.aiohttp import CoatcheckStorage

    app = web.Application()
    aiohttp_session.setup(app, CoatcheckStorage("redis://127.0.0.1:6379/0", secure=True))

``aiohttp_session.get_session(request)`` then gives an :class:`AiohttpSession`: an
aiohttp-session ``Session`` and a coatcheck :class:`~coatcheck.Session` at once, whose data
lives in the store (the embedded SQLite store by default, ``coatcheck-sessions.db`` in the
working directory); the cookie carries only the session id, signed when a ``secret_key`` is
given. ``new_session(request)`` rotates: the request's stored session is destroyed and the
new, empty one gets a new id. ``session.invalidate()`` destroys the stored session and
deletes the cookie; ``session.max_age = N`` gives that one session a lifetime of its own.
An unknown, expired or forged id is never adopted: the request gets a fresh session.

:func:`setup` does what ``aiohttp_session.setup`` does and also releases a session's lock
when the handler raises or streams its response (``lock`` mode needs it), creates the
store's tables at start-up and closes the store at cleanup. Everything else is in
``docs/aiohttp.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aiohttp_session
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .._async.manager import AsyncSessionManager
from .._sansio.config import ConcurrencyMode, SessionConfig
from .._sansio.cookies import CookieConfig, set_cookie_header
from .._sansio.headers import (
    ModeFor,
    SaveOutcome,
    interrupted_outcome,
    log_refusal,
    log_release_failure,
    request_mode,
)
from .._sansio.serializers import JSONSerializer, Serializer
from ..errors import ConfigurationError, SessionInterrupted, SessionLocked, StoreError
from ..stores.base import AsyncStore
from ._aiohttp_helpers import add_headers, secret_keys, unavailable
from ._aiohttp_helpers import warn_insecure as _warn_insecure
from ._aiohttp_session import BROWSER_SESSION_IDLE_TIMEOUT, AiohttpSession, lifetime_for

__all__ = [
    "BROWSER_SESSION_IDLE_TIMEOUT",
    "DEFAULT_STORE",
    "AiohttpSession",
    "CoatcheckStorage",
    "get_session",
    "new_session",
    "setup",
]

log = logging.getLogger("coatcheck")

#: The store used when none is given: an SQLite file in the working directory.
DEFAULT_STORE = "sqlite:///coatcheck-sessions.db"
# Request keys: the session the storage opened for the request, and the mark of setup()'s
# middleware (which releases what the request left unsaved). aiohttp 3.14 warns about plain
# str keys (NotAppKeyWarning) and has typed ones; earlier versions take only str.
_LOADED: Any
_GUARDED: Any
try:
    from aiohttp.web import RequestKey
except ImportError:  # aiohttp before 3.14
    _LOADED, _GUARDED = "coatcheck.aiohttp.loaded", "coatcheck.aiohttp.guarded"
else:
    _LOADED = RequestKey("coatcheck.aiohttp.loaded", AiohttpSession)
    _GUARDED = RequestKey("coatcheck.aiohttp.guarded", bool)
_FROM_MAX_AGE: Any = object()


class CoatcheckStorage(aiohttp_session.AbstractStorage):
    """An aiohttp-session storage that keeps sessions in a coatcheck store.

    aiohttp-session's cookie arguments, same meaning and defaults:

    :param cookie_name: the cookie's name (``AIOHTTP_SESSION``).
    :param domain: the cookie's ``Domain``.
    :param max_age: seconds a session lives: the cookie's ``Max-Age`` (at most 400 days, as
        browsers keep) and the server-side idle timeout, slid by every request that uses the
        session. ``None`` (default): a browser-session cookie, the session ending after
        :data:`BROWSER_SESSION_IDLE_TIMEOUT` idle on the server. ``0`` or less: expired at once.
    :param path: the cookie's ``Path``.
    :param secure: the cookie's ``Secure`` attribute; off by default as in aiohttp-session,
        and the one setting to turn on in production (a warning says so at start-up).
    :param httponly: the cookie's ``HttpOnly`` attribute.
    :param samesite: ``"lax"`` (default here; aiohttp-session sends none, which browsers
        read as Lax), ``"strict"``, ``"none"`` (needs ``secure``) or None.

    aiohttp-session's ``encoder``/``decoder`` have no meaning here: ``serializer`` encodes the
    stored record (JSON by default).

    coatcheck's own, keyword only:

    :param store: a store or a store URL (positional too); by default :data:`DEFAULT_STORE`.
    :param secret_key: signs the cookie (the id it carries), so a forged id is refused
        without a store lookup; a sequence of keys, newest first, rotates them. Without one
        the cookie carries the bare 256-bit id.
    :param concurrency: ``"merge"`` (default), ``"lock"`` (needs :func:`setup`) or ``"none"``.
    :param mode_for: ``(method, path) -> mode or None`` per request (``"read-only"`` too).
    :param idle_timeout: the server-side idle timeout, overriding the one ``max_age`` gives.
    :param absolute_timeout: a hard cap from the session's creation (off by default).
    :param cache_control: the ``Cache-Control`` of responses that set the cookie.
    :param create_tables: create the store's tables on first use; by default when the store
        was given as a URL (or is the default), not for a store object.
    :param warn_insecure: log the start-up warning about ``secure`` off or a short
        ``secret_key``; by default unless running under pytest.
    :param clock: seconds since the epoch, for tests (:class:`coatcheck.testing.FrozenClock`).
    :param destroy_when_emptied: a stored session left empty by a request is destroyed
        (record and cookie deleted), as aiohttp-session deletes the cookie of an empty
        session; True here.
    :param settings: the other :class:`~coatcheck.SessionConfig` fields, with their defaults
        and meaning (``merge_conflict``, ``lock_timeout``, ``lock_wait``,
        ``access_resolution``, ``max_payload_bytes``, ``bind_remote_addr``,
        ``bind_user_agent``, ``regenerate_every_request``, ``cleanup_probability``,
        ``id_bytes``).
    """

    def __init__(
        self,
        store: AsyncStore | str | None = None,
        *,
        cookie_name: str = "AIOHTTP_SESSION",
        domain: str | None = None,
        max_age: int | None = None,
        path: str = "/",
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = "lax",
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        concurrency: ConcurrencyMode = "merge",
        mode_for: ModeFor | None = None,
        idle_timeout: float | None = _FROM_MAX_AGE,
        absolute_timeout: float | None = None,
        cache_control: str = "no-store",
        create_tables: bool | None = None,
        warn_insecure: bool | None = None,
        clock: Callable[[], float] | None = None,
        destroy_when_emptied: bool = True,
        serializer: Serializer | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(
            cookie_name=cookie_name,
            domain=domain,
            max_age=max_age,
            path=path,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )
        keys = secret_keys(secret_key)
        cookie_max_age, idle = lifetime_for(max_age)
        lowered = None if samesite is None else samesite.lower()
        if lowered not in (None, "lax", "strict", "none"):
            raise ConfigurationError(
                f"samesite must be 'lax', 'strict', 'none' or None, not {samesite!r}"
            )
        config = SessionConfig(
            idle_timeout=idle if idle_timeout is _FROM_MAX_AGE else idle_timeout,
            absolute_timeout=absolute_timeout,
            secret_keys=keys,
            sign_cookie=bool(keys),
            concurrency=concurrency,
            cookie=CookieConfig(
                name=cookie_name,
                path=path,
                domain=domain,
                secure=bool(secure),
                httponly=httponly,
                samesite=cast(Any, lowered),
                max_age=cookie_max_age,
                cache_control=cache_control,
            ),
            serializer=JSONSerializer() if serializer is None else serializer,
            destroy_when_emptied=destroy_when_emptied,
            **settings,
        )
        #: The manager behind the storage (its store is ``manager.store``).
        self.manager = AsyncSessionManager(
            DEFAULT_STORE if store is None else store,
            config,
            clock=clock,
            session_class=AiohttpSession,
        )
        self.mode_for = mode_for
        self._cookie = config.cookie
        self._resolution = config.access_resolution
        self._agent = config.bind_user_agent
        self._owns_store = store is None or isinstance(store, str)
        self._tables_pending = self._owns_store if create_tables is None else create_tables
        if warn_insecure is None:
            # Tests build apps with throwaway settings over http; the warning is for deployments.
            warn_insecure = "PYTEST_CURRENT_TEST" not in os.environ
        if warn_insecure:
            _warn_insecure(bool(secure), keys)

    # -- aiohttp-session's storage API -----------------------------------------------------

    async def load_session(self, request: web.Request) -> AiohttpSession:
        """The request's session: the stored one its cookie names, else a fresh one."""
        concurrency, read_only = (
            (None, False)
            if self.mode_for is None
            else request_mode(self.mode_for(request.method, request.path))
        )
        if (
            not read_only
            and (concurrency or self.manager.config.concurrency) == "lock"
            and _GUARDED not in request
        ):
            raise ConfigurationError(
                "lock mode needs coatcheck.contrib.aiohttp.setup(app, storage) in place of "
                "aiohttp_session.setup, so a request that fails still releases its lock"
            )
        session = await self._open(request, concurrency, read_only)
        request[_LOADED] = session
        return session

    async def new_session(self) -> AiohttpSession:
        """A new, empty session that replaces the request's: at save, the stored session the
        request came with is destroyed, and this one gets a new id (rotation)."""
        if self._tables_pending:
            await self._create_tables()
        session = cast(AiohttpSession, await self.manager.open(None))
        session.bind(self.max_age, self._resolution, replaces=True)
        return session

    async def save_session(
        self,
        request: web.Request,
        response: web.StreamResponse,
        session: aiohttp_session.Session,
    ) -> None:
        """Store what the request changed and put the cookie (and Vary, Cache-Control) on
        ``response``; a failing store answers 503 instead."""
        if not isinstance(session, AiohttpSession):
            raise TypeError(f"CoatcheckStorage saves its own sessions, not {session!r}")
        session.settled = True
        wrote = session.changes.content and not session.destroyed
        headers = (await self._save(session)).headers
        if wrote and session.ticket and not any(name == "Set-Cookie" for name, _ in headers):
            # aiohttp-session sets the cookie on every save that writes; coatcheck alone
            # would not re-send an unchanged browser-session cookie.
            max_age, _ = lifetime_for(session.max_age)
            cookie = set_cookie_header(self._cookie, session.ticket, max_age=max_age)
            headers = [("Set-Cookie", cookie), ("Cache-Control", self._cookie.cache_control)]
            headers.append(("Vary", "Cookie"))
        if session.replaces:
            previous = request.get(_LOADED)
            if previous is None:
                # new_session() without get_session(): the request's session is found now.
                previous = await self._open(request, None, False)
            if previous is not session and not previous.settled:
                previous.settled = True
                if previous.key is not None:
                    previous.destroy()
                old = (await self._save(previous)).headers
                if not any(name == "Set-Cookie" for name, _ in headers):
                    # The new session stored nothing: the old cookie's deletion goes out.
                    headers = [*old, *(pair for pair in headers if pair not in old)]
        add_headers(response, headers)

    # -- coatcheck's additions -------------------------------------------------------------

    def middleware(self) -> Middleware:
        """The middleware :func:`setup` installs outside aiohttp-session's: it abandons a
        session the request left unsaved (the handler raised, or streamed its response),
        which releases its lock."""
        manager = self.manager

        @web.middleware
        async def release_unsaved(request: web.Request, handler: Handler) -> web.StreamResponse:
            request[_GUARDED] = True
            try:
                return await handler(request)
            finally:
                for session in (request.get(_LOADED), request.get(aiohttp_session.SESSION_KEY)):
                    if isinstance(session, AiohttpSession) and not session.settled:
                        session.settled = True
                        try:
                            await manager.abandon(session)
                        except StoreError as exc:
                            log_release_failure(exc)

        return release_unsaved

    async def startup(self, app: web.Application | None = None) -> None:
        """Create the store's tables now, when due (an ``on_startup`` handler)."""
        if self._tables_pending:
            await self._create_tables()

    async def aclose(self, app: web.Application | None = None) -> None:
        """Close the store if this storage built it from a URL (an ``on_cleanup`` handler)."""
        if self._owns_store:
            await self.manager.aclose()

    # -- internals -------------------------------------------------------------------------

    async def _open(
        self, request: web.Request, concurrency: ConcurrencyMode | None, read_only: bool
    ) -> AiohttpSession:
        if self._tables_pending:
            await self._create_tables()
        cookies = request.headers.getall("Cookie", ())
        try:
            opened = await self.manager.open_from_cookie_header(
                "; ".join(cookies) if cookies else None,
                remote_addr=request.remote,
                user_agent=request.headers.get("User-Agent") if self._agent else None,
                concurrency=concurrency,
                read_only=read_only,
            )
        except (StoreError, SessionLocked) as exc:
            log_refusal(exc)
            raise unavailable(exc) from exc
        session = cast(AiohttpSession, opened)
        session.bind(self.max_age, self._resolution, replaces=False)
        return session

    async def _save(self, session: AiohttpSession) -> SaveOutcome:
        try:
            return await self.manager.save(session)
        except SessionInterrupted:
            # Destroyed by a concurrent request: the client forgets its ticket.
            return interrupted_outcome(self.manager.config.cookie)
        except StoreError as exc:
            log_refusal(exc)
            raise unavailable(exc) from exc

    async def _create_tables(self) -> None:
        create: Callable[[], Awaitable[Any]] | None = getattr(
            self.manager.store, "create_tables", None
        )
        if create is not None:
            try:
                await create()
            except StoreError as exc:
                # Tried again on the next request, whose open meets the same failure (a 503).
                log.warning("%s; could not create the session tables, will retry", exc)
                return
        self._tables_pending = False


def setup(app: web.Application, storage: CoatcheckStorage) -> None:
    """``aiohttp_session.setup(app, storage)``, plus the storage's lock release
    (:meth:`CoatcheckStorage.middleware`), its tables created at start-up and its store
    closed at cleanup."""
    app.middlewares.append(storage.middleware())
    aiohttp_session.setup(app, storage)
    app.on_startup.append(storage.startup)
    app.on_cleanup.append(storage.aclose)


async def get_session(request: web.Request) -> AiohttpSession:
    """``aiohttp_session.get_session``, typed as coatcheck's session."""
    session = await aiohttp_session.get_session(request)
    if not isinstance(session, AiohttpSession):
        raise RuntimeError("the aiohttp-session storage of this app is not CoatcheckStorage")
    return session


async def new_session(request: web.Request) -> AiohttpSession:
    """``aiohttp_session.new_session`` (rotation: the request's session dies), typed."""
    session = await aiohttp_session.new_session(request)
    if not isinstance(session, AiohttpSession):
        raise RuntimeError("the aiohttp-session storage of this app is not CoatcheckStorage")
    return session
