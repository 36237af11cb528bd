"""The MySQL store's driver layer, blocking flavour: PyMySQL connections and a small pool.

The hand-written twin of :mod:`coatcheck.stores._mysql_async`, with the same names; the
generated ``_sync/mysql.py`` imports this module. PyMySQL has no pool of its own, so
:class:`Pool` is a thread-safe one. This module imports PyMySQL only, never aiomysql, and also
holds what both flavours share (:class:`Result`, :func:`connection_lost`).
"""

from __future__ import annotations

import contextlib
import select
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeAlias

import pymysql
import pymysql.connections
from pymysql.constants import CLIENT

from ._sql import MySQLAddress, PoolTimeout

__all__ = ["Connection", "Pool", "Result", "connect", "connection_lost", "execute"]

# The stubs make Connection generic over its cursor class; the runtime class is not.
Connection: TypeAlias = "pymysql.connections.Connection[Any]"


class Result(NamedTuple):
    """What one statement returned: found rows, the OK packet's insert id, the first row."""

    rowcount: int
    lastrowid: int | None
    row: tuple[Any, ...] | None


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection itself is gone (not a server-side refusal)."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    if isinstance(exc, pymysql.err.OperationalError):
        code = exc.args[0] if exc.args else None
        # 2000-2999 are client-side errors (CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ...); 4031
        # is MySQL 8's "disconnected by the server because of inactivity". Server errors
        # such as a lock wait timeout leave the connection usable.
        return not isinstance(code, int) or 2000 <= code < 3000 or code == 4031
    return False


def connect(address: MySQLAddress) -> Connection:
    """Open a connection the way the store needs it: autocommit, FOUND_ROWS, utf8mb4."""
    return pymysql.connect(
        host=address.host,
        port=address.port,
        user=address.user,
        password=address.password,
        database=address.database,
        unix_socket=address.unix_socket,
        charset="utf8mb4",
        autocommit=True,
        client_flag=CLIENT.FOUND_ROWS,
        connect_timeout=address.connect_timeout,
        read_timeout=address.read_timeout,
        write_timeout=address.write_timeout,
    )


def execute(conn: Connection, query: str, args: dict[str, Any], timeout: float) -> Result:
    """Run one statement. ``timeout`` is for the async twin: here the connection's own
    ``read_timeout``/``write_timeout`` bound it (:func:`connect` sets them)."""
    with conn.cursor() as cur:
        cur.execute(query, args)
        return Result(cur.rowcount, cur.lastrowid, cur.fetchone())


def _alive(conn: Connection) -> bool:
    # An idle connection has nothing to read: readable means EOF (the server closed it on a
    # restart or after wait_timeout) or junk, so it must not be used. One poll, no round trip.
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable
    except (OSError, ValueError):
        return False


def _close(conn: Connection) -> None:
    # close() refuses a connection it already closed; either way it ends up closed.
    with contextlib.suppress(pymysql.err.Error):
        conn.close()


class Pool:
    """At most ``size`` connections opened by ``connect``, reused most recent first.

    A connection that failed at the connection level is closed, and so is every idle one
    (they are likely dead too); an idle connection the server closed is noticed and replaced
    before use. Waiting longer than ``timeout`` for a free slot raises ``PoolTimeout``.
    """

    def __init__(self, connect: Callable[[], Connection], size: int, timeout: float) -> None:
        self._connect = connect
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: deque[Connection] = deque()
        self._closed = False

    @contextmanager
    def acquire(self) -> Iterator[Connection]:
        """Borrow a connection for one operation."""
        if self._closed:
            raise pymysql.err.InterfaceError(0, "the MySQL store is closed")
        if not self._slots.acquire(timeout=self._timeout):
            raise PoolTimeout(f"no MySQL connection was free within {self._timeout:g} s")
        try:
            conn = self._reuse() or self._connect()
            try:
                yield conn
            except BaseException as exc:
                # A server-side error (a duplicate key, say) leaves the connection usable;
                # a lost connection, a timeout or an interruption mid-statement does not.
                lost = connection_lost(exc)
                if isinstance(exc, pymysql.err.MySQLError) and not lost:
                    self._give_back(conn)
                else:
                    _close(conn)
                    if lost:
                        self._drop_idle()
                raise
            self._give_back(conn)
        finally:
            self._slots.release()

    def _reuse(self) -> Connection | None:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return None
            if _alive(conn):
                return conn
            _close(conn)

    def _give_back(self, conn: Connection) -> None:
        if self._closed:
            _close(conn)
        else:
            self._idle.append(conn)

    def _drop_idle(self) -> None:
        while True:
            try:
                _close(self._idle.pop())
            except IndexError:
                return

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._closed = True
        self._drop_idle()
