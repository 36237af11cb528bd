"""What the PostgreSQL and MySQL stores share: names, URL options, every statement they run, and
the connection pools they keep.

The statement text for both dialects lives here, next to each other, so the two schemas and
their one-round-trip tricks can be read and compared in one place. Statements are templates:
``{table}`` (and ``{index}``) are filled in once per store with a quoted, validated identifier;
values always travel as driver parameters (``%(name)s``, which psycopg and PyMySQL both use).
"""

from __future__ import annotations

import asyncio
import re
import select
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from ..errors import ConfigurationError

__all__ = [
    "CLEAR_BATCH",
    "DEFAULT_TABLE",
    "MYSQL",
    "POSTGRESQL",
    "AsyncPool",
    "MySQLAddress",
    "Option",
    "Pool",
    "PoolTimeout",
    "Statements",
    "check_key",
    "describe",
    "quiet",
    "split_table",
    "url_options",
    "within",
]

DEFAULT_TABLE = "coatcheck_sessions"

# Rows deleted per statement by clear_expired: each batch is its own short transaction, so a
# table with millions of expired rows never holds its locks for long.
CLEAR_BATCH = 1000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


def split_table(table: str) -> tuple[str, ...]:
    """Validate ``table`` or ``schema.table`` and return its parts.

    Parts are letters, digits and underscores, at most 48 characters each (PostgreSQL names
    the expiry index after the table, within its 63-character limit).
    """
    parts = tuple(table.split("."))
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ConfigurationError(
            f"table name {table!r} must be 'name' or 'schema.name', each part of letters, "
            "digits and underscores (at most 48), not starting with a digit"
        )
    return parts


def check_key(key: str) -> None:
    """Refuse keys no SQL column here can hold exactly (the core always sends 64 hex digits)."""
    if not (0 < len(key) <= 64 and key.isascii() and key.isprintable()):
        raise ValueError("store keys are 1 to 64 printable ASCII characters")


class PoolTimeout(TimeoutError):
    """No pooled connection became free within the pool's timeout."""


Option = int | float | str


def url_options(
    url: str, schemes: tuple[str, ...], known: Mapping[str, type[Option]]
) -> tuple[dict[str, Option], list[tuple[str, str]]]:
    """Split a store URL's query string into coatcheck's options and the rest.

    ``known`` maps option names to ``int``, ``float`` or ``str``; numbers must be positive. A
    bad value raises :class:`~coatcheck.errors.ConfigurationError` naming the option (never the
    URL, which may hold a password). The rest come back as ``(name, value)`` with the value
    still percent-encoded, so a driver that decodes them itself sees them exactly as given.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        raise ConfigurationError(f"expected a {' or '.join(schemes)} URL, got {parts.scheme!r}")
    ours: dict[str, Option] = {}
    rest: list[tuple[str, str]] = []
    for pair in filter(None, parts.query.split("&")):
        raw_name, _, raw_value = pair.partition("=")
        name, value = unquote(raw_name), unquote(raw_value)
        kind = known.get(name)
        if kind is None:
            rest.append((name, raw_value))
        elif kind is str:
            ours[name] = value
        else:
            try:
                number = kind(value)
            except ValueError:
                raise ConfigurationError(
                    f"store URL option {name}={value!r} is not {kind.__name__}"
                ) from None
            if not (isinstance(number, (int, float)) and number > 0):
                raise ConfigurationError(f"store URL option {name} must be positive")
            ours[name] = number
    return ours, rest


def describe(
    scheme: str,
    user: str | None,
    host: str | None,
    port: int | str | None,
    database: str | None,
    table: str,
) -> str:
    """A store ``name`` like ``postgresql://app@db:5432/main?table=sessions``, never a password."""
    where = f"{user}@" if user else ""
    where += host or ""
    where += f":{port}" if port else ""
    return f"{scheme}://{where}/{database or ''}?table={table}"


@dataclass(frozen=True, slots=True)
class MySQLAddress:
    """Where and how the MySQL store connects when it makes its own connections."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str | None = None
    password: str = ""
    database: str | None = None
    unix_socket: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Option]) -> MySQLAddress:
        """The address part of a ``mysql://`` URL plus its ``unix_socket`` and timeout options."""
        parts = urlsplit(url)
        unix_socket = options.get("unix_socket")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else "",
            database=unquote(parts.path.lstrip("/")) or None,
            unix_socket=None if unix_socket is None else str(unix_socket),
            connect_timeout=float(options.get("connect_timeout", 5.0)),
            read_timeout=float(options.get("read_timeout", 10.0)),
            write_timeout=float(options.get("write_timeout", 10.0)),
        )

    def __repr__(self) -> str:
        # Keep the password out of tracebacks and logs.
        return f"MySQLAddress(host={self.host!r}, port={self.port}, user={self.user!r}, ...)"


