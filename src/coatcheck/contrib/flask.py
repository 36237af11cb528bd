"""Flask integration: ``flask.session`` is a server-side coatcheck session.

::

    from flask import Flask, session
    from coatcheck.contrib.flask import Session

    app = Flask(__name__)
    app.config.update(SECRET_KEY="...", SESSION_COOKIE_SECURE=True)
    Session(app)      # sessions in an SQLite file in app.instance_path, unless configured

Settings come from ``app.config``: Flask's own keys where they mean the same thing, read on
every request as Flask reads them, and ``SESSION_COATCHECK_*`` keys for coatcheck's own
settings, read by ``init_app`` (see docs/flask.md for every key). The decisions live in
:mod:`coatcheck.contrib._flask_config`, shared with the Quart integration; this module only
makes the store calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response
from flask.globals import _cv_request, request_ctx
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException

from .._sansio.config import SessionConfig
from .._sansio.headers import (
    RequestMode,
    interrupted_outcome,
    log_release_failure,
    request_mode,
)
from .._sync.manager import SessionManager
from ..errors import SessionInterrupted, SessionLocked, StoreError
from ..stores import store_from_url
from ..stores.base import Store
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
    """The Flask extension: ``Session(app)``, or ``Session()`` then ``init_app(app)``.

    :param clock: seconds since the epoch, for tests that move time
        (:class:`coatcheck.testing.FrozenClock`).
    :param mode_for: ``mode_for(method, path)`` picks a request's concurrency mode (``"lock"``,
        ``"merge"``, ``"none"``, ``"read-only"``, or None for the configured one), for routes
        that :func:`session_mode` does not mark.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        clock: Callable[[], float] | None = None,
        mode_for: ModeFor | None = None,
    ) -> None:
        self.clock = clock
        self.mode_for = mode_for
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> CoatcheckSessionInterface:
        """Install coatcheck as ``app.session_interface``, with its 503 guard, its lock release
        and the ``flask coatcheck`` commands; returns the interface."""
        interface = CoatcheckSessionInterface(
            read_options(app.config, app.instance_path), clock=self.clock, mode_for=self.mode_for
        )
        app.session_interface = interface
        app.extensions["coatcheck"] = interface
        # First, so no other before_request function runs on a request refused with a 503.
        app.before_request_funcs.setdefault(None, []).insert(0, interface.refuse_unavailable)
        if interface.options.fields["concurrency"] == "lock" or self.mode_for is not None:
            interface.release_locks(app)  # else once a view is marked session_mode("lock")
        app.cli.add_command(command_group(lambda: interface.options.store))
        warning = startup_warning(app.config)
        if warning is not None and not (app.debug or app.testing):
            log.warning("%s", warning)
        return interface


