"""Every store the contract suite runs against, built fresh and isolated for each test.

To add a store: put its name in ``BACKENDS`` and a branch in ``async_store_for`` that builds it
with a table, key prefix or directory of its own and removes that again afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from coatcheck.stores import AsyncStore
from tests.support.servers import require_server

if TYPE_CHECKING:
    from coatcheck.stores._async.mysql import AsyncMySQLStore
    from coatcheck.stores._async.postgresql import AsyncPostgreSQLStore

__all__ = ["BACKENDS", "NATIVE_TTL", "SERVER_STORES", "async_store_for", "backends", "shared_url"]

#: Stores that need a server, and which one: their tests carry ``@pytest.mark.server(name)``,
#: so ``pytest -m "not server"`` leaves them out.
SERVER_STORES = {
    "redis": "redis",
    "memcached": "memcached",
    "postgresql": "postgresql",
    "mysql": "mysql",
}
#: Every store, as ``pytest.param`` values carrying their server marks.
BACKENDS = [
    pytest.param(
        name, marks=[pytest.mark.server(SERVER_STORES[name])] if name in SERVER_STORES else []
    )
    for name in ["memory", "file", "sqlite", "redis", "memcached", "postgresql", "mysql"]
]


def backends(*names: str) -> list[object]:
    """The named stores as ``pytest.param`` values, with their server marks."""
    return [param for param in BACKENDS if param.values[0] in names]


# Stores whose server drops expired records by itself: clear_expired() returns 0 there.
NATIVE_TTL: set[str] = {"redis", "memcached"}


@asynccontextmanager
async def async_store_for(
    name: str, tmp_path: Path, unique: str | None = None
) -> AsyncIterator[AsyncStore]:
    """Build the named store, isolated from every other test, and dispose of it afterwards.

    ``unique`` names its directory, table or key prefix (random by default); other processes
    reach the same records through :func:`shared_url`.
    """
    unique = unique or uuid.uuid4().hex[:12]
    store: AsyncStore
    sql_store: AsyncPostgreSQLStore | AsyncMySQLStore | None = None
    # Imports stay inside the branches: a store's driver loads only when its tests run.
    if name == "memory":
        from coatcheck.stores._async.memory import AsyncMemoryStore

        store = AsyncMemoryStore()
    elif name == "file":
        from coatcheck.stores._async.files import AsyncFileStore

        store = AsyncFileStore(tmp_path / f"sessions-{unique}")
    elif name == "sqlite":
        from coatcheck.stores._async.sqlite import AsyncSQLiteStore

        sqlite_store = AsyncSQLiteStore(tmp_path / f"sessions-{unique}.db")
        await sqlite_store.create_tables()
        store = sqlite_store
    elif name == "redis":
        from coatcheck.stores._async.redis import AsyncRedisStore

        host, port = require_server("redis")
        prefix = f"cc-test-{unique}:"
        store = AsyncRedisStore(url=f"redis://{host}:{port}/0", prefix=prefix)
    elif name == "memcached":
        from coatcheck.stores._async.memcached import AsyncMemcachedStore

        # memcached cannot enumerate keys: the test's records expire with their TTLs.
        host, port = require_server("memcached")
        store = AsyncMemcachedStore.from_url(f"memcached://{host}:{port}?prefix=cc-test-{unique}:")
    elif name == "postgresql":
        from coatcheck.stores._async.postgresql import AsyncPostgreSQLStore

        pg_store = AsyncPostgreSQLStore.from_url(shared_url(name, tmp_path, unique))
        await pg_store.create_tables()
        store = sql_store = pg_store
    elif name == "mysql":
        from coatcheck.stores._async.mysql import AsyncMySQLStore

        mysql_store = AsyncMySQLStore.from_url(shared_url(name, tmp_path, unique))
        await mysql_store.create_tables()
        store = sql_store = mysql_store
    else:
        raise ValueError(f"unknown backend {name}")
    try:
        yield store
    finally:
        if sql_store is not None:
            await sql_store.drop_tables()  # the test's own table, on the shared server
        await store.aclose()
        if name == "redis":
            await _delete_redis_keys(host, port, prefix)


async def _delete_redis_keys(host: str, port: int, prefix: str) -> None:
    """Remove this test's keys (and only them) from the shared Redis server."""
    import redis.asyncio

    client = redis.asyncio.Redis(host=host, port=port)
    try:
        async for k in client.scan_iter(match=prefix + "*", count=1000):
            await client.delete(k)
    finally:
        await client.aclose()


def shared_url(name: str, tmp_path: Path, unique: str) -> str:
    """A store URL on the records of ``async_store_for(name, tmp_path, unique)``.

    Another process builds its own store from it (``store_from_url``) and sees the same
    sessions; the memory store lives in one process and has none.
    """
    if name == "file":
        return "file://" + quote(str(tmp_path / f"sessions-{unique}"))
    if name == "sqlite":
        return "sqlite:///" + quote(str(tmp_path / f"sessions-{unique}.db"))
    if name == "redis":
        host, port = require_server("redis")
        return f"redis://{host}:{port}/0?prefix=cc-test-{unique}:"
    if name == "memcached":
        host, port = require_server("memcached")
        return f"memcached://{host}:{port}?prefix=cc-test-{unique}:"
    if name == "postgresql":
        host, port = require_server("postgresql")
        return f"postgresql://postgres@{host}:{port}/test?table=cc_test_{unique}"
    if name == "mysql":
        host, port = require_server("mysql")
        return f"mysql://root@{host}:{port}/test?table=cc_test_{unique}"
    raise ValueError(f"the {name} store cannot be shared between processes")
