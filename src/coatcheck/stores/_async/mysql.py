"""MySQL and MariaDB sessions: one InnoDB table, one round trip per operation.

The statement text is in :mod:`coatcheck.stores._sql`; the driver differences (aiomysql here,
PyMySQL in the generated sync twin) are in the hand-written pair ``_mysql_async`` /
``_mysql_sync``. Every statement runs in autocommit mode on a connection with
``CLIENT.FOUND_ROWS``, so row counts mean "rows matched", which the exact semantics rely on.
A load that takes the lock is the one operation with two statements (MySQL's UPDATE returns
no rows): the lock is taken first, then the record is read on the same connection, both sent
in one request (``CLIENT.MULTI_STATEMENTS``; two round trips on a connection without it).
"""

from __future__ import annotations

from typing import Any, Protocol

import pymysql
from pymysql.constants import CLIENT, ER

from ...errors import ConfigurationError
from .. import _deadline, _mysql, _sql
from .. import _mysql_async as _driver
from ..base import (
    LOCKED,
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    Record,
    StoreStats,
    Touch,
    Unlock,
    Update,
)
from . import _pool

__all__ = ["AsyncConnectionFactory", "AsyncMySQLStore"]

_SQL = _sql.MYSQL

_URL_OPTIONS: dict[str, type[_sql.Option]] = {
    "table": str,
    "pool_size": int,
    "pool_timeout": float,
    "timeout": float,
    "connect_timeout": float,
    "read_timeout": float,
    "write_timeout": float,
    "unix_socket": str,
}


class AsyncConnectionFactory(Protocol):
    """Anything that opens a new connection when called.

    The connection must have ``client_flag`` including ``CLIENT.FOUND_ROWS``; the store turns
    autocommit on if it is off. With ``CLIENT.MULTI_STATEMENTS`` too (aiomysql always sets it),
    a load that takes the lock is one round trip instead of two.
    """

    async def __call__(self) -> _driver.Connection: ...


