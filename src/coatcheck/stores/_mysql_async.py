"""The MySQL store's driver layer, asyncio flavour: aiomysql connections and a small pool.

:mod:`coatcheck.stores._mysql_sync` is its hand-written blocking twin (PyMySQL) with the same
names; the generated ``_sync/mysql.py`` imports it by the unasync rule ``_mysql_async`` ->
``_mysql_sync``. Everything that differs between the two drivers lives in this pair: how to
connect, how to run one statement under a deadline, how to tell a dead idle connection.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import CLIENT

from ._mysql_sync import Result, connection_lost
from ._sql import MySQLAddress, PoolTimeout

__all__ = ["Connection", "Pool", "Result", "connect", "execute"]

# aiomysql ships no type information.
Connection = Any


async def connect(address: MySQLAddress) -> Connection:
    """Open a connection the way the store needs it: autocommit, FOUND_ROWS, utf8mb4."""
    return await aiomysql.connect(
        host=address.host,
        port=address.port,
        user=address.user,
        password=address.password,
        db=address.database,
        unix_socket=address.unix_socket,
        charset="utf8mb4",
        autocommit=True,
        client_flag=CLIENT.FOUND_ROWS,
        connect_timeout=address.connect_timeout,
    )


class _Cursor(aiomysql.Cursor):  # type: ignore[misc]  # aiomysql is untyped
    # PyMySQL leaves server warnings (such as the note "table already exists") on the cursor;
    # aiomysql fetches them with an extra SHOW WARNINGS round trip and re-raises them as
    # Python warnings. Behave like PyMySQL, so both flavours send the same statements.
    async def _show_warnings(self, conn: Connection) -> None:
        return None


async def execute(conn: Connection, query: str, args: dict[str, Any], timeout: float) -> Result:
    """Run one statement; ``timeout`` bounds it, as PyMySQL's read/write timeouts do there."""
    # aiomysql 0.3 cannot escape bytes under PyMySQL 1.2 (aio-libs/aiomysql#1080), so the
    # values are escaped here, bytes the way PyMySQL 1.2 does it.
    literals = {
        name: f"_binary X'{value.hex()}'" if isinstance(value, bytes) else conn.escape(value)
        for name, value in args.items()
    }
    async with conn.cursor(_Cursor) as cur:
        try:
            await _within(cur.execute(query % literals), timeout)
        except asyncio.TimeoutError:
            raise pymysql.err.OperationalError(
                2013,
                f"Lost connection to MySQL server during query (timed out after {timeout:g} s)",
            ) from None
        row = await cur.fetchone()
        return Result(cur.rowcount, cur.lastrowid, row)


if sys.version_info >= (3, 11):

    async def _within(work: Awaitable[Any], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await work

else:

    async def _within(work: Awaitable[Any], timeout: float) -> None:
        await asyncio.wait_for(work, timeout)


def _alive(conn: Connection) -> bool:
    # An idle connection has nothing to read; EOF means the server closed it (a restart, or
    # wait_timeout), which asyncio has already noticed without a round trip.
    reader = getattr(conn, "_reader", None)
    return not conn.closed and not (reader is not None and reader.at_eof())


class Pool:
    """At most ``size`` connections opened by ``connect``, reused most recent first.

    A connection that failed at the connection level is closed, and so is every idle one
    (they are likely dead too); an idle connection the server closed is noticed and replaced
    before use. Waiting longer than ``timeout`` for a free slot raises ``PoolTimeout``.
    """

    def __init__(
        self, connect: Callable[[], Awaitable[Connection]], size: int, timeout: float
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[Connection] = deque()
        self._closed = False

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """Borrow a connection for one operation."""
        if self._closed:
            raise pymysql.err.InterfaceError(0, "the MySQL store is closed")
        if self._slots.locked():
            try:
                await _within(self._slots.acquire(), self._timeout)
            except asyncio.TimeoutError:
                raise PoolTimeout(
                    f"no MySQL connection was free within {self._timeout:g} s"
                ) from None
        else:
            await self._slots.acquire()
        try:
            conn = self._reuse() or await self._connect()
            try:
                yield conn
            except BaseException as exc:
                # A server-side error (a duplicate key, say) leaves the connection usable;
                # a lost connection, a timeout or a cancellation mid-statement does not.
                lost = connection_lost(exc)
                if isinstance(exc, pymysql.err.MySQLError) and not lost:
                    self._give_back(conn)
                else:
                    conn.close()
                    if lost:
                        self._drop_idle()
                raise
            self._give_back(conn)
        finally:
            self._slots.release()

    def _reuse(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if _alive(conn):
                return conn
            conn.close()
        return None

    def _give_back(self, conn: Connection) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.append(conn)

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def aclose(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            try:
                await conn.ensure_closed()
            except Exception:  # already broken: just drop it
                conn.close()
