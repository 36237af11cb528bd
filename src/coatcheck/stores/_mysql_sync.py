"""The MySQL store's driver layer, blocking flavour: PyMySQL connections.

The hand-written partner of :mod:`coatcheck.stores._mysql_async` (aiomysql), with the same
names; the generated ``_sync/mysql.py`` imports this module, and puts its connections in the
generated :class:`coatcheck.stores._sync._pool.Pool`. Only what PyMySQL does differently lives
here (connecting, running statements, telling a dead idle connection, closing one); what both
drivers share is in :mod:`coatcheck.stores._mysql`, re-exported. Imports PyMySQL only.
"""

from __future__ import annotations

import contextlib
import select
import sys
from typing import Any, TypeAlias

import pymysql
import pymysql.connections
import pymysql.cursors
from pymysql.constants import CLIENT

from ._mysql import CURSOR, MySQLAddress, Result

__all__ = [
    "Connection",
    "abandon",
    "alive",
    "close",
    "connect",
    "execute",
    "execute_pair",
]

# The stubs make Connection generic over its cursor class; the runtime class is not.
Connection: TypeAlias = "pymysql.connections.Connection[Any]"


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


# A new cursor per statement, and closing it, cost 2-3 µs a statement (8 µs with aiomysql),
# against 60-150 µs for a short statement's whole round trip. A connection keeps one cursor
# instead; the pool hands a connection to one caller at a time, so the cursor is never
# shared, and it goes away with the connection.
def _cursor(conn: Connection) -> pymysql.cursors.Cursor:
    cur: pymysql.cursors.Cursor | None = getattr(conn, CURSOR, None)
    if cur is None:
        cur = pymysql.cursors.Cursor(conn)
        setattr(conn, CURSOR, cur)
    return cur


def execute(conn: Connection, query: str, args: dict[str, Any], timeout: float) -> Result:
    """Run one statement. ``timeout`` is for the aiomysql layer: here the connection's own
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


_POLLER = "_coatcheck_poller"


def _quiet(conn: object, fileno: int) -> bool:
    """Whether the socket ``fileno`` of the idle connection ``conn`` has nothing to read.

    Readable means the server closed the connection (a restart, an idle timeout) or sent
    something unasked for; either way it must not be reused. One poll, no round trip; the
    poller is kept on the connection, so a check is one system call.
    """
    if sys.platform == "win32":  # no poll()
        readable, _, _ = select.select([fileno], [], [], 0)
        return not readable
    poller: select.poll | None = getattr(conn, _POLLER, None)
    if poller is None:
        poller = select.poll()
        poller.register(fileno, select.POLLIN)
        setattr(conn, _POLLER, poller)
    return not poller.poll(0)


def alive(conn: Connection) -> bool:
    """Whether an idle connection may be reused: its socket has nothing to read (one poll)."""
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return False
    try:
        return _quiet(conn, sock.fileno())
    except (OSError, ValueError):
        return False


def close(conn: Connection) -> None:
    """Close a connection, saying goodbye to the server when it still listens; never raises."""
    # close() refuses a connection it already closed; either way it ends up closed.
    with contextlib.suppress(pymysql.err.Error, OSError):
        conn.close()


def abandon(conn: Connection) -> None:
    """Forget a connection of another process (the parent, seen from a forked child).

    PyMySQL's ``_force_close`` (its finaliser) closes the socket without COM_QUIT, which
    would end the session for the parent too; closing this process's descriptor sends nothing.
    """
    conn._force_close()  # type: ignore[attr-defined]  # not in the stubs: PyMySQL-private