@dataclass(frozen=True, slots=True)
class Statements:
    """The statement templates of one SQL dialect; each store documents how it reads results."""

    schema: tuple[str, ...]  # create_tables(), in order; idempotent
    drop: str
    load: str
    # Takes the per-session lock. PostgreSQL: and returns the record in the same statement;
    # MySQL (an UPDATE cannot return rows there): ``load`` follows, in the same request.
    lock: str
    create: str
    update: str
    touch: str
    unlock: str
    delete: str
    clear_batch: str
    count: str
    stats: str

    def render(self, **identifiers: str) -> Statements:
        """Fill in ``{table}`` and friends with already quoted, validated identifiers."""
        return Statements(
            tuple(t.format(**identifiers) for t in self.schema),
            *(getattr(self, f.name).format(**identifiers) for f in fields(self)[1:]),
        )


# Column "key" is the contract's key (64 hex digits); TEXT COLLATE "C" compares bytes, which
# is both exact and the cheapest comparison PostgreSQL has.
POSTGRESQL = Statements(
    schema=(
        """
        CREATE TABLE IF NOT EXISTS {table} (
            key TEXT COLLATE "C" PRIMARY KEY,
            payload BYTEA NOT NULL,
            version BIGINT NOT NULL,
            accessed_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            lock_token TEXT,
            lock_expires DOUBLE PRECISION
        )""",
        "CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at)",
    ),
    drop="DROP TABLE IF EXISTS {table}",
    load="SELECT payload, version, accessed_at, expires_at FROM {table} WHERE key = %(key)s",
    # One statement: take the lock when free, expired or ours; the second branch only runs
    # when nothing was taken and tells "locked by another" (a row with got = false) from
    # "missing" (no row). A LOCKED outcome writes nothing.
    lock="""
        WITH taken AS (
            UPDATE {table} SET lock_token = %(token)s, lock_expires = %(until)s
            WHERE key = %(key)s
              AND (lock_token IS NULL OR lock_token = %(token)s OR lock_expires <= %(now)s)
            RETURNING payload, version, accessed_at, expires_at
        )
        SELECT true AS got, payload, version, accessed_at, expires_at FROM taken
        UNION ALL
        SELECT false, NULL, NULL, NULL, NULL FROM {table}
        WHERE key = %(key)s AND NOT EXISTS (SELECT FROM taken)""",
    create="""
        INSERT INTO {table} (key, payload, version, accessed_at, expires_at)
        VALUES (%(key)s, %(payload)s, 1, %(accessed_at)s, %(expires_at)s)
        ON CONFLICT (key) DO NOTHING""",
    update="""
        UPDATE {table} SET payload = %(payload)s, accessed_at = %(accessed_at)s,
            expires_at = %(expires_at)s, version = version + 1,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END
        WHERE key = %(key)s
          AND (%(expected)s::bigint IS NULL OR version = %(expected)s::bigint)
        RETURNING version""",
    touch="""
        UPDATE {table} SET accessed_at = %(accessed_at)s, expires_at = %(expires_at)s,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END
        WHERE key = %(key)s""",
    unlock="""
        UPDATE {table} SET lock_token = NULL, lock_expires = NULL
        WHERE key = %(key)s AND lock_token = %(token)s""",
    delete="DELETE FROM {table} WHERE key = %(key)s",
    # SKIP LOCKED: a batch never waits behind a request that is writing an expired row.
    clear_batch="""
        DELETE FROM {table} WHERE key IN (
            SELECT key FROM {table} WHERE expires_at <= %(now)s
            LIMIT %(limit)s FOR UPDATE SKIP LOCKED)""",
    count="SELECT count(*) FROM {table} WHERE expires_at > %(now)s",
    stats="""
        SELECT count(*) FILTER (WHERE expires_at > %(now)s),
               count(*) FILTER (WHERE expires_at <= %(now)s),
               coalesce(sum(octet_length(payload)), 0)
        FROM {table}""",
)

