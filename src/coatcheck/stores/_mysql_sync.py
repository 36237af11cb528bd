"""The MySQL store's driver layer, blocking flavour: PyMySQL connections.

The hand-written twin of :mod:`coatcheck.stores._mysql_async`, with the same names; the
generated ``_sync/mysql.py`` imports this module, and puts its connections in a
:class:`coatcheck.stores._sql.Pool`. This module imports PyMySQL only, never aiomysql, and also
holds what both flavours share (:class:`Result`, :func:`lost`, :func:`multi_statements`).
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple, TypeAlias

import pymysql
import pymysql.connections
import pymysql.cursors
from pymysql.constants import CLIENT

from ._sql import MySQLAddress, quiet

__all__ = [
    "Connection",
    "Result",
    "alive",
    "close",
    "closed_error",
    "connect",
    "execute",
    "execute_pair",
    "lost",
    "multi_statements",
]

# The stubs make Connection generic over its cursor class; the runtime class is not.
Connection: TypeAlias = "pymysql.connections.Connection[Any]"


class Result(NamedTuple):
    """What one statement returned: found rows, the OK packet's insert id, the first row."""

    rowcount: int
    lastrowid: int | None
    row: tuple[Any, ...] | None


def lost(conn: object, exc: BaseException) -> bool:
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
    """Open a connection the way the store needs it: autocommit, FOUND_ROWS, utf8mb4.

    Also ``MULTI_STATEMENTS``, so a locked load sends its two statements in one request (every
    value the store sends is escaped by the driver; aiomysql sets this flag on every connection).
    """
    return pymysql.connect(
        host=address.host,
        port=address.port,
        user=address.user,
        password=address.password,
        database=address.database,
        unix_socket=address.unix_socket,
        charset="utf8mb4",
        autocommit=True,
        client_flag=CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS,
        connect_timeout=address.connect_timeout,
        read_timeout=address.read_timeout,
        write_timeout=address.write_timeout,
    )


def multi_statements(conn: Connection) -> bool:
    """Whether ``conn`` may send several statements in one request (:func:`execute_pair`)."""
    return bool(conn.client_flag & CLIENT.MULTI_STATEMENTS)


# A new cursor per statement, and closing it, cost 2-3 µs a statement (8 µs in the aiomysql
# twin), against 60-150 µs for a short statement's whole round trip. A connection keeps one
# cursor instead; the pool hands a connection to one caller at a time, so the cursor is never
# shared, and it goes away with the connection.
_CURSOR = "_coatcheck_cursor"


def _cursor(conn: Connection) -> pymysql.cursors.Cursor:
    cur: pymysql.cursors.Cursor | None = getattr(conn, _CURSOR, None)
    if cur is None:
        cur = pymysql.cursors.Cursor(conn)
        setattr(conn, _CURSOR, cur)
    return cur


def execute(conn: Connection, query: str, args: dict[str, Any], timeout: float) -> Result:
    """Run one statement. ``timeout`` is for the async twin: here the connection's own
    ``read_timeout``/``write_timeout`` bound it (:func:`connect` sets them)."""
    cur = _cursor(conn)
    cur.execute(query, args)
    return Result(cur.rowcount, cur.lastrowid, cur.fetchone())


def execute_pair(conn: Connection, query: str, args: dict[str, Any], timeout: float) -> Result:
    """Run two statements sent as one request (``query`` holds both; the connection must have
    ``CLIENT.MULTI_STATEMENTS``): the first one's row count and insert id, the second one's
    first row. The server runs them one after the other, each in its own autocommit
    transaction, and skips the second when the first fails."""
    cur = _cursor(conn)
    cur.execute(query, args)
    rowcount, lastrowid = cur.rowcount, cur.lastrowid
    cur.nextset()
    return Result(rowcount, lastrowid, cur.fetchone())


def alive(conn: Connection) -> bool:
    """Whether an idle connection may be reused: its socket has nothing to read (one poll)."""
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return False
    try:
        return quiet(conn, sock.fileno())
    except (OSError, ValueError):
        return False


def close(conn: Connection) -> None:
    """Close a connection, saying goodbye to the server when it still listens; never raises."""
    # close() refuses a connection it already closed; either way it ends up closed.
    with contextlib.suppress(pymysql.err.Error, OSError):
        conn.close()


def closed_error() -> pymysql.err.InterfaceError:
    """What using a closed store raises."""
    return pymysql.err.InterfaceError(0, "the MySQL store is closed")
