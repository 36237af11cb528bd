"""What the MySQL store's two driver layers share: PyMySQL's errors, flags and a statement's result.

aiomysql is built on PyMySQL (its errors and constants are PyMySQL's), so this module imports
PyMySQL only and both layers use it: :mod:`coatcheck.stores._mysql_sync` (PyMySQL) and
:mod:`coatcheck.stores._mysql_async` (aiomysql), which hold only what differs between the
drivers, and re-export these names so the store reaches its whole driver layer through one
module (the unasync rule ``_mysql_async`` -> ``_mysql_sync`` picks the flavour).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import pymysql
from pymysql.constants import CLIENT

__all__ = ["CURSOR", "Result", "closed_error", "lost", "multi_statements"]

# The attribute a connection keeps its one cursor in (each layer's ``_cursor`` says why).
CURSOR = "_coatcheck_cursor"


class Result(NamedTuple):
    """What one statement returned: found rows, the OK packet's insert id, the first row."""

    rowcount: int
    lastrowid: int | None
    row: tuple[Any, ...] | None


class _Flagged(Protocol):
    # A PyMySQL or an aiomysql connection: both keep the flags they connected with.
    @property
    def client_flag(self) -> int: ...


def multi_statements(conn: _Flagged) -> bool:
    """Whether ``conn`` may send several statements in one request (``execute_pair``)."""
    return bool(conn.client_flag & CLIENT.MULTI_STATEMENTS)


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


def closed_error() -> pymysql.err.InterfaceError:
    """What using a closed store raises."""
    return pymysql.err.InterfaceError(0, "the MySQL store is closed")