class CoatcheckSessionInterface(SessionInterface):
    """Flask's ``SessionInterface`` on a :class:`~coatcheck.SessionManager` (see the module)."""

    def __init__(
        self,
        options: Options,
        *,
        clock: Callable[[], float] | None = None,
        mode_for: ModeFor | None = None,
    ) -> None:
        self.options = options
        store = options.store
        self.store: Store = store_from_url(store) if isinstance(store, str) else store
        self.mode_for = mode_for
        self.managers: Managers[SessionManager] = Managers(options, self._manager)
        self._clock = clock
        self._modes = RouteModes()
        self._releasing = False
        # Tables are created by the first request rather than here, so an app whose store is
        # down at start-up still starts (and answers 503 until the store is back).
        create = getattr(self.store, "create_tables", None) if options.create_tables else None
        self._create_tables: Callable[[], None] | None = create

    def _manager(self, config: SessionConfig) -> SessionManager:
        return SessionManager(self.store, config, clock=self._clock, session_class=FlaskSession)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    # -- Flask's SessionInterface ----------------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        config = app.config
        manager = self.managers.for_config(config)
        if manager is None:
            return None  # no SECRET_KEY: Flask's NullSession, as with its own interface
        environ = request.environ
        concurrency, read_only = request_mode(self._mode(app, environ))
        # session_transaction() opens the session a second time inside a request context
        # that opened it already: the first one's lock must go, or the second would wait for
        # it (in a plain request the context has no session yet).
        earlier = _current_session()
        if isinstance(earlier, FlaskSession) and not earlier.coatcheck_settled:
            self.release(None)
        try:
            if self._create_tables is not None:
                self._create_tables()
                self._create_tables = None
            session = manager.open_from_cookie_header(
                environ.get("HTTP_COOKIE"),
                remote_addr=environ.get("REMOTE_ADDR"),
                user_agent=environ.get("HTTP_USER_AGENT"),
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
        session.coatcheck_cookie = environ.get("HTTP_COOKIE")
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        manager: SessionManager = session.coatcheck_manager
        session.coatcheck_settled = True
        if response.status_code >= 500:
            _abandon(manager, session)
            return
        refresh = bool(app.config.get("SESSION_REFRESH_EACH_REQUEST", True)) and session.permanent
        try:
            outcome = manager.save(session, refresh_cookie=refresh)
        except SessionInterrupted:
            outcome = interrupted_outcome(manager.config.cookie)
        except (StoreError, SessionLocked) as exc:
            _replace(response, exc)
            return
        apply_outcome(
            response.headers,
            response_headers(outcome, session, manager.core, session.coatcheck_cookie),
        )

    # -- request hooks installed by init_app -----------------------------------------------

    def refuse_unavailable(self) -> Response | None:
        """A ``before_request`` function: the 503 for a request whose session could not be
        opened (the store failed, or the session lock was held too long)."""
        session = _current_session()
        if type(session) is not RefusedSession:
            return None
        status, headers, body = refuse(session.error)
        response: Response = request_ctx.app.response_class(body, status, headers)
        return response

    def release(self, exc: BaseException | None) -> None:
        """A ``teardown_request`` function: release the lock of a session that was never saved
        (the view raised and Flask propagated the error, or a bare request context)."""
        session = _current_session()
        if (
            isinstance(session, FlaskSession)
            and not session.coatcheck_settled
            and session.lock_token is not None
        ):
            session.coatcheck_settled = True
            _abandon(session.coatcheck_manager, session)

    def release_locks(self, app: Flask) -> None:
        """Install :meth:`release` as a ``teardown_request`` function, once a request may
        hold a lock (a teardown for every request costs a request about 2 µs)."""
        if not self._releasing:
            self._releasing = True
            # Not app.teardown_request(): this may run at the first request, after set-up.
            app.teardown_request_funcs.setdefault(None, []).append(self.release)

    def _mode(self, app: Flask, environ: dict[str, Any]) -> RequestMode | None:
        modes = self._modes.of(app.view_functions)
        if modes:
            if not self._releasing and "lock" in modes.values():
                self.release_locks(app)
            adapter = request_ctx.url_adapter
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
        return self.mode_for(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))


def _current_session() -> object:
    # The context's own reference: from Flask 3.1.3 on, reading ``ctx.session`` (what the
    # ``flask.session`` proxy does) marks the session accessed, which adds ``Vary: Cookie``.
    ctx = _cv_request.get(None)
    if ctx is None:
        return None
    if hasattr(ctx, "_session"):  # no truth test: len() of a session counts as an access
        return ctx._session
    return getattr(ctx, "session", None)  # Flask before 3.1.3


def _abandon(manager: SessionManager, session: FlaskSession) -> None:
    try:
        manager.abandon(session)
    except StoreError as exc:
        # The response is an error already; the lock expires after its own timeout.
        log_release_failure(exc)


def _replace(response: Response, exc: StoreError | SessionLocked) -> None:
    """Turn the application's response into the 503 (no Set-Cookie: the client keeps its
    cookie), closing its body."""
    status, headers, body = refuse(exc)
    old = response.response
    response.status_code = status
    response.headers.clear()
    response.headers.extend(headers)
    response.set_data(body)
    close = getattr(old, "close", None)
    if close is not None:
        close()
