"""What the MySQL store's two driver layers share: PyMySQL's errors, flags and a statement's result.

aiomysql is built on PyMySQL (its errors and constants are PyMySQL's), so this module imports
PyMySQL only and both layers use it: :mod:`coatcheck.stores._mysql_sync` (PyMySQL) and
:mod:`coatcheck.stores._mysql_async` (aiomysql), which hold only what differs between the
drivers. The store imports both this module and its flavour's layer (the unasync rule
``_mysql_async`` -> ``_mysql_sync`` picks the layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

import pymysql
from pymysql.constants import CLIENT

from ._deadline import DEFAULT_TIMEOUT
from ._sql import Option

__all__ = ["CURSOR", "MySQLAddress", "Result", "closed_error", "lost", "multi_statements"]

# The attribute a connection keeps its one cursor in (each layer's ``_cursor`` says why).
CURSOR = "_coatcheck_cursor"


@dataclass(frozen=True, slots=True)
class MySQLAddress:
    """Where and how the MySQL store connects when it makes its own connections."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str | None = None
    password: str = ""
    database: str | None = None
    unix_socket: str | None = None
    connect_timeout: float = DEFAULT_TIMEOUT
    read_timeout: float = DEFAULT_TIMEOUT
    write_timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Option]) -> MySQLAddress:
        """The address part of a ``mysql://`` URL plus its ``unix_socket`` and timeout options
        (``connect_timeout``, ``read_timeout`` and ``write_timeout`` default to ``timeout``)."""
        parts = urlsplit(url)
        unix_socket = options.get("unix_socket")
        timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else "",
            database=unquote(parts.path.lstrip("/")) or None,
            unix_socket=None if unix_socket is None else str(unix_socket),
            connect_timeout=float(options.get("connect_timeout", timeout)),
            read_timeout=float(options.get("read_timeout", timeout)),
            write_timeout=float(options.get("write_timeout", timeout)),
        )

    def __repr__(self) -> str:
        # Keep the password out of tracebacks and logs.
        return f"MySQLAddress(host={self.host!r}, port={self.port}, user={self.user!r}, ...)"


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
