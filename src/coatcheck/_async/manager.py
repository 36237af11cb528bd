"""AsyncSessionManager: opens and saves sessions against an asyncio store.

Every decision lives in :class:`coatcheck._sansio.core.SessionCore`; this class only runs its flows.
The sync ``SessionManager`` is generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._gates import AsyncGate, Turn
from .._sansio.config import ConcurrencyMode, SessionConfig
from .._sansio.core import SessionCore
from .._sansio.headers import SaveOutcome
from .._sansio.namespaces import Reservation
from .._sansio.ops import Flow
from .._sansio.session import Session
from ..errors import ConfigurationError
from ..stores import async_store_from_url
from ..stores.base import AsyncStore
from .driver import run_async

__all__ = ["AsyncSessionManager"]


class AsyncSessionManager:
    """Opens, saves, destroys and purges sessions in one store.

    ``store`` is a store object or a store URL (``sqlite:///sessions.db``, ``redis://...``).
    Settings come as a :class:`SessionConfig` or as its fields by keyword; ``clock`` returns
    seconds since the epoch and exists so tests can freeze time. ``session_class``, a subclass
    of :class:`~coatcheck.Session`, is the class of the sessions it opens (a framework's
    session type, such as the Flask integration's).
    """

    def __init__(
        self,
        store: AsyncStore | str,
        config: SessionConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        session_class: type[Session] = Session,
        **settings: Any,
    ) -> None:
        if config is not None and settings:
            raise ConfigurationError("pass either a SessionConfig or settings, not both")
        self.store: AsyncStore = async_store_from_url(store) if isinstance(store, str) else store
        self.config = config if config is not None else SessionConfig(**settings)
        self.core = SessionCore(
            self.config,
            clock,
            self.store.name,
            slides_on_load=self.store.slides_on_load,
            session_class=session_class,
        )
        # lock mode: this process's requests for one session queue here, in arrival order,
        # before asking the store for its lock (coatcheck._gates).
        self._gate = AsyncGate(self.core.now)

    async def open(
        self,
        cookie_value: str | None = None,
        *,
        remote_addr: str | None = None,
        user_agent: str | None = None,
        concurrency: ConcurrencyMode | None = None,
        read_only: bool = False,
    ) -> Session:
        """The session for what the client presented (a cookie value, or an id from a header).

        Never adopts an unknown, expired, malformed or forged id: those give a fresh session.
        ``concurrency`` overrides the configured mode for this request; ``read_only=True``
        promises no writes (no lock is taken, nothing is saved or touched).
        """
        key = self.core.lock_key(cookie_value, concurrency, read_only)
        if key is None:
            flow = self.core.open_flow(
                cookie_value, remote_addr, user_agent, concurrency, read_only
            )
            return await run_async(flow, self.store)
        turn, wait = await self._queue(key)
        flow = self.core.open_flow(
            cookie_value, remote_addr, user_agent, concurrency, read_only, lock_wait=wait
        )
        return await self._locked_open(flow, turn)

    async def open_from_cookie_header(
        self,
        cookie_header: str | None,
        *,
        remote_addr: str | None = None,
        user_agent: str | None = None,
        concurrency: ConcurrencyMode | None = None,
        read_only: bool = False,
    ) -> Session:
        """Like :meth:`open`, reading the session cookie out of a raw ``Cookie`` header
        (where two different values are refused as ambiguous: see
        :meth:`SessionCore.cookie_open_flow <coatcheck._sansio.core.SessionCore.cookie_open_flow>`).
        """
        key = self.core.lock_key(cookie_header, concurrency, read_only, header=True)
        if key is None:
            flow = self.core.cookie_open_flow(
                cookie_header, remote_addr, user_agent, concurrency, read_only
            )
            return await run_async(flow, self.store)
        turn, wait = await self._queue(key)
        flow = self.core.cookie_open_flow(
            cookie_header, remote_addr, user_agent, concurrency, read_only, lock_wait=wait
        )
        return await self._locked_open(flow, turn)

    async def _queue(self, key: str) -> tuple[Turn, float]:
        """This request's turn at ``key``'s lock, and what is left of its lock_wait."""
        config = self.config
        started = time.monotonic()
        turn = await self._gate.enter(key, config.lock_wait, config.lock_timeout)
        return turn, max(0.0, config.lock_wait - (time.monotonic() - started))

    async def _locked_open(self, flow: Flow[Session], turn: Turn) -> Session:
        try:
            session = await run_async(flow, self.store)
        except BaseException:
            self._gate.leave(turn, self.config.lock_timeout)
            raise
        if session.lock_token is None:  # no lock taken after all (a fresh session)
            self._gate.leave(turn, self.config.lock_timeout)
        else:
            session.gate_turn = turn
        return session

    def _next_turn(self, session: Session) -> None:
        # The save or abandon released the session's lock: the next request in line goes.
        turn = session.gate_turn
        if isinstance(turn, Turn):
            session.gate_turn = None
            self._gate.leave(turn, self.config.lock_timeout)

    async def save(self, session: Session, *, refresh_cookie: bool = False) -> SaveOutcome:
        """Store what the request changed; returns the headers the response needs.

        ``refresh_cookie`` re-sends the cookie of a stored session whose cookie has a max age
        even when nothing changed (Flask's ``SESSION_REFRESH_EACH_REQUEST``).
        """
        try:
            return await run_async(self.core.save_flow(session, refresh_cookie), self.store)
        finally:
            self._next_turn(session)

    async def abandon(self, session: Session) -> None:
        """Drop the request's changes (e.g. on an error response); releases its lock, if any."""
        try:
            await run_async(self.core.abandon_flow(session), self.store)
        finally:
            self._next_turn(session)

    async def cleanup(self) -> int:
        """Delete every expired session now; returns how many were removed."""
        return await run_async(self.core.cleanup_flow(), self.store)

    def adjust_time(self, delta: float) -> None:
        """The system clock moved by ``delta`` seconds; see :meth:`SessionCore.adjust_time`."""
        self.core.adjust_time(delta)

    def reserve(self, name: str) -> Reservation:
        """Reserve namespace ``name``; only the returned object can write it."""
        return self.core.reserve(name)

    def release(self, name: str) -> None:
        """Free a reserved namespace."""
        self.core.release(name)

    async def aclose(self) -> None:
        """Close the store (a client passed to the store by the caller stays open)."""
        await self.store.aclose()

    async def __aenter__(self) -> AsyncSessionManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
