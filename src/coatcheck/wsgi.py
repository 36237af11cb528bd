"""WSGI middleware: opens the session before the application runs and saves it before the
response headers leave.

A thin shell: the rules live in :mod:`coatcheck._sansio.core` (via
:class:`~coatcheck.SessionManager`) and in :mod:`coatcheck._sansio.headers`; this module only
speaks PEP 3333.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ._sansio.headers import (
    ModeFor,
    check_id_header,
    interrupted_outcome,
    log_refusal,
    log_release_failure,
    merge_headers,
    refusal,
    request_mode,
    response_headers,
)
from ._sansio.session import Session
from ._sync.manager import SessionManager
from .errors import SessionInterrupted, SessionLocked, StoreError

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SessionMiddleware"]

_UNAVAILABLE_STATUS = "503 Service Unavailable"
# Status codes whose response saves the session: below 500.
_SAVING_CODES = frozenset(str(code) for code in range(100, 500))


def _discard(data: bytes) -> None:
    """The ``write()`` handed to an application whose response was replaced by a 503."""


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class SessionMiddleware:
    """Give every request a :class:`~coatcheck.Session` in ``environ[environ_key]``.

    The session is loaded from the ``Cookie`` header (or, with ``id_header``, from that request
    header; e.g. ``"X-Session-Id"`` for API clients, which then get a new ticket back in the
    same response header instead of a ``Set-Cookie``). It is saved when the application calls
    ``start_response``, before any byte of the response is sent:

    - a status of 500 or above saves nothing: the request's changes are dropped (in ``lock``
      mode its session lock is released; so it is when the application raises before
      starting a response);
    - otherwise the manager saves what changed and its headers are merged into the response
      (``Set-Cookie``, ``Vary``, ``Cache-Control``; see
      :func:`coatcheck._sansio.headers.merge_headers`).

    When the store cannot be reached (:class:`~coatcheck.StoreUnavailable`) or fails
    (:class:`~coatcheck.StoreError`) while opening or saving, or when another request held the
    session lock for longer than ``lock_wait`` (:class:`~coatcheck.SessionLocked`), the client
    gets a plain ``503 Service Unavailable`` with ``Retry-After: 1`` and no ``Set-Cookie`` (its
    cookie stays as it is), and the reason is logged on the ``coatcheck`` logger, naming the
    store. A 503 rather than a 500 even for a store error that is not an outage: the
    application did nothing wrong, and its response must not go out as if its changes were
    kept. The body and the log line say what the client can act on: "nothing was saved, try
    again" when the store failed before any write was sent, and that the changes may have
    been saved when a write was sent and not confirmed (a timeout: a frozen server may apply
    it when it resumes; :attr:`~coatcheck.StoreError.outcome_unknown`), so a client knows to
    check before it repeats the request. The log tells the operator which kind of failure it
    was (WARNING for an outage, ERROR with the traceback otherwise). A response whose session
    was destroyed meanwhile by another request (:class:`~coatcheck.SessionInterrupted`) goes
    out with a deleting ``Set-Cookie``. Any other exception, from the application or from the
    save (an unserializable value, say), propagates.

    ``mode_for(method, path)``, when given, picks the concurrency mode per request: ``"lock"``
    for a checkout route, ``"read-only"`` for a page that only reads the session (no lock is
    taken, nothing is written, not even a touch), ``None`` for the manager's configured mode.

    The save happens once, at the first ``start_response``; an application that later replaces
    its response through ``exc_info`` keeps what was saved, and its replacement carries the
    same session headers (so a rotated ticket is not lost).
    """

    def __init__(
        self,
        app: WSGIApplication,
        manager: SessionManager,
        *,
        environ_key: str = "coatcheck.session",
        id_header: str | None = None,
        mode_for: ModeFor | None = None,
    ) -> None:
        self.app = app
        self.mode_for = mode_for
        self.manager = manager
        self.environ_key = environ_key
        self.id_header = check_id_header(id_header)
        self._id_environ = (
            None if id_header is None else "HTTP_" + id_header.upper().replace("-", "_")
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        mode_for = self.mode_for
        if mode_for is None:
            concurrency, read_only = None, False
        else:
            concurrency, read_only = request_mode(
                mode_for(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))
            )
        try:
            if self._id_environ is None:
                session = self.manager.open_from_cookie_header(
                    environ.get("HTTP_COOKIE"),
                    remote_addr=environ.get("REMOTE_ADDR"),
                    user_agent=environ.get("HTTP_USER_AGENT"),
                    concurrency=concurrency,
                    read_only=read_only,
                )
            else:
                session = self.manager.open(
                    environ.get(self._id_environ) or None,
                    remote_addr=environ.get("REMOTE_ADDR"),
                    user_agent=environ.get("HTTP_USER_AGENT"),
                    concurrency=concurrency,
                    read_only=read_only,
                )
        except (StoreError, SessionLocked) as exc:
            log_refusal(exc)
            headers, body = refusal(exc)
            start_response(_UNAVAILABLE_STATUS, list(headers))
            return [body]
        environ[self.environ_key] = session
        exchange = _Exchange(self, session, start_response)
        try:
            app_iter = self.app(environ, exchange.start_response)
        except BaseException:
            exchange.settle()
            raise
        if exchange.failed:
            _close(app_iter)
            return [exchange.failed]
        if not exchange.started:
            # start_response will come with the first item (PEP 3333 allows it), and with
            # it the save, which may still turn the response into a 503.
            return exchange.watch(app_iter)
        return app_iter


class _Exchange:
    """One request's session and what became of its save."""

    __slots__ = ("extra", "failed", "middleware", "session", "settled", "started", "upstream")

    def __init__(
        self, middleware: SessionMiddleware, session: Session, upstream: StartResponse
    ) -> None:
        self.middleware = middleware
        self.session = session
        self.upstream = upstream
        self.started = False
        #: The body of the 503 that replaced the response when the save failed; else empty.
        self.failed = b""
        #: True once the session was saved or abandoned: its lock, if any, is released.
        self.settled = False
        #: The session headers, once saved; None while nothing was saved.
        self.extra: list[tuple[str, str]] | None = None

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        if self.started:
            return self._restart(status, headers, exc_info)
        self.started = True
        code = status[:3]
        if code in _SAVING_CODES:
            saves = True  # the usual case, and a set lookup is cheaper than int()
        else:
            try:
                saves = int(code) < 500
            except ValueError:
                saves = False  # not a status line the server will accept either
        if not saves:
            self.settle()
            return self.upstream(status, headers, exc_info)
        # The save is inlined here rather than a method of its own: this runs once per
        # request and is the middleware's hot path.
        manager = self.middleware.manager
        self.settled = True  # a save releases the lock whatever happens
        try:
            outcome = manager.save(self.session)
        except SessionInterrupted:
            outcome = interrupted_outcome(manager.config.cookie)
        except StoreError as exc:
            log_refusal(exc)
            unavailable, self.failed = refusal(exc)
            self.upstream(_UNAVAILABLE_STATUS, list(unavailable), exc_info)
            return _discard
        extra = self.extra = response_headers(outcome, self.middleware.id_header)
        if extra:
            headers = merge_headers(headers, extra)
        return self.upstream(status, headers, exc_info)

    def _restart(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None
    ) -> Callable[[bytes], object]:
        """A second ``start_response``: the application replaces its response (PEP 3333)."""
        if self.failed:
            # The 503 already stands; an application error after it is still an error.
            if exc_info is not None and exc_info[1] is not None:
                raise exc_info[1].with_traceback(exc_info[2])
            return _discard
        if self.extra:
            headers = merge_headers(headers, self.extra)
        return self.upstream(status, headers, exc_info)

    def settle(self) -> None:
        """Drop an unsaved session's changes and release its lock, if it holds one."""
        if self.settled:
            return
        self.settled = True
        try:
            self.middleware.manager.abandon(self.session)
        except StoreError as exc:
            # The response is an error already; the lock expires after its own timeout.
            log_release_failure(exc)

    def watch(self, app_iter: Iterable[bytes]) -> Iterator[bytes]:
        """Pass the body through, swapping in the 503 if the late save failed."""
        try:
            for chunk in app_iter:
                if self.failed:
                    yield self.failed
                    return
                yield chunk
        finally:
            try:
                _close(app_iter)
            finally:
                self.settle()  # an app that never started a response saves nothing