class AsyncMySQLStore:
    """Sessions in one MySQL or MariaDB table, over a small pool of connections.

    ``connect`` opens a connection (see :class:`AsyncConnectionFactory`); the store keeps up
    to ``pool_size`` of them and closes them in :meth:`aclose`. :meth:`from_url` builds the
    factory from a ``mysql://`` or ``mariadb://`` URL. ``timeout`` (5 s) is the client-side
    deadline of the wait for a free connection (``pool_timeout`` when given) and of each
    statement (the sync flavour relies on the connection's PyMySQL ``read_timeout`` and
    ``write_timeout`` instead, which URLs set to ``timeout``; so is ``connect_timeout``).
    """

    slides_on_load = False
    unavailable_errors: tuple[type[BaseException], ...] = (
        pymysql.err.OperationalError,
        pymysql.err.InterfaceError,
        _sql.PoolTimeout,
    )
    unsent_errors = (_sql.PoolTimeout,)  # failures that come before the statement is sent

    def __init__(
        self,
        connect: AsyncConnectionFactory,
        *,
        table: str = _sql.DEFAULT_TABLE,
        pool_size: int = 10,
        pool_timeout: float | None = None,
        timeout: float = _deadline.DEFAULT_TIMEOUT,
        name: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        parts = _sql.split_table(table)
        self.table = table
        self.name = name or f"mysql://(connection factory)/?table={table}"
        self._sql = _SQL.render(
            table=".".join(f"`{part}`" for part in parts), index=f"`{parts[-1]}_expires_idx`"
        )
        # The lock, then the read, in one request on connections that allow it.
        self._lock_load = f"{self._sql.lock};\n{self._sql.load}"
        self._factory = connect
        self._timeout = timeout
        self._pool = _pool.AsyncPool(
            self._connect,
            size=pool_size,
            timeout=timeout if pool_timeout is None else pool_timeout,
            alive=_driver.alive,
            close=_driver.close,
            abandon=_driver.abandon,
            lost=_mysql.lost,
            # A server-side refusal (a duplicate key, say) leaves the connection usable.
            usable_after=(pymysql.err.MySQLError,),
            closed_error=_mysql.closed_error,
        )

    @classmethod
    def from_url(cls, url: str) -> AsyncMySQLStore:
        """Build a store from ``mysql://user:password@host:port/database?table=...``.

        ``mariadb://`` works the same. Options: ``table``, ``pool_size`` (10), ``timeout``
        (5 s), the default of ``pool_timeout``, ``connect_timeout``, ``read_timeout`` and
        ``write_timeout``; ``unix_socket`` (a path, instead of host and port).
        """
        options, rest = _sql.url_options(url, ("mysql", "mariadb"), _URL_OPTIONS)
        if rest:
            unknown = ", ".join(sorted(name for name, _ in rest))
            raise ConfigurationError(
                f"unknown MySQL store URL options: {unknown}; for anything else "
                "(TLS, say) pass a connect factory"
            )
        address = _mysql.MySQLAddress.from_url(url, options)
        timeout = float(options.get("timeout", _deadline.DEFAULT_TIMEOUT))
        table = str(options.get("table", _sql.DEFAULT_TABLE))

        async def connect() -> _driver.Connection:
            return await _driver.connect(address)

        scheme = url.split(":", 1)[0].lower()
        host = address.unix_socket or address.host
        port = None if address.unix_socket else address.port
        return cls(
            connect,
            table=table,
            pool_size=int(options.get("pool_size", 10)),
            pool_timeout=float(options.get("pool_timeout", timeout)),
            timeout=address.read_timeout,
            name=_sql.describe(scheme, address.user, host, port, address.database, table),
        )

    async def _connect(self) -> _driver.Connection:
        conn = await self._factory()
        if not conn.client_flag & CLIENT.FOUND_ROWS:
            conn.close()
            raise ConfigurationError(
                "MySQLStore connections need client_flag=pymysql.constants.CLIENT.FOUND_ROWS "
                "(without it MySQL counts changed rows, not matched ones)"
            )
        if not conn.get_autocommit():
            await conn.autocommit(True)
        return conn

    async def _execute(self, query: str, args: dict[str, Any]) -> _mysql.Result:
        # get/put rather than a context manager: this is every operation's path.
        pool = self._pool
        conn = await pool.get()
        try:
            result = await _driver.execute(conn, query, args, self._timeout)
        except BaseException as exc:
            await pool.failed(conn, exc)
            raise
        await pool.put(conn)
        return result

    async def create_tables(self) -> None:
        """Create the table (with its expiry index) if it does not exist."""
        for statement in self._sql.schema:
            await self._execute(statement, {})

    async def drop_tables(self) -> None:
        """Drop the table, if it exists, with every session in it."""
        await self._execute(self._sql.drop, {})

    async def load(self, op: Load) -> LoadResult:
        lock = op.lock
        if lock is None:
            _sql.check_key(op.key)
            row = (await self._execute(self._sql.load, {"key": op.key})).row
            return None if row is None else _record(row)
        params = _sql.lock_params(op, lock)
        async with self._pool.connection() as conn:
            if _mysql.multi_statements(conn):
                result = await _driver.execute_pair(conn, self._lock_load, params, self._timeout)
                taken, row = result.rowcount, result.row
            else:
                taken = (
                    await _driver.execute(conn, self._sql.lock, params, self._timeout)
                ).rowcount
                row = (await _driver.execute(conn, self._sql.load, params, self._timeout)).row
        if row is None:
            return None
        return _record(row) if taken == 1 else LOCKED

    async def create(self, op: Create) -> bool:
        try:
            await self._execute(self._sql.create, _sql.create_params(op))
        except pymysql.err.IntegrityError as exc:
            if exc.args and exc.args[0] == ER.DUP_ENTRY:
                return False
            raise
        return True

    async def update(self, op: Update) -> int | None:
        result = await self._execute(self._sql.update, _sql.update_params(op))
        # The statement set version = LAST_INSERT_ID(version + 1): the OK packet carries it.
        return result.lastrowid if result.rowcount == 1 else None

    async def touch(self, op: Touch) -> bool:
        return (await self._execute(self._sql.touch, _sql.touch_params(op))).rowcount == 1

    async def unlock(self, op: Unlock) -> None:
        _sql.check_key(op.key)
        await self._execute(self._sql.unlock, {"key": op.key, "token": op.token})

    async def delete(self, op: Delete) -> bool:
        _sql.check_key(op.key)
        params = {"key": op.key, "expected": op.expected_version}
        return (await self._execute(self._sql.delete, params)).rowcount > 0

    async def clear_expired(self, op: ClearExpired) -> int:
        """Delete expired records in batches of :data:`~coatcheck.stores._sql.CLEAR_BATCH`.

        Each batch is its own short autocommit transaction, so no lock is held for long.
        """
        removed = 0
        params = {"now": op.now, "limit": _sql.CLEAR_BATCH}
        async with self._pool.connection() as conn:
            while True:
                result = await _driver.execute(conn, self._sql.clear_batch, params, self._timeout)
                removed += result.rowcount
                if result.rowcount < _sql.CLEAR_BATCH:
                    return removed

    async def count(self, now: float) -> int | None:
        row = (await self._execute(self._sql.count, {"now": now})).row
        return 0 if row is None else int(row[0])

    async def stats(self, now: float) -> StoreStats:
        row = (await self._execute(self._sql.stats, {"now": now})).row
        if row is None:
            return StoreStats(0, 0, 0)
        # SUM() comes back as a Decimal.
        return StoreStats(int(row[0]), int(row[1]), int(row[2]))

    async def aclose(self) -> None:
        """Close the store's connections."""
        await self._pool.aclose()


def _record(row: tuple[Any, ...]) -> Record:
    # As the driver read them: the core checks each field's type and value.
    return Record(row[0], row[1], row[2], row[3])