# VARBINARY rather than an ascii_bin VARCHAR: binary strings compare exactly, while every
# MySQL/MariaDB VARCHAR collation but the NO PAD ones ignores trailing spaces ('k' = 'k ').
# MySQL numbers "changed" rows, so connections need CLIENT.FOUND_ROWS for touch to see a row
# whose times did not move; LAST_INSERT_ID(expr) hands the new version back in the OK packet.
MYSQL = Statements(
    schema=(
        """
        CREATE TABLE IF NOT EXISTS {table} (
            `key` VARBINARY(64) NOT NULL,
            payload LONGBLOB NOT NULL,
            version BIGINT NOT NULL,
            accessed_at DOUBLE NOT NULL,
            expires_at DOUBLE NOT NULL,
            lock_token VARBINARY(255) NULL,
            lock_expires DOUBLE NULL,
            PRIMARY KEY (`key`),
            KEY {index} (expires_at)
        ) ENGINE=InnoDB""",
    ),
    drop="DROP TABLE IF EXISTS {table}",
    load="SELECT payload, version, accessed_at, expires_at FROM {table} WHERE `key` = %(key)s",
    # Then ``load``, sent with it as one multi-statement request: the UPDATE's row count says
    # whether the lock is ours (the row may still be missing); a LOCKED outcome writes nothing.
    lock="""
        UPDATE {table} SET lock_token = %(token)s, lock_expires = %(until)s
        WHERE `key` = %(key)s
          AND (lock_token IS NULL OR lock_token = %(token)s OR lock_expires <= %(now)s)""",
    # A plain INSERT: a duplicate key is an error (1062) the store turns into False. INSERT
    # IGNORE would also hide truncation, and ON DUPLICATE KEY UPDATE reports 1 row under
    # FOUND_ROWS whether it inserted or not.
    create="""
        INSERT INTO {table} (`key`, payload, version, accessed_at, expires_at)
        VALUES (%(key)s, %(payload)s, 1, %(accessed_at)s, %(expires_at)s)""",
    # Assignments run left to right in MySQL: lock_token reads its old value, version is last.
    update="""
        UPDATE {table} SET payload = %(payload)s, accessed_at = %(accessed_at)s,
            expires_at = %(expires_at)s,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END,
            version = LAST_INSERT_ID(version + 1)
        WHERE `key` = %(key)s AND (%(expected)s IS NULL OR version = %(expected)s)""",
    touch="""
        UPDATE {table} SET accessed_at = %(accessed_at)s, expires_at = %(expires_at)s,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END
        WHERE `key` = %(key)s""",
    unlock="""
        UPDATE {table} SET lock_token = NULL, lock_expires = NULL
        WHERE `key` = %(key)s AND lock_token = %(token)s""",
    delete="DELETE FROM {table} WHERE `key` = %(key)s",
    clear_batch="DELETE FROM {table} WHERE expires_at <= %(now)s LIMIT %(limit)s",
    count="SELECT COUNT(*) FROM {table} WHERE expires_at > %(now)s",
    stats="""
        SELECT COALESCE(SUM(expires_at > %(now)s), 0), COALESCE(SUM(expires_at <= %(now)s), 0),
               COALESCE(SUM(LENGTH(payload)), 0)
        FROM {table}""",
)


# -- connection pools ------------------------------------------------------------------------
#
# MySQLStore keeps the connections it makes in one of these (PyMySQL has no pool, and the sync
# and async flavours should behave alike); PostgreSQLStore uses psycopg_pool, the pool made for
# psycopg. They are small on purpose, since every operation
# checks a connection out and back in: two short critical sections and one poll of the idle
# connection's socket (no round trip), where a threading.Semaphore with a context manager
# costs about 10 µs (benchmarks/stores.py). The most recently returned connection is reused
# first, so a quiet site keeps one warm connection rather than cycling through all of them.
# The connection-specific steps (is it alive, how to close it, which errors lose it) are
# parameters, which keeps the pool free of driver imports.

C = TypeVar("C")


