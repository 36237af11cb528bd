"""PostgreSQL sessions with psycopg 3: one table, one round trip per operation.

Every operation is a single autocommit statement (the text is in :mod:`coatcheck.stores._sql`),
so the store's exact semantics come from PostgreSQL's row locking rather than from client-side
transactions: ``create`` is ``INSERT ... ON CONFLICT DO NOTHING``, ``update`` a conditional
``UPDATE ... RETURNING version``, and ``load`` with a lock one ``UPDATE`` in a CTE that also
tells "locked by another" from "missing".
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ...errors import ConfigurationError
from .. import _deadline, _sql
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
from . import _pool, _postgresql_pool

__all__ = ["AsyncConnectionFactory", "AsyncPostgreSQLStore"]

_SQL = _sql.POSTGRESQL

_Conn = psycopg.AsyncConnection[Any]
_Pool = psycopg_pool.AsyncConnectionPool[_Conn]

# psycopg sets up adapters and result loaders for every new cursor, which cost 15-20 µs a
# statement beside the round trip (benchmarks/stores.py). A connection keeps one cursor for the
# store's statements instead; it is used only while the connection is checked out, so by one
# caller at a time, and it goes away with the connection.
_CURSOR = "_coatcheck_cursor"


def _cursor(conn: psycopg.AsyncConnection[Any]) -> psycopg.AsyncCursor[Any]:
    cur: psycopg.AsyncCursor[Any] | None = getattr(conn, _CURSOR, None)
    if cur is None or cur.closed:
        cur = conn.cursor()
        setattr(conn, _CURSOR, cur)
    return cur


# coatcheck's own URL options; every other query parameter goes to libpq unchanged.
_URL_OPTIONS: dict[str, type[_sql.Option]] = {
    "table": str,
    "pool_size": int,
    "pool_timeout": float,
    "statement_timeout": float,
    "timeout": float,
}


class AsyncConnectionFactory(Protocol):
    """Anything that opens a new connection when called (``psycopg.AsyncConnection.connect``)."""

    async def __call__(self) -> psycopg.AsyncConnection[Any]: ...


class AsyncPostgreSQLStore:
    """Sessions in one PostgreSQL table, through a pool of psycopg connections.

    Pass a ready ``psycopg_pool.AsyncConnectionPool`` (left open by :meth:`aclose`; a
    connection not in autocommit mode is switched to it for the statement and back), or a
    ``connect`` factory (a connection per operation: for when PgBouncer or the like pools),
    or build the store with :meth:`from_url`, which keeps its connections in coatcheck's own
    pool (:class:`~coatcheck.stores._async._pool.AsyncPool`, as the MySQL store does): they
    are opened by the request that needs one, in its own task or thread, with no worker in
    the background, and kept per process and, in the asyncio flavour, per event loop (a pool
    passed in is the caller's to make per process and loop).

    ``table`` may be ``name`` or ``schema.name``; :meth:`create_tables` creates it.
    ``timeout`` (seconds) is the client-side deadline of every statement and of the wait for
    a pooled connection: a statement still unanswered then has its connection cut (see
    :mod:`coatcheck.stores._deadline`), so even a frozen server fails the request in time.
    """

    slides_on_load = False
    unavailable_errors: tuple[type[BaseException], ...] = (
        psycopg.OperationalError,
        psycopg_pool.PoolTimeout,
        psycopg_pool.TooManyRequests,
        _sql.PoolTimeout,
        _deadline.DeadlineExceeded,
    )
    unsent_errors = (  # failures that come before the statement is sent
        psycopg_pool.PoolTimeout,
        psycopg_pool.TooManyRequests,
        _sql.PoolTimeout,
        _postgresql_pool.NotConnected,
    )

    def __init__(
        self,
        pool: _Pool | None = None,
        *,
        connect: AsyncConnectionFactory | None = None,
        table: str = _sql.DEFAULT_TABLE,
        name: str | None = None,
        timeout: float = _deadline.DEFAULT_TIMEOUT,
    ) -> None:
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        self._timeout = timeout
        self._wait = timeout  # for a pooled connection; from_url's pool_timeout
        self._watchdog = _deadline.Watchdog(timeout)
        self._source: _Pool | AsyncConnectionFactory
        if pool is not None and connect is not None:
            raise ConfigurationError("PostgreSQLStore takes a pool or a connect factory, not both")
        if pool is not None:
            self._source = pool
        elif connect is not None:
            self._source = connect
        else:
            raise ConfigurationError("PostgreSQLStore needs a pool or a connect factory")
        parts = _sql.split_table(table)
        self.table = table
        self._sql = _SQL.render(
            table=sql.Identifier(*parts).as_string(None),
            index=sql.Identifier(parts[-1] + "_expires_idx").as_string(None),
        )
        # from_url's pool; a pool passed in is the caller's to open and close.
        self._pool: _pool.AsyncPool[_Conn] | None = None
        if name is None:
            conninfo = pool.conninfo if pool is not None else None
            name = _name_from_conninfo(conninfo if isinstance(conninfo, str) else None, table)
        self.name = name

    @classmethod
    def from_url(cls, url: str) -> AsyncPostgreSQLStore:
        """Build a store and its pool from ``postgresql://user:password@host:port/db?...``.

        Options: ``table``, ``pool_size`` (10), ``timeout`` (5 s: the client-side deadline
        of each statement and of the wait for a pooled connection), ``pool_timeout`` (that
        wait alone, and the bound on connecting; ``timeout`` unless given),
        ``statement_timeout`` (seconds, enforced by the server; off unless given, since
        PgBouncer refuses the startup option it needs). Any other parameter goes to libpq;
        ``connect_timeout`` defaults to ``timeout`` in whole seconds, at least 2 (libpq's
        rule). Connections are opened on first use, by the request that needs one.
        """
        options, rest = _sql.url_options(url, ("postgresql", "postgres"), _URL_OPTIONS)
        params = dict(rest)  # values still percent-encoded: libpq decodes them itself
        timeout = float(options.get("timeout", _deadline.DEFAULT_TIMEOUT))
        params.setdefault("connect_timeout", str(max(2, math.ceil(timeout))))
        if "statement_timeout" in options:
            milliseconds = int(float(options["statement_timeout"]) * 1000)
            extra = f"-c statement_timeout={milliseconds}"
            given = unquote(params.get("options", ""))
            params["options"] = quote(f"{given} {extra}" if given else extra, safe="")
        parts = urlsplit(url)
        query = "&".join(f"{name}={value}" for name, value in params.items())
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        try:
            conninfo_to_dict(conninfo)  # libpq's own check, so a typo fails here, not later
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"invalid PostgreSQL store URL: {exc}") from None
        table = str(options.get("table", _sql.DEFAULT_TABLE))
        name = _name_from_conninfo(conninfo, table)
        wait = float(options.get("pool_timeout", timeout))

        async def connect() -> _Conn:
            return await _postgresql_pool.connect(conninfo, wait)

        store = cls(connect=connect, table=table, name=name, timeout=timeout)
        store._wait = wait
        store._pool = _pool.AsyncPool(
            connect,
            size=int(options.get("pool_size", 10)),
            timeout=wait,
            alive=_postgresql_pool.alive,
            close=_postgresql_pool.close,
            abandon=_postgresql_pool.abandon,
            lost=_postgresql_pool.lost,
            # A refusal by the server (a lock or statement timeout, say) leaves it usable.
            usable_after=(psycopg.Error,),
            closed_error=lambda: psycopg_pool.PoolClosed(f"the store {name} is closed"),
        )
        return store

    async def _run(
        self,
        query: str,
        params: dict[str, Any] | None,
        fetch: bool = False,
        binary: bool = False,
        prepare: bool | None = None,
    ) -> tuple[int, Any]:
        """Run one statement in autocommit mode: its row count, and its first row if ``fetch``.

        Every operation's one path, kept short: a connection from the pool (waiting at most
        ``pool_timeout``), the statement on the connection's own cursor under the watchdog's
        deadline, the connection back (``pool.connection()`` would also commit, and costs more).
        """
        own = self._pool
        if own is None:
            return await self._run_given(query, params, fetch, binary, prepare)
        conn = await own.get()
        token = self._watchdog.arm(conn.pgconn.socket)
        try:
            cur = await _cursor(conn).execute(query, params, prepare=prepare, binary=binary)
            result = cur.rowcount, await cur.fetchone() if fetch else None
        except BaseException as exc:
            cut = self._watchdog.disarm(token)
            await own.failed(conn, exc)  # a cut or dead connection is closed, with the idle ones
            if cut and isinstance(exc, psycopg.OperationalError):
                raise self._overdue() from exc
            raise
        if self._watchdog.disarm(token):  # cut as its reply came in: not to be used again
            await own.failed(conn, self._overdue())
        else:
            await own.put(conn)
        return result

    async def _run_given(
        self,
        query: str,
        params: dict[str, Any] | None,
        fetch: bool,
        binary: bool,
        prepare: bool | None,
    ) -> tuple[int, Any]:
        """:meth:`_run` on a pool or a connection factory passed in."""
        pool = self._source
        if not isinstance(pool, psycopg_pool.AsyncConnectionPool):
            # A factory's connection lives for one statement, so its mode need not be
            # restored; without autocommit, BEGIN and COMMIT would cost two more round trips.
            async with await pool() as conn:
                token = self._watchdog.arm(conn.pgconn.socket)
                try:
                    if not conn.autocommit:
                        await conn.set_autocommit(True)
                    cur = await conn.execute(query, params, prepare=prepare, binary=binary)
                except psycopg.OperationalError as exc:
                    if self._watchdog.disarm(token):
                        raise self._overdue() from exc
                    raise
                self._watchdog.disarm(token)  # the connection is closed next in any case
                return cur.rowcount, await cur.fetchone() if fetch else None
        conn = await pool.getconn(self._wait)
        token = self._watchdog.arm(conn.pgconn.socket)
        try:
            switch = not conn.autocommit
            if switch:
                await conn.set_autocommit(True)
            try:
                cur = await _cursor(conn).execute(query, params, prepare=prepare, binary=binary)
                result = cur.rowcount, await cur.fetchone() if fetch else None
            finally:
                if switch and not conn.closed:
                    await conn.set_autocommit(False)
        except psycopg.OperationalError as exc:
            cut = self._watchdog.disarm(token)
            await pool.putconn(conn)
            if cut:  # no check of the idle ones: they would wait for a frozen server
                raise self._overdue() from exc
            if conn.broken:
                # One dead connection usually means the server restarted and every idle one
                # is dead too: test them now, so the next request gets a live connection.
                await pool.check()
            raise
        except BaseException:
            self._watchdog.disarm(token)
            await pool.putconn(conn)
            raise
        if self._watchdog.disarm(token):
            await conn.close()  # cut as its reply came in: not to be used again
        await pool.putconn(conn)
        return result

    def _overdue(self) -> _deadline.DeadlineExceeded:
        return _deadline.DeadlineExceeded(
            f"no reply within {self._timeout:g} s (the store's timeout); connection closed"
        )

    async def create_tables(self) -> None:
        """Create the table and its expiry index if they do not exist; safe from several
        processes at once (every worker of a server on its first request)."""
        # Two CREATE TABLE IF NOT EXISTS can both find no table, and one then fails on the
        # catalog's unique index: an advisory lock keyed by the table makes them take turns.
        # Sent without parameters, the statements go as one simple query, which PostgreSQL
        # runs as one transaction: the lock holds to its end.
        lock = zlib.crc32(f"coatcheck:create_tables:{self.table}".encode())
        statements = [f"SELECT pg_advisory_xact_lock({lock})", *self._sql.schema]
        await self._run(";".join(statements), None, prepare=False)

    async def drop_tables(self) -> None:
        """Drop the table, if it exists, with every session in it."""
        await self._run(self._sql.drop, None)

    async def load(self, op: Load) -> LoadResult:
        key, lock = op.key, op.lock
        _sql.check_key(key)
        if lock is None:
            row = (await self._run(self._sql.load, {"key": key}, True, True))[1]
            return None if row is None else Record(*row)
        row = (await self._run(self._sql.lock, _sql.lock_params(op, lock), True, True))[1]
        if row is None:
            return None
        got, payload, version, accessed_at, expires_at = row
        return Record(payload, version, accessed_at, expires_at) if got else LOCKED

    async def create(self, op: Create) -> bool:
        return (await self._run(self._sql.create, _sql.create_params(op)))[0] == 1

    async def update(self, op: Update) -> int | None:
        row = (await self._run(self._sql.update, _sql.update_params(op), True))[1]
        return None if row is None else int(row[0])

    async def touch(self, op: Touch) -> bool:
        return (await self._run(self._sql.touch, _sql.touch_params(op)))[0] == 1

    async def unlock(self, op: Unlock) -> None:
        _sql.check_key(op.key)
        await self._run(self._sql.unlock, {"key": op.key, "token": op.token})

    async def delete(self, op: Delete) -> bool:
        _sql.check_key(op.key)
        params = {"key": op.key, "expected": op.expected_version}
        return (await self._run(self._sql.delete, params))[0] > 0

    async def clear_expired(self, op: ClearExpired) -> int:
        """Delete expired records in batches of :data:`~coatcheck.stores._sql.CLEAR_BATCH`.

        Each batch is its own short transaction and skips rows other requests hold locked.
        """
        removed = 0
        params = {"now": op.now, "limit": _sql.CLEAR_BATCH}
        while True:
            deleted = (await self._run(self._sql.clear_batch, params))[0]
            removed += deleted
            if deleted < _sql.CLEAR_BATCH:
                return removed

    async def count(self, now: float) -> int | None:
        row = (await self._run(self._sql.count, {"now": now}, True))[1]
        return 0 if row is None else int(row[0])

    async def stats(self, now: float) -> StoreStats:
        row = (await self._run(self._sql.stats, {"now": now}, True))[1]
        if row is None:
            return StoreStats(0, 0, 0)
        return StoreStats(int(row[0]), int(row[1]), int(row[2]))

    async def aclose(self) -> None:
        """Close the store's own connections (those of other owners are abandoned); a pool
        passed in stays open."""
        if self._pool is not None:
            await self._pool.aclose()


def _name_from_conninfo(conninfo: str | None, table: str) -> str:
    if conninfo is None:
        return f"postgresql://(connection factory)/?table={table}"
    info = conninfo_to_dict(conninfo)
    user, host, port, db = (_str_or_none(info.get(k)) for k in ("user", "host", "port", "dbname"))
    return _sql.describe("postgresql", user, host, port, db, table)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
