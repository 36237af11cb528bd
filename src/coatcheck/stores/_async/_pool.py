"""The connection pool the MySQL store keeps its connections in.

PyMySQL has no pool, and the sync and async flavours should behave alike, so the store brings
this one (PostgreSQLStore uses psycopg_pool, the pool made for psycopg). It is small on
purpose, since every operation checks a connection out and back in: two short critical
sections (the slot count from :mod:`coatcheck._flavours`, whose comment says why it is not a
``threading.Semaphore``) and one check of the idle connection that makes no round trip.
The most recently returned connection is reused first, so a quiet site keeps one warm
connection rather than cycling through all of them. The connection-specific steps (open one,
is it alive, close it, which errors lose it) are parameters, which keeps the pool free of
driver imports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

from ..._flavours import AsyncSlots
from .._sql import PoolTimeout

__all__ = ["AsyncClose", "AsyncConnect", "AsyncPool"]

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)
C_contra = TypeVar("C_contra", contravariant=True)


class AsyncConnect(Protocol[C_co]):
    """Opens a new connection."""

    async def __call__(self) -> C_co: ...


class AsyncClose(Protocol[C_contra]):
    """Closes a connection; never raises."""

    async def __call__(self, conn: C_contra, /) -> None: ...


class AsyncPool(Generic[C]):
    """At most ``size`` connections opened by ``connect``, shared by the callers of one flavour.

    :meth:`get` reuses the most recently returned idle connection that ``alive`` (a check
    without a round trip) accepts, closing dead ones, or opens a new one; it waits at most
    ``timeout`` seconds for a connection to come back when ``size`` are out, then raises
    :class:`~coatcheck.stores._sql.PoolTimeout`. :meth:`put` returns a connection;
    :meth:`failed` returns one whose statement raised ``exc``: it is kept when ``exc`` is one
    of ``usable_after`` (a refusal by the server) and ``lost(conn, exc)`` is false, and closed
    otherwise; when ``lost``, the idle connections are closed too (one dead connection usually
    means the server restarted). ``close`` closes one connection and never raises;
    ``closed_error`` is raised by ``get`` once the pool is closed, also in callers that were
    waiting for a connection then.
    """

    def __init__(
        self,
        connect: AsyncConnect[C],
        *,
        size: int,
        timeout: float,
        alive: Callable[[C], bool],
        close: AsyncClose[C],
        lost: Callable[[C, BaseException], bool],
        usable_after: tuple[type[BaseException], ...],
        closed_error: Callable[[], BaseException],
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._alive = alive
        self._close = close
        self._lost = lost
        self._usable_after = usable_after
        self._closed_error = closed_error
        self._idle: deque[C] = deque()
        self._slots = AsyncSlots(size)  # one per connection checked out (or being opened)
        self._closed = False

    async def get(self) -> C:
        """Check a connection out."""
        if not await self._slots.acquire(self._timeout):
            if self._closed:
                raise self._closed_error()
            raise PoolTimeout(f"no connection was free within {self._timeout:g} s")
        try:
            idle = self._idle
            while idle:
                try:
                    conn = idle.pop()
                except IndexError:  # another thread (sync flavour) took the last one
                    break
                if self._alive(conn):
                    return conn
                await self._close(conn)
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def put(self, conn: C) -> None:
        """Return a connection checked out with :meth:`get`."""
        # Idle before its slot is free, so the caller that the slot wakes finds it. Checking
        # for close only afterwards means close() or this call drops it, whichever is later.
        self._idle.append(conn)
        self._slots.release()
        if self._closed:
            await self._drop_idle()

    async def failed(self, conn: C, exc: BaseException) -> None:
        """Return a connection whose statement raised ``exc`` (see the class docstring)."""
        lost = self._lost(conn, exc)
        if not lost and isinstance(exc, self._usable_after):
            await self.put(conn)
            return
        try:
            await self._close(conn)
        finally:
            self._slots.release()
        if lost:
            await self._drop_idle()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[C]:
        """:meth:`get`, then :meth:`put` or :meth:`failed`."""
        conn = await self.get()
        try:
            yield conn
        except BaseException as exc:
            await self.failed(conn, exc)
            raise
        await self.put(conn)

    async def _drop_idle(self) -> None:
        idle = self._idle
        while idle:
            try:
                conn = idle.pop()
            except IndexError:  # another thread (sync flavour) took the last one
                return
            await self._close(conn)

    async def aclose(self) -> None:
        """Close the idle connections; those checked out are closed when they come back."""
        self._closed = True
        self._slots.close()
        await self._drop_idle()
