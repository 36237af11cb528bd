"""Raw floors: each store's own driver doing the least work with the store's effect.

A floor has ``key(storage_key)`` (the key in the driver's terms, made before timing) and
``load``, ``create``, ``update`` and ``touch`` of that key, writing the bytes the store writes.
A floor for an async driver returns the driver's coroutine, which the async flavour awaits; the
blocking floors (sqlite, files) and the in-process one run in the async flavour through
``Async.blocking`` and ``Async.inline`` (:mod:`_flavours`), as the async stores run theirs.
``benches.FLOORS`` opens the server stores' floors, in each flavour.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any, NamedTuple

from .workload import EXPIRES, NOW, PAYLOAD, TTL, TTL_MS, VALUE

__all__ = [
    "AsyncRawMemcached",
    "AsyncRawMySQL",
    "AsyncRawPostgreSQL",
    "RawFiles",
    "RawMemcached",
    "RawMemory",
    "RawMySQL",
    "RawPostgreSQL",
    "RawRedis",
    "RawSQLite",
    "statements",
]


class Statements(NamedTuple):
    load: str
    create: str
    update: str
    touch: str


_SQL = Statements(
    "SELECT payload, version, accessed_at, expires_at FROM {t} WHERE {key} = {p}",
    "INSERT{ignore} INTO {t} ({key}, payload, version, accessed_at, expires_at)"
    " VALUES ({p}, {p}, 1, {p}, {p}){on_conflict}",
    "UPDATE {t} SET payload = {p}, accessed_at = {p}, expires_at = {p}, version = version + 1"
    " WHERE {key} = {p}",
    "UPDATE {t} SET accessed_at = {p}, expires_at = {p} WHERE {key} = {p}",
)
_DO_NOTHING = {"ignore": "", "on_conflict": " ON CONFLICT (key) DO NOTHING"}
_DIALECTS: dict[str, dict[str, str]] = {
    "sqlite": {"p": "?", "key": "key", "quote": '"', **_DO_NOTHING},
    "postgresql": {"p": "%s", "key": "key", "quote": '"', **_DO_NOTHING},
    "mysql": {"p": "%s", "key": "`key`", "quote": "`", "ignore": " IGNORE", "on_conflict": ""},
}


def statements(dialect: str, table: str) -> Statements:
    """The four statements, as the store's own dialect and table spell them."""
    words = _DIALECTS[dialect]
    t = words["quote"] + table + words["quote"]
    return Statements(*(q.format(t=t, **words) for q in _SQL))


class _SQLFloor:
    """A SQL floor's key is the storage key."""

    def key(self, k: str) -> str:
        return k


class RawSQLite(_SQLFloor):
    """One sqlite3 connection opened as the store opens its own (WAL, synchronous=NORMAL)."""

    def __init__(self, path: str, table: str, timeout: float = 5.0) -> None:
        self.conn = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.q = statements("sqlite", table)

    def load(self, k: str) -> Any:
        return self.conn.execute(self.q.load, (k,)).fetchone()

    def create(self, k: str) -> Any:
        return self.conn.execute(self.q.create, (k, PAYLOAD, NOW, EXPIRES)).rowcount

    def update(self, k: str) -> Any:
        return self.conn.execute(self.q.update, (PAYLOAD, NOW, EXPIRES, k)).rowcount

    def touch(self, k: str) -> Any:
        return self.conn.execute(self.q.touch, (NOW, EXPIRES, k)).rowcount

    def close(self) -> None:
        self.conn.close()


class RawPostgreSQL(_SQLFloor):
    """One psycopg connection (the store pool's conninfo, autocommit), one reused cursor."""

    def __init__(self, conn: Any, table: str) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.q = statements("postgresql", table)

    def load(self, k: str) -> Any:
        self.cur.execute(self.q.load, (k,), prepare=True, binary=True)
        return self.cur.fetchone()

    def create(self, k: str) -> Any:
        return self.cur.execute(self.q.create, (k, PAYLOAD, NOW, EXPIRES), prepare=True).rowcount

    def update(self, k: str) -> Any:
        return self.cur.execute(self.q.update, (PAYLOAD, NOW, EXPIRES, k), prepare=True).rowcount

    def touch(self, k: str) -> Any:
        return self.cur.execute(self.q.touch, (NOW, EXPIRES, k), prepare=True).rowcount

    def close(self) -> None:
        self.conn.close()


class AsyncRawPostgreSQL(RawPostgreSQL):
    """:class:`RawPostgreSQL` on ``psycopg.AsyncConnection``."""

    async def load(self, k: str) -> Any:
        await self.cur.execute(self.q.load, (k,), prepare=True, binary=True)
        return await self.cur.fetchone()

    async def create(self, k: str) -> Any:
        cur = await self.cur.execute(self.q.create, (k, PAYLOAD, NOW, EXPIRES), prepare=True)
        return cur.rowcount

    async def update(self, k: str) -> Any:
        cur = await self.cur.execute(self.q.update, (PAYLOAD, NOW, EXPIRES, k), prepare=True)
        return cur.rowcount

    async def touch(self, k: str) -> Any:
        return (await self.cur.execute(self.q.touch, (NOW, EXPIRES, k), prepare=True)).rowcount

    async def aclose(self) -> None:
        await self.conn.close()


