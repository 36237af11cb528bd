"""The MySQL store's driver layer, asyncio flavour: aiomysql connections.

:mod:`coatcheck.stores._mysql_sync` is its hand-written blocking partner (PyMySQL) with the
same names; the generated ``_sync/mysql.py`` imports it by the unasync rule ``_mysql_async`` ->
``_mysql_sync``. Only what differs between the two drivers lives in this pair: how to connect,
how to run statements under a deadline, how to tell a dead idle connection and how to close
one; what both share is in :mod:`coatcheck.stores._mysql`, re-exported. The pool around the
connections is the generated :class:`coatcheck.stores._async._pool.AsyncPool`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import CLIENT

from ._mysql import CURSOR, MySQLAddress, Result
from ._owners import forget_transport

__all__ = [
    "Connection",
    "abandon",
    "alive",
    "close",
    "connect",
    "execute",
    "execute_pair",
]

# aiomysql ships no type information.
Connection = Any


async def connect(address: MySQLAddress) -> Connection:
    """Open a connection the way the store needs it: autocommit, FOUND_ROWS, utf8mb4.

    aiomysql adds ``MULTI_STATEMENTS`` to every connection, so a locked load sends its two
    statements in one request (every value the store sends is escaped first). aiomysql's
    ``connect_timeout`` bounds the TCP connection only, not the server's greeting and the
    login after it, which a frozen server never sends: ``connect_timeout`` bounds the whole
    here, and a connection that did not make it is closed (``aiomysql.connect`` would leave
    its transport open on a cancellation).
    """
    conn = aiomysql.Connection(
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
    try:
        await asyncio.wait_for(conn._connect(), address.connect_timeout)
    except asyncio.TimeoutError:
        conn.close()
        raise pymysql.err.OperationalError(
            2003, f"Can't connect to MySQL server (timed out after {address.connect_timeout:g} s)"
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


class _Cursor(aiomysql.Cursor):  # type: ignore[misc]  # aiomysql is untyped
    """The one cursor of a connection, which also bounds the time of its statements."""

    # PyMySQL leaves server warnings (such as the note "table already exists") on the cursor;
    # aiomysql fetches them with an extra SHOW WARNINGS round trip and re-raises them as
    # Python warnings. Behave like PyMySQL, so both flavours send the same statements.
    async def _show_warnings(self, conn: Connection) -> None:
        return None

    # asyncio.timeout() schedules a timer and cancels it for every statement, which cost 10-15
    # µs a statement here, a tenth of a short UPDATE (the event loop's timer heap compares in
    # Python). A connection runs one statement at a time, so its cursor keeps one timer
    # instead, left armed between statements: when it fires, it cancels the running statement
    # if that is overdue, waits for the running statement's deadline if not, and stops if no
    # statement is running. So a busy connection sets a timer about once per ``timeout``.
    _running: asyncio.Task[Any] | None = None
    _deadline = 0.0
    _timer: asyncio.TimerHandle | None = None
    _expired = False

    async def bounded(self, work: Awaitable[Any], timeout: float) -> None:
        """Await ``work`` (a statement on this cursor) for at most ``timeout`` seconds."""
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel
            await work
            return
        loop: asyncio.AbstractEventLoop = self._loop
        self._deadline = loop.time() + timeout
        self._running = task
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check)
        if sys.version_info >= (3, 11):
            cancelling = task.cancelling()
        try:
            await work
        except asyncio.CancelledError:
            if not self._expired:
                raise
            self._expired = False
            if sys.version_info >= (3, 11) and task.uncancel() > cancelling:
                raise  # cancelled from outside as well: that wins, as with asyncio.timeout
            raise pymysql.err.OperationalError(
                2013,
                f"Lost connection to MySQL server during query (timed out after {timeout:g} s)",
            ) from None
        finally:
            self._running = None

    def _check(self) -> None:
        self._timer = None
        task = self._running
        if task is None:
            return
        if self._loop.time() >= self._deadline:
            self._expired = True
            task.cancel()
        else:
            self._timer = self._loop.call_at(self._deadline, self._check)


# A new cursor per statement, and closing it, cost about 8 µs a statement (aiomysql makes a
# future and a context manager for each), against 100-200 µs for a short statement's whole
# round trip. A connection keeps one cursor instead; the pool hands a connection to one caller
# at a time, so the cursor is never shared, and it goes away with the connection.
def _cursor(conn: Connection) -> _Cursor:
    cur: _Cursor | None = getattr(conn, CURSOR, None)
    if cur is None:
        cur = _Cursor(conn)
        setattr(conn, CURSOR, cur)
    return cur


def _literals(conn: Connection, args: dict[str, Any]) -> dict[str, str]:
    # aiomysql 0.3 cannot escape bytes under PyMySQL 1.2 (aio-libs/aiomysql#1080), so the
    # values are escaped here, bytes the way PyMySQL 1.2 does it.
    return {
        name: f"_binary X'{value.hex()}'" if isinstance(value, bytes) else conn.escape(value)
        for name, value in args.items()
    }


async def execute(conn: Connection, query: str, args: dict[str, Any], timeout: float) -> Result:
    """Run one statement; ``timeout`` bounds it, as PyMySQL's read/write timeouts do there."""
    cur = _cursor(conn)
    await cur.bounded(cur.execute(query % _literals(conn, args)), timeout)
    return Result(cur.rowcount, cur.lastrowid, await cur.fetchone())


async def execute_pair(
    conn: Connection, query: str, args: dict[str, Any], timeout: float
) -> Result:
    """Run two statements sent as one request (``query`` holds both; the connection must have
    ``CLIENT.MULTI_STATEMENTS``): the first one's row count and insert id, the second one's
    first row. The server runs them one after the other, each in its own autocommit
    transaction, and skips the second when the first fails. ``timeout`` bounds each."""
    cur = _cursor(conn)
    await cur.bounded(cur.execute(query % _literals(conn, args)), timeout)
    rowcount, lastrowid = cur.rowcount, cur.lastrowid
    await cur.bounded(cur.nextset(), timeout)
    return Result(rowcount, lastrowid, await cur.fetchone())


def alive(conn: Connection) -> bool:
    """Whether an idle connection may be reused: asyncio has already seen the end of the stream
    of one the server closed (a restart, or ``wait_timeout``), so no round trip is needed."""
    reader = getattr(conn, "_reader", None)
    return not conn.closed and not (reader is not None and reader.at_eof())


async def close(conn: Connection) -> None:
    """Close a connection, saying goodbye to the server when it still listens; never raises."""
    try:
        await conn.ensure_closed()
    except Exception:  # already broken: just drop it
        conn.close()


def abandon(conn: Connection) -> None:
    """Forget a connection of a closed event loop or of another process, waiting for nothing.

    Its socket is closed in this process only (see :func:`~._owners.forget_transport`), with no
    COM_QUIT; without its streams the connection counts as closed, so aiomysql's finaliser
    leaves it alone too.
    """
    writer = conn._writer
    conn._reader = conn._writer = None
    if writer is not None:
        forget_transport(writer.transport)
