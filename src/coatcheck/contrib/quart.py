"""Quart integration: ``quart.session`` is a server-side coatcheck session, on an
:class:`~coatcheck.AsyncSessionManager`.

::

    from quart import Quart, session
    from coatcheck.contrib.quart import Session

    app = Quart(__name__)
    app.config.update(SECRET_KEY="...", SESSION_COOKIE_SECURE=True)
    Session(app)

The same settings as the Flask integration (:mod:`coatcheck.contrib.flask`, docs/flask.md), read
and decided by the same code (:mod:`coatcheck.contrib._flask_config`); only the store calls
here are awaited. A websocket shares its handshake's session: changes made while it runs are
saved when it ends, but no cookie can be sent any more, so a new or rotated session's ticket
is lost (a warning says so).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flask.sessions import SessionMixin
from quart import Quart, has_request_context, has_websocket_context
from quart import session as _session_proxy
from quart.sessions import SessionInterface
from quart.wrappers import BaseRequestWebsocket, Response
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from .._async.manager import AsyncSessionManager
from .._sansio.config import SessionConfig
from .._sansio.headers import RequestMode, interrupted_outcome, log_release_failure, request_mode
from ..errors import SessionInterrupted, SessionLocked, StoreError
from ..stores import async_store_from_url
from ..stores.base import AsyncStore
from ._flask_cli import command_group
from ._flask_config import (
    Managers,
    ModeFor,
    Options,
    RouteModes,
    permanent_lifetime,
    read_options,
    session_mode,
    startup_warning,
)
from ._flask_responses import apply_outcome, refuse, response_headers
from ._flask_session import FlaskSession, RefusedSession, TaggedJSONSerializer

__all__ = [
    "CoatcheckSessionInterface",
    "FlaskSession",
    "Session",
    "TaggedJSONSerializer",
    "session_mode",
]

log = logging.getLogger("coatcheck")


class Session:
    """The Quart extension: ``Session(app)``, or ``Session()`` then ``init_app(app)``.

    :param clock: seconds since the epoch, for tests that move time.
    :param mode_for: ``mode_for(method, path)`` picks a request's concurrency mode, for
        routes that :func:`session_mode` does not mark.
    """

    def __init__(
        self,
        app: Quart | None = None,
        *,
        clock: Callable[[], float] | None = None,
        mode_for: ModeFor | None = None,
    ) -> None:
        self.clock = clock
        self.mode_for = mode_for
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> CoatcheckSessionInterface:
        """Install coatcheck as ``app.session_interface``, with its 503 guard, its lock release,
        the ``quart coatcheck`` commands and the store's closing after serving."""
        interface = CoatcheckSessionInterface(
            read_options(app.config, app.instance_path), clock=self.clock, mode_for=self.mode_for
        )
        # Quart annotates session_interface as its cookie interface, not its base class.
        app.session_interface = interface  # type: ignore[assignment]
        app.extensions["coatcheck"] = interface
        # First, so no other before_request function runs on a request refused with a 503.
        app.before_request_funcs.setdefault(None, []).insert(0, interface.refuse_unavailable)
        app.before_websocket_funcs.setdefault(None, []).insert(0, interface.refuse_unavailable)
        if interface.options.fields["concurrency"] == "lock" or self.mode_for is not None:
            interface.release_locks(app)  # else once a view is marked session_mode("lock")
        app.after_serving(interface.aclose)
        app.cli.add_command(command_group(lambda: interface.options.store))
        warning = startup_warning(app.config)
        if warning is not None and not (app.debug or app.testing):
            log.warning("%s", warning)
        return interface