class RawMySQL(_SQLFloor):
    """One PyMySQL connection opened as the store opens its own (same flags and timeouts).

    PyMySQL has no server-side prepared statements: each statement goes as text.
    """

    def __init__(self, conn: Any, cursor: Any, table: str) -> None:
        self.conn, self.cur = conn, cursor
        self.q = statements("mysql", table)

    def load(self, k: str) -> Any:
        self.cur.execute(self.q.load, (k,))
        return self.cur.fetchone()

    def create(self, k: str) -> Any:
        return self.cur.execute(self.q.create, (k, PAYLOAD, NOW, EXPIRES))

    def update(self, k: str) -> Any:
        return self.cur.execute(self.q.update, (PAYLOAD, NOW, EXPIRES, k))

    def touch(self, k: str) -> Any:
        return self.cur.execute(self.q.touch, (NOW, EXPIRES, k))

    def close(self) -> None:
        self.conn.close()


class AsyncRawMySQL(RawMySQL):
    """One aiomysql connection opened as the store opens its own.

    aiomysql 0.3 cannot escape bytes under PyMySQL 1.2 (aio-libs/aiomysql#1080), so values are
    escaped here the way the store has to, and the statement goes as text.
    """

    def _sql(self, query: str, args: tuple[Any, ...]) -> str:
        escape = self.conn.escape
        return query % tuple(
            f"_binary X'{a.hex()}'" if isinstance(a, bytes) else escape(a) for a in args
        )

    async def load(self, k: str) -> Any:
        await self.cur.execute(self._sql(self.q.load, (k,)))
        return await self.cur.fetchone()

    async def create(self, k: str) -> Any:
        return await self.cur.execute(self._sql(self.q.create, (k, PAYLOAD, NOW, EXPIRES)))

    async def update(self, k: str) -> Any:
        return await self.cur.execute(self._sql(self.q.update, (PAYLOAD, NOW, EXPIRES, k)))

    async def touch(self, k: str) -> Any:
        return await self.cur.execute(self._sql(self.q.touch, (NOW, EXPIRES, k)))

    async def aclose(self) -> None:
        await self.cur.close()
        await self.conn.ensure_closed()


class _Prefixed:
    """A key-value floor: a ready client, and keys under the store's prefix."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix


class RawRedis(_Prefixed):
    """A redis-py client (sync or ``redis.asyncio``: the calls are the same); store-format keys."""

    def key(self, k: str) -> bytes:
        return f"{self.prefix}{{{k}}}".encode()

    def load(self, k: bytes) -> Any:
        return self.client.get(k)

    def create(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, nx=True, px=TTL_MS)

    def update(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, xx=True, px=TTL_MS)

    def touch(self, k: bytes) -> Any:
        return self.client.pexpire(k, TTL_MS)

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        await self.client.aclose()


class _Memcached(_Prefixed):
    def key(self, k: str) -> bytes:
        return (self.prefix + k).encode()


class RawMemcached(_Memcached):
    """One pymemcache ``Client`` (no pool) with the store's socket settings."""

    def load(self, k: bytes) -> Any:
        return self.client.get(k)

    def create(self, k: bytes) -> Any:
        return self.client.add(k, VALUE, expire=int(TTL), noreply=False)

    def update(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, expire=int(TTL), noreply=False)

    def touch(self, k: bytes) -> Any:
        return self.client.touch(k, expire=int(TTL), noreply=False)

    def close(self) -> None:
        self.client.close()


class AsyncRawMemcached(_Memcached):
    """An aiomcache ``Client`` with the store's pool settings (aiomcache always pools)."""

    def load(self, k: bytes) -> Any:
        return self.client.get(k)

    def create(self, k: bytes) -> Any:
        return self.client.add(k, VALUE, int(TTL))

    def update(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, int(TTL))

    def touch(self, k: bytes) -> Any:
        return self.client.touch(k, int(TTL))

    async def aclose(self) -> None:
        await self.client.close()


class RawFiles:
    """os calls in a directory of its own: read a file; write one durably and atomically."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        self.data = bytes(44) + PAYLOAD  # the store's header is 44 bytes

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> bytes:
        fd = os.open(k, os.O_RDONLY, dir_fd=self.dir_fd)
        try:
            return os.read(fd, 1 << 16)
        finally:
            os.close(fd)

    def write(self, k: str) -> None:
        d, tmp = self.dir_fd, k + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=d)
        try:
            os.write(fd, self.data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, k, src_dir_fd=d, dst_dir_fd=d)
        os.fsync(d)

    create = update = touch = write

    def close(self) -> None:
        os.close(self.dir_fd)


class RawMemory:
    """A dict of tuples under a ``threading.Lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, tuple[bytes, int, float, float]] = {}

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> Any:
        with self.lock:
            return self.data.get(k)

    def create(self, k: str) -> bool:
        with self.lock:
            if k in self.data:
                return False
            self.data[k] = (PAYLOAD, 1, NOW, EXPIRES)
            return True

    def update(self, k: str) -> Any:
        with self.lock:
            old = self.data.get(k)
            if old is None:
                return None
            self.data[k] = (PAYLOAD, old[1] + 1, NOW, EXPIRES)
            return old[1] + 1

    def touch(self, k: str) -> bool:
        with self.lock:
            old = self.data.get(k)
            if old is None:
                return False
            self.data[k] = (old[0], old[1], NOW, EXPIRES)
            return True

    def close(self) -> None:
        self.data.clear()
