"""PostgreSQLStore when the server is gone, comes back, or blocks a statement."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql

from coatcheck.stores import Create, Load, Record, Update
from coatcheck.stores._async.postgresql import AsyncPostgreSQLStore
from coatcheck.stores._sync.postgresql import PostgreSQLStore

from .._proxy import TCPProxy
from .._support import HOUR, NOW, key, unavailable_within

pytestmark = pytest.mark.server("postgresql")


def test_a_closed_port_is_unavailable_within_the_pool_timeout() -> None:
    store = PostgreSQLStore.from_url(
        "postgresql://postgres@127.0.0.1:1/test?pool_timeout=1&connect_timeout=2"
    )
    with unavailable_within(store, 3):
        store.load(Load(key(1), NOW))
    store.close()


@pytest.mark.asyncio
async def test_a_closed_port_is_unavailable_within_the_pool_timeout_async() -> None:
    store = AsyncPostgreSQLStore.from_url(
        "postgresql://postgres@127.0.0.1:1/test?pool_timeout=1&connect_timeout=2"
    )
    with unavailable_within(store, 3):
        await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    await store.aclose()


def test_a_factory_on_a_closed_port_is_unavailable() -> None:
    store = PostgreSQLStore(
        connect=lambda: psycopg.connect("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    )
    with pytest.raises(store.unavailable_errors):
        store.load(Load(key(1), NOW))


def test_the_first_request_after_an_outage_works(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    # One connection: after an outage the pool must not wait out a reconnection backoff
    # (psycopg_pool's default), but connect again as soon as a request asks.
    store = PostgreSQLStore.from_url(f"{proxied_url}&pool_size=1&pool_timeout=1&connect_timeout=2")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    proxy.stop()
    # The pooled connection is dead, then no new one can be made; four failures, a second
    # apart, outlast the first steps of psycopg_pool's default reconnection backoff.
    for _ in range(4):
        with unavailable_within(store, 3):
            store.load(Load(key(1), NOW))
    proxy.start()
    assert isinstance(store.load(Load(key(1), NOW)), Record)
    store.close()


@pytest.mark.asyncio
async def test_one_dead_connection_clears_the_other_idle_ones(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    store = AsyncPostgreSQLStore.from_url(
        f"{proxied_url}&pool_timeout=1&connect_timeout=2&pool_size=4"
    )
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    pool = store._pool
    assert pool is not None
    while len(pool.idle_connections()) < 3:
        await asyncio.gather(*(store.load(Load(key(1), NOW)) for _ in range(8)))
    idle = pool.idle_connections()
    proxy.stop()  # a server restart: every pooled connection dies
    with pytest.raises(store.unavailable_errors):
        await store.load(Load(key(1), NOW))
    assert pool.idle_connections() == [] and all(conn.closed for conn in idle)
    proxy.start()
    assert isinstance(await store.load(Load(key(1), NOW)), Record)
    await store.aclose()


def test_a_statement_timeout_bounds_a_blocked_statement(
    conninfo: str, table: str, raw: psycopg.Connection[Any]
) -> None:
    store = PostgreSQLStore.from_url(f"{conninfo}?table={table}&statement_timeout=0.5")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    holder = psycopg.connect(conninfo)
    try:
        holder.execute(
            sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(sql.Identifier(table))
        ).fetchall()
        with unavailable_within(store, 2):
            store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
    finally:
        holder.rollback()
        holder.close()
    assert store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None)) == 2
    store.close()