class CoatcheckSessionInterface(SessionInterface):
    """Quart's ``SessionInterface`` on an :class:`~coatcheck.AsyncSessionManager`."""

    def __init__(
        self,
        options: Options,
        *,
        clock: Callable[[], float] | None = None,
        mode_for: ModeFor | None = None,
    ) -> None:
        self.options = options
        store = options.store
        self.store: AsyncStore = async_store_from_url(store) if isinstance(store, str) else store
        self.mode_for = mode_for
        self.managers: Managers[AsyncSessionManager] = Managers(options, self._manager)
        self._clock = clock
        self._modes = RouteModes()
        self._releasing = False
        # Created by the first request (see the Flask interface for why not at start-up).
        create = getattr(self.store, "create_tables", None) if options.create_tables else None
        self._create_tables: Callable[[], Awaitable[None]] | None = create

    def _manager(self, config: SessionConfig) -> AsyncSessionManager:
        return AsyncSessionManager(
            self.store, config, clock=self._clock, session_class=FlaskSession
        )

    async def aclose(self) -> None:
        """Close the store (run by ``after_serving``)."""
        await self.store.aclose()

    # -- Quart's SessionInterface ----------------------------------------------------------

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> SessionMixin | None:
        config = app.config
        manager = self.managers.for_config(config)
        if manager is None:
            return None  # no SECRET_KEY: Quart's NullSession, as with its own interface
        concurrency, read_only = request_mode(self._mode(app, request))
        # session_transaction() opens the session a second time inside a request context
        # that opened it already: the first one's lock must go, or the second would wait.
        earlier = _current_session()
        if isinstance(earlier, FlaskSession) and not earlier.coatcheck_settled:
            await self.release(None)
        headers = request.headers
        cookies = headers.getlist("Cookie")
        # HTTP/2 may send the cookies in several fields (RFC 9113 section 8.2.3).
        cookie_header = cookies[0] if len(cookies) == 1 else "; ".join(cookies) or None
        try:
            if self._create_tables is not None:
                await self._create_tables()
                self._create_tables = None
            session = await manager.open_from_cookie_header(
                cookie_header,
                remote_addr=request.remote_addr,
                user_agent=headers.get("User-Agent"),
                concurrency=concurrency,
                read_only=read_only,
            )
        except (StoreError, SessionLocked) as exc:
            return RefusedSession(exc)
        if not isinstance(session, FlaskSession):
            raise TypeError("the manager must build FlaskSession sessions")
        absolute = self.options.permanent_absolute_timeout
        session.coatcheck_lifetime = lambda: permanent_lifetime(config, absolute)
        session.coatcheck_manager = manager
        session.coatcheck_settled = False
        session.coatcheck_cookie = cookie_header
        return session

    async def save_session(
        self,
        app: Quart,
        session: SessionMixin,
        response: Response | WerkzeugResponse | None,
    ) -> None:
        if not isinstance(session, FlaskSession):
            return
        manager: AsyncSessionManager = session.coatcheck_manager
        session.coatcheck_settled = True
        if response is not None and response.status_code >= 500:
            await _abandon(manager, session)
            return
        refresh = bool(app.config.get("SESSION_REFRESH_EACH_REQUEST", True)) and session.permanent
        try:
            outcome = await manager.save(session, refresh_cookie=refresh and response is not None)
        except SessionInterrupted:
            outcome = interrupted_outcome(manager.config.cookie)
        except (StoreError, SessionLocked) as exc:
            if response is None:
                refuse(exc)  # logged; a websocket has no response left to replace
            else:
                _replace(response, exc)
            return
        if response is not None:
            apply_outcome(
                response.headers,
                response_headers(outcome, session, manager.core, session.coatcheck_cookie),
            )
        elif outcome.ticket is not None:
            log.warning(
                "a websocket changed its session's id (a new or rotated session); the new "
                "cookie cannot be sent, so the client keeps its old one"
            )

    # -- hooks installed by init_app -------------------------------------------------------

    async def refuse_unavailable(self) -> Response | None:
        """A ``before_request``/``before_websocket`` function: the 503 for a request whose
        session could not be opened."""
        session = _current_session()
        if type(session) is not RefusedSession:
            return None
        status, headers, body = refuse(session.error)
        return Response(body, status, Headers(headers))

    async def release(self, exc: BaseException | None) -> None:
        """A ``teardown_request``/``teardown_websocket`` function: release the lock of a
        session that was never saved."""
        session = _current_session()
        if (
            isinstance(session, FlaskSession)
            and not session.coatcheck_settled
            and session.lock_token is not None
        ):
            session.coatcheck_settled = True
            await _abandon(session.coatcheck_manager, session)

    def release_locks(self, app: Quart) -> None:
        """Install :meth:`release` as a ``teardown_request`` and ``teardown_websocket``
        function, once a request may hold a lock."""
        if not self._releasing:
            self._releasing = True
            # Not app.teardown_request(): this may run at the first request, after set-up.
            app.teardown_request_funcs.setdefault(None, []).append(self.release)
            app.teardown_websocket_funcs.setdefault(None, []).append(self.release)

    def _mode(self, app: Quart, request: BaseRequestWebsocket) -> RequestMode | None:
        modes = self._modes.of(app.view_functions)
        if modes:
            if not self._releasing and "lock" in modes.values():
                self.release_locks(app)
            adapter = app.create_url_adapter(request)
            if adapter is not None:
                try:
                    endpoint, _ = adapter.match()
                except HTTPException:  # not found, a redirect: the view does not run
                    endpoint = None
                mode = modes.get(endpoint) if isinstance(endpoint, str) else None
                if mode is not None:
                    return mode
        if self.mode_for is None:
            return None
        return self.mode_for(request.method, request.path)


def _current_session() -> Any:
    # Through Quart's public names: its context variables moved in 0.23 (one app context
    # holds the request's and the websocket's session there).
    if not (has_request_context() or has_websocket_context()):
        return None
    proxy: Any = _session_proxy
    return proxy._get_current_object()


async def _abandon(manager: AsyncSessionManager, session: FlaskSession) -> None:
    try:
        await manager.abandon(session)
    except StoreError as exc:
        log_release_failure(exc)


def _replace(response: Response | WerkzeugResponse, exc: StoreError | SessionLocked) -> None:
    """Turn the application's response into the 503 (no Set-Cookie)."""
    status, headers, body = refuse(exc)
    response.status_code = status
    response.headers.clear()
    response.headers.extend(headers)
    response.set_data(body)
