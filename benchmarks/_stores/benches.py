"""One bench per store and flavour: the store, its raw floor, and both again behind a counter.

:func:`open_bench` builds them for either flavour from one description per store (the class
names differ by the flavour's prefix; calls and closes go through the flavour) and removes
every trace afterwards: the table is dropped, the Redis keys under the run's prefix deleted,
the memcached keys it wrote deleted one by one (memcached cannot list them). :data:`FLOORS`
opens the server stores' raw floors in each flavour, where the drivers differ (psycopg's two
connection classes, PyMySQL and aiomysql, redis-py and ``redis.asyncio``, pymemcache and
aiomcache).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _flavours import Flavour

import coatcheck.stores

from .floors import (
    AsyncRawMemcached,
    AsyncRawMySQL,
    AsyncRawPostgreSQL,
    RawFiles,
    RawMemcached,
    RawMemory,
    RawMySQL,
    RawPostgreSQL,
    RawRedis,
    RawSQLite,
)
from .roundtrips import Counter, ListCounter, RelayCounter, counting_fsyncs
from .servers import MEMCACHED_URL, MYSQL_URL, PG_URL, REDIS_URL, address, with_port
from .workload import ISSUED, unique

__all__ = ["Bench", "open_bench"]


@dataclass
class Bench:
    """What one store's measurement needs; ``probe`` and ``probe_raw`` are the counted pair."""

    name: str
    store: Any
    raw: Any
    probe: Any
    probe_raw: Any
    counter: Counter
    batch: int = 1  # calls per timed sample
    probe_context: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext


class _Build:
    """What a store's builder works with: the flavour, a scratch directory, a cleanup stack."""

    def __init__(self, flavour: Flavour, tmp: Path, stack: AsyncExitStack) -> None:
        self.flavour, self.tmp, self.stack = flavour, tmp, stack
        self.u = unique()
        self.floors = FLOORS[flavour.name]

    def store_class(self, name: str) -> Any:
        return getattr(coatcheck.stores, self.flavour.prefix + name)

    def closing(self, *things: Any) -> None:
        """Close ``things`` on the way out, the last named first."""
        for thing in things:
            self.stack.push_async_callback(self.flavour.close, thing)

    def later(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` (through the flavour) on the way out."""
        self.stack.push_async_callback(self.flavour.call, fn)


async def _memory(b: _Build) -> Bench:
    cls, inline = b.store_class("MemoryStore"), b.flavour.inline
    return Bench("memory", cls(), inline(RawMemory()), cls(), inline(RawMemory()), Counter(), 20)


async def _file(b: _Build) -> Bench:
    cls, blocking = b.store_class("FileStore"), b.flavour.blocking
    counter = ListCounter("fsyncs")
    store, probe = cls(b.tmp / f"files-{b.u}"), cls(b.tmp / f"files-{b.u}")
    raw = blocking(RawFiles(str(b.tmp / f"raw-{b.u}")))
    probe_raw = blocking(RawFiles(str(b.tmp / f"raw-{b.u}")))
    b.closing(probe_raw, raw, probe, store)
    return Bench(
        "file", store, raw, probe, probe_raw, counter,
        probe_context=lambda: counting_fsyncs(counter),
    )  # fmt: skip


async def _sqlite(b: _Build) -> Bench:
    cls, blocking = b.store_class("SQLiteStore"), b.flavour.blocking
    path, table = b.tmp / f"sessions-{b.u}.db", f"cc_bench_{b.u}"
    store = cls(path, table=table)
    b.closing(store)
    await b.flavour.call(store.create_tables)
    probe = cls(path, table=table)
    counter = ListCounter("statements")
    _trace_sqlite(probe._db, counter)
    probe_sqlite = RawSQLite(str(path), table)
    probe_sqlite.conn.set_trace_callback(counter.trace)
    raw, probe_raw = blocking(RawSQLite(str(path), table)), blocking(probe_sqlite)
    b.closing(probe_raw, raw, probe)
    return Bench("sqlite", store, raw, probe, probe_raw, counter)


def _trace_sqlite(db: Any, counter: ListCounter) -> None:
    """Trace every connection the store's pool opens (a private hook: fine for a measurement)."""
    real_open = db._open

    def traced_open() -> sqlite3.Connection:
        conn: sqlite3.Connection = real_open()
        conn.set_trace_callback(counter.trace)
        return conn

    db._open = traced_open


# -- the server stores' raw floors, each flavour: (store, table or prefix, url) -> floor --------


def _redis_kwargs(asynchronous: bool) -> dict[str, Any]:
    """The connection settings ``RedisStore(url=...)`` uses (5 s timeouts, one quick retry)."""
    import redis.exceptions
    from redis.backoff import NoBackoff

    if asynchronous:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry  # type: ignore[assignment]
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
    return {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, "retry": retry}


class SyncFloors:
    """The sync flavour's server floors (coroutines only so that one harness awaits both)."""

    @staticmethod
    async def postgresql(store: Any, table: str, url: str) -> RawPostgreSQL:
        # A private hook (fine for a measurement): a connection as the store's pool opens one.
        conn = store._source()
        return RawPostgreSQL(conn, table)

    @staticmethod
    async def mysql(store: Any, table: str, url: str) -> RawMySQL:
        # A private hook (fine for a measurement): a connection as the store's pool opens one.
        conn = store._connect()
        return RawMySQL(conn, conn.cursor(), table)

    @staticmethod
    async def redis(store: Any, prefix: str, url: str) -> RawRedis:
        import redis

        return RawRedis(redis.Redis.from_url(url, **_redis_kwargs(False)), prefix)

    @staticmethod
    async def memcached(store: Any, prefix: str, url: str) -> RawMemcached:
        from pymemcache.client.base import Client

        client = Client(
            address(url, 11211), connect_timeout=5.0, timeout=5.0, no_delay=True,
            default_noreply=False,
        )  # fmt: skip
        return RawMemcached(client, prefix)


class AsyncFloors:
    """The async flavour's server floors, on the async drivers."""

    @staticmethod
    async def postgresql(store: Any, table: str, url: str) -> AsyncRawPostgreSQL:
        conn = await store._source()
        return AsyncRawPostgreSQL(conn, table)

    @staticmethod
    async def mysql(store: Any, table: str, url: str) -> AsyncRawMySQL:
        conn = await store._connect()
        return AsyncRawMySQL(conn, await conn.cursor(), table)

    @staticmethod
    async def redis(store: Any, prefix: str, url: str) -> RawRedis:
        import redis.asyncio

        return RawRedis(redis.asyncio.Redis.from_url(url, **_redis_kwargs(True)), prefix)

    @staticmethod
    async def memcached(store: Any, prefix: str, url: str) -> AsyncRawMemcached:
        import aiomcache

        host, port = address(url, 11211)
        return AsyncRawMemcached(aiomcache.Client(host, port, pool_size=10, pool_minsize=1), prefix)


FLOORS: dict[str, type[SyncFloors] | type[AsyncFloors]] = {"sync": SyncFloors, "async": AsyncFloors}


def _sql_server(name: str, class_name: str, base: str, port: int) -> Builder:
    """PostgreSQL or MySQL: a table of the run's own, dropped afterwards."""

    async def build(b: _Build) -> Bench:
        cls, table = b.store_class(class_name), f"cc_bench_{b.u}"
        url = f"{base}?table={table}"
        store = cls.from_url(url)
        b.closing(store)
        await b.flavour.call(store.create_tables)
        b.later(store.drop_tables)
        relay = RelayCounter(address(base, port), name)
        b.stack.callback(relay.close)
        probe = cls.from_url(with_port(url, relay.port))
        b.closing(probe)
        open_floor = getattr(b.floors, name)
        raw, probe_raw = await open_floor(store, table, url), await open_floor(probe, table, url)
        b.closing(probe_raw, raw)
        return Bench(name, store, raw, probe, probe_raw, relay)

    return build


def _key_value(
    name: str,
    class_name: str,
    base: str,
    port: int,
    make: Callable[[Any, str, str], Any],
    cleanup: Callable[[str, list[str]], None],
) -> Builder:
    """Redis or memcached: keys under a prefix of the run's own, deleted afterwards."""

    async def build(b: _Build) -> Bench:
        cls, prefix, first = b.store_class(class_name), f"cc-bench-{b.u}:", len(ISSUED)
        b.stack.callback(lambda: cleanup(prefix, ISSUED[first:]))
        relay = RelayCounter(address(base, port), name)
        b.stack.callback(relay.close)
        relayed = with_port(base, relay.port)
        store, probe = make(cls, base, prefix), make(cls, relayed, prefix)
        b.closing(store, probe)
        open_floor = getattr(b.floors, name)
        raw = await open_floor(store, prefix, base)
        probe_raw = await open_floor(probe, prefix, relayed)
        b.closing(probe_raw, raw)
        return Bench(name, store, raw, probe, probe_raw, relay)

    return build


def _redis_cleanup(prefix: str, written: list[str]) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for k in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(k)
    finally:
        client.close()


def _memcached_cleanup(prefix: str, written: list[str]) -> None:
    """Delete every record (and lock) a run may have written under ``prefix``."""
    from pymemcache.client.base import Client

    client = Client(address(MEMCACHED_URL, 11211), timeout=5.0)
    try:
        names = [(prefix + k).encode() for k in written]
        names += [n + b":lock" for n in names]
        for start in range(0, len(names), 500):
            client.delete_many(names[start : start + 500], noreply=False)
    finally:
        client.close()


Builder = Callable[[_Build], Awaitable[Bench]]
BUILDERS: dict[str, Builder] = {
    "sqlite": _sqlite,
    "postgresql": _sql_server("postgresql", "PostgreSQLStore", PG_URL, 5432),
    "mysql": _sql_server("mysql", "MySQLStore", MYSQL_URL, 3306),
    "redis": _key_value(
        "redis", "RedisStore", REDIS_URL, 6379,
        lambda cls, url, prefix: cls(url=url, prefix=prefix), _redis_cleanup,
    ),
    "memcached": _key_value(
        "memcached", "MemcachedStore", MEMCACHED_URL, 11211,
        lambda cls, url, prefix: cls.from_url(f"{url}?prefix={prefix}"), _memcached_cleanup,
    ),
    "file": _file,
    "memory": _memory,
}  # fmt: skip


@asynccontextmanager
async def open_bench(name: str, tmp: Path, flavour: Flavour) -> AsyncIterator[Bench]:
    """Build the named store's bench in ``flavour``; remove every trace of it afterwards."""
    async with AsyncExitStack() as stack:
        yield await BUILDERS[name](_Build(flavour, tmp, stack))