class Pool(Generic[C]):
    """At most ``size`` connections opened by ``connect``, shared by threads.

    :meth:`get` reuses the most recently returned idle connection that ``alive`` (a check
    without a round trip) accepts, closing dead ones, or opens a new one; it waits at most
    ``timeout`` seconds for a connection to come back when ``size`` are out, then raises
    :class:`PoolTimeout`. :meth:`put` returns a connection; :meth:`failed` returns one whose
    statement raised ``exc``: it is kept when ``exc`` is one of ``usable_after`` (a refusal
    by the server) and ``lost(conn, exc)`` is false, and closed otherwise; when ``lost``, the
    idle connections are closed too (one dead connection usually means the server restarted).
    ``close`` closes one connection and never raises; ``closed_error`` is raised by ``get``
    once the pool is closed.
    """

    def __init__(
        self,
        connect: Callable[[], C],
        *,
        size: int,
        timeout: float,
        alive: Callable[[C], bool],
        close: Callable[[C], None],
        lost: Callable[[C, BaseException], bool],
        usable_after: tuple[type[BaseException], ...],
        closed_error: Callable[[], BaseException],
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._alive = alive
        self._close = close
        self._lost = lost
        self._usable_after = usable_after
        self._closed_error = closed_error
        self._idle: deque[C] = deque()
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._out = 0  # connections checked out (or being opened)
        self._waiting = 0
        self._closed = False

    def get(self) -> C:
        """Check a connection out."""
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._out >= self._size:
                self._wait()
            self._out += 1
        try:
            idle = self._idle
            while idle:
                try:
                    conn = idle.pop()
                except IndexError:  # another thread took the last one
                    break
                if self._alive(conn):
                    return conn
                self._close(conn)
            return self._connect()
        except BaseException:
            self._check_in(None)
            raise

    def _wait(self) -> None:
        # Called holding the lock; returns holding it, with a connection free to take.
        deadline = time.monotonic() + self._timeout
        self._waiting += 1
        try:
            while self._out >= self._size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolTimeout(f"no connection was free within {self._timeout:g} s")
                self._returned.wait(remaining)
                if self._closed:
                    raise self._closed_error()
        finally:
            self._waiting -= 1

    def _check_in(self, conn: C | None) -> None:
        with self._lock:
            self._out -= 1
            if self._waiting:
                self._returned.notify()
            if conn is None:
                return
            if not self._closed:
                self._idle.append(conn)
                return
        self._close(conn)

    def put(self, conn: C) -> None:
        """Return a connection checked out with :meth:`get`."""
        self._check_in(conn)

    def failed(self, conn: C, exc: BaseException) -> None:
        """Return a connection whose statement raised ``exc`` (see the class docstring)."""
        lost = self._lost(conn, exc)
        if not lost and isinstance(exc, self._usable_after):
            self._check_in(conn)
            return
        self._close(conn)
        self._check_in(None)
        if lost:
            self._drop_idle()

    @contextmanager
    def connection(self) -> Iterator[C]:
        """:meth:`get`, then :meth:`put` or :meth:`failed`."""
        conn = self.get()
        try:
            yield conn
        except BaseException as exc:
            self.failed(conn, exc)
            raise
        self.put(conn)

    def _drop_idle(self) -> None:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return
            self._close(conn)

    def close(self) -> None:
        """Close the idle connections; those checked out are closed when they come back."""
        with self._lock:
            self._closed = True
            self._returned.notify_all()
        self._drop_idle()


class AsyncPool(Generic[C]):
    """:class:`Pool` for asyncio: ``connect`` and ``close`` are coroutines, and so are
    :meth:`get`, :meth:`put`, :meth:`failed` and :meth:`aclose`."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        *,
        size: int,
        timeout: float,
        alive: Callable[[C], bool],
        close: Callable[[C], Awaitable[None]],
        lost: Callable[[C, BaseException], bool],
        usable_after: tuple[type[BaseException], ...],
        closed_error: Callable[[], BaseException],
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._alive = alive
        self._close = close
        self._lost = lost
        self._usable_after = usable_after
        self._closed_error = closed_error
        self._idle: deque[C] = deque()
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def get(self) -> C:
        """Check a connection out."""
        if self._slots.locked():
            try:
                await within(self._slots.acquire(), self._timeout)
            except asyncio.TimeoutError:
                raise PoolTimeout(f"no connection was free within {self._timeout:g} s") from None
        else:
            await self._slots.acquire()
        if self._closed:
            self._slots.release()
            raise self._closed_error()
        try:
            idle = self._idle
            while idle:
                conn = idle.pop()
                if self._alive(conn):
                    return conn
                await self._close(conn)
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def put(self, conn: C) -> None:
        """Return a connection checked out with :meth:`get`."""
        self._slots.release()
        if self._closed:
            await self._close(conn)
        else:
            self._idle.append(conn)

    async def failed(self, conn: C, exc: BaseException) -> None:
        """Return a connection whose statement raised ``exc`` (see :class:`Pool`)."""
        lost = self._lost(conn, exc)
        if not lost and isinstance(exc, self._usable_after):
            await self.put(conn)
            return
        self._slots.release()
        await self._close(conn)
        if lost:
            await self._drop_idle()

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

    async def _drop_idle(self) -> None:
        while self._idle:
            await self._close(self._idle.pop())

    async def aclose(self) -> None:
        """Close the idle connections; those checked out are closed when they come back."""
        self._closed = True
        await self._drop_idle()


if sys.version_info >= (3, 11):

    async def within(work: Awaitable[Any], timeout: float) -> Any:
        """Await ``work`` for at most ``timeout`` seconds (``asyncio.TimeoutError`` after)."""
        async with asyncio.timeout(timeout):
            return await work

else:

    async def within(work: Awaitable[Any], timeout: float) -> Any:
        """Await ``work`` for at most ``timeout`` seconds (``asyncio.TimeoutError`` after)."""
        return await asyncio.wait_for(work, timeout)


_POLLER = "_coatcheck_poller"


def quiet(conn: object, fileno: int) -> bool:
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
