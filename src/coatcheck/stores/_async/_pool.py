"""The connection pool the MySQL store keeps its connections in.

PyMySQL has no pool, and the sync and async flavours should behave alike, so the store brings
this one (PostgreSQLStore uses psycopg_pool, the pool made for psycopg). It is small on
purpose, since every operation checks a connection out and back in: two short critical
sections (the slot count from :mod:`coatcheck._flavours`, whose comment says why it is not a
``threading.Semaphore``) and one check of the idle connection that makes no round trip.
The most recently returned connection is reused first, so a quiet site keeps one warm
connection rather than cycling through all of them. The connection-specific steps (open one,
is it alive, close it, abandon it, which errors lose it) are parameters, which keeps the pool
free of driver imports.

The connections are kept per owner (:mod:`coatcheck.stores._owners`): a child forked from a
process with open connections, or a second event loop, gets connections of its own, and
those of an owner that is gone are abandoned (closed here without a word to the server).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

from ..._flavours import AsyncSlots, async_owner
from .._owners import PerOwner
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


class _Lot(Generic[C]):
    """The connections of one owner: the idle ones, and a slot for each checked out."""

    __slots__ = ("idle", "slots")

    def __init__(self, size: int) -> None:
        self.idle: deque[C] = deque()
        self.slots = AsyncSlots(size)  # one per connection checked out (or being opened)


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
    ``abandon`` forgets one of an owner that is gone, without waiting or a word to the server;
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
        abandon: Callable[[C], None],
        lost: Callable[[C, BaseException], bool],
        usable_after: tuple[type[BaseException], ...],
        closed_error: Callable[[], BaseException],
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._alive = alive
        self._close = close
        self._abandon = abandon
        self._lost = lost
        self._usable_after = usable_after
        self._closed_error = closed_error
        self._lots: PerOwner[_Lot[C]] = PerOwner(self._new_lot, self._abandon_lot)
        self._closed = False

    def _new_lot(self) -> _Lot[C]:
        lot: _Lot[C] = _Lot(self._size)
        if self._closed:
            lot.slots.close()
        return lot

    def _abandon_lot(self, lot: _Lot[C]) -> None:
        # Its checked-out connections went with their owner (the parent's threads do not
        # exist in a forked child; a closed loop runs no task), so the idle ones are all.
        idle = lot.idle
        while idle:
            self._abandon(idle.pop())

    async def get(self) -> C:
        """Check a connection out."""
        lot = self._lots.get(async_owner())
        if not await lot.slots.acquire(self._timeout):
            if self._closed:
                raise self._closed_error()
            raise PoolTimeout(f"no connection was free within {self._timeout:g} s")
        try:
            idle = lot.idle
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
            lot.slots.release()
            raise

    async def put(self, conn: C) -> None:
        """Return a connection checked out with :meth:`get`."""
        # Idle before its slot is free, so the caller that the slot wakes finds it. Checking
        # for close only afterwards means close() or this call drops it, whichever is later.
        lot = self._lots.get(async_owner())
        lot.idle.append(conn)
        lot.slots.release()
        if self._closed:
            await self._drop_idle(lot)

    async def failed(self, conn: C, exc: BaseException) -> None:
        """Return a connection whose statement raised ``exc`` (see the class docstring)."""
        lost = self._lost(conn, exc)
        if not lost and isinstance(exc, self._usable_after):
            await self.put(conn)
            return
        lot = self._lots.get(async_owner())
        try:
            await self._close(conn)
        finally:
            lot.slots.release()
        if lost:
            await self._drop_idle(lot)

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

    def idle_connections(self) -> list[C]:
        """This owner's idle connections, the next to be reused last."""
        return list(self._lots.get(async_owner()).idle)

    async def _drop_idle(self, lot: _Lot[C]) -> None:
        idle = lot.idle
        while idle:
            try:
                conn = idle.pop()
            except IndexError:  # another thread (sync flavour) took the last one
                return
            await self._close(conn)

    async def aclose(self) -> None:
        """Close the idle connections; those checked out are closed when they come back.

        Idle connections of other owners are abandoned (those of another event loop that still
        runs too: they cannot be closed from this one).
        """
        self._closed = True
        mine, others = self._lots.take_all(async_owner())
        for lot in others:
            lot.slots.close()
            self._abandon_lot(lot)
        if mine is not None:
            mine.slots.close()
            await self._drop_idle(mine)
