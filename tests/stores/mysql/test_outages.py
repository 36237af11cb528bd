"""MySQLStore when the server is gone, comes back, is busy, or blocks a statement."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pymysql
import pytest

from coatcheck.stores import Create, Load, Record, Touch
from coatcheck.stores._async.mysql import AsyncMySQLStore
from coatcheck.stores._sync.mysql import MySQLStore

from .._proxy import TCPProxy
from .._support import HOUR, NOW, key, unavailable_within
from ._raw import connect_raw, lock_the_table

pytestmark = pytest.mark.server("mysql")


def test_a_closed_port_is_unavailable_at_once() -> None:
    store = MySQLStore.from_url("mysql://root@127.0.0.1:1/test?connect_timeout=2")
    with unavailable_within(store, 3):
        store.load(Load(key(1), NOW))
    store.close()


@pytest.mark.asyncio
async def test_a_closed_port_is_unavailable_at_once_async() -> None:
    store = AsyncMySQLStore.from_url("mariadb://root@127.0.0.1:1/test?connect_timeout=2")
    with unavailable_within(store, 3):
        await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    await store.aclose()


def test_a_full_pool_times_out_as_unavailable(url: str, raw: Any) -> None:
    store = MySQLStore.from_url(f"{url}&pool_size=1&pool_timeout=0.3")
    store.create_tables()
    # The only connection is busy elsewhere.
    with store._pool.connection(), unavailable_within(store, 2, after=0.25):
        store.load(Load(key(1), NOW))
    assert store.load(Load(key(1), NOW)) is None
    store.close()


@pytest.mark.asyncio
async def test_a_full_pool_times_out_as_unavailable_async(url: str, raw: Any) -> None:
    store = AsyncMySQLStore.from_url(f"{url}&pool_size=1&pool_timeout=0.3")
    await store.create_tables()
    async with store._pool.connection():  # the only connection is busy elsewhere
        with unavailable_within(store, 2, after=0.25):
            await store.load(Load(key(1), NOW))
    assert await store.load(Load(key(1), NOW)) is None  # and the slot was not lost to the timeout
    await store.aclose()


def test_a_blocked_statement_times_out_as_unavailable(
    url: str, server: tuple[str, int], table: str, raw: Any
) -> None:
    store = MySQLStore.from_url(f"{url}&read_timeout=0.5")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    holder = connect_raw(server)
    try:
        lock_the_table(holder, table)
        with unavailable_within(store, 2):
            store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
    finally:
        holder.rollback()
        holder.close()
    assert store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is True
    store.close()


@pytest.mark.asyncio
async def test_a_blocked_statement_times_out_as_unavailable_async(
    url: str, server: tuple[str, int], table: str, raw: Any
) -> None:
    store = AsyncMySQLStore.from_url(f"{url}&read_timeout=0.5")
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    holder = connect_raw(server)
    try:
        lock_the_table(holder, table)
        with unavailable_within(store, 2):
            await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
    finally:
        holder.rollback()
        holder.close()
    assert await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is True
    await store.aclose()


@pytest.mark.asyncio
async def test_each_statement_gets_its_own_whole_timeout_async(
    url: str, server: tuple[str, int], table: str, raw: Any
) -> None:
    # A connection keeps one timer for all its statements: the one an earlier statement set
    # must neither cut a later statement short nor let it run past its own deadline, and a
    # cancellation from outside must stay a cancellation.
    store = AsyncMySQLStore.from_url(f"{url}&read_timeout=1&pool_size=1")
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))  # sets the timer: 1 s
    holder = connect_raw(server)
    try:
        lock_the_table(holder, table)
        await asyncio.sleep(0.6)
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError, match="timed out after 1 s"):
            await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
        assert 0.95 < time.monotonic() - started < 2  # not cut at the first deadline, 0.4 s in
        blocked = asyncio.create_task(store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)))
        await asyncio.sleep(0.2)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    finally:
        holder.rollback()
        holder.close()
    assert await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is True
    await store.aclose()


def test_the_first_request_after_an_outage_works(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    store = MySQLStore.from_url(f"{proxied_url}&connect_timeout=2")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    proxy.stop()
    with unavailable_within(store, 3):
        store.load(Load(key(1), NOW))
    proxy.start()
    assert isinstance(store.load(Load(key(1), NOW)), Record)
    store.close()


@pytest.mark.asyncio
async def test_the_first_request_after_an_outage_works_async(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    store = AsyncMySQLStore.from_url(f"{proxied_url}&connect_timeout=2")
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    proxy.stop()
    with pytest.raises(store.unavailable_errors):
        await store.load(Load(key(1), NOW))
    proxy.start()
    assert isinstance(await store.load(Load(key(1), NOW)), Record)
    await store.aclose()


def test_a_restart_does_not_cost_a_failed_request(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    store = MySQLStore.from_url(f"{proxied_url}&connect_timeout=2")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    # The server goes away and comes back between two requests: the pooled connection
    # saw the close, so the next request connects afresh instead of failing on it.
    proxy.stop()
    proxy.start()
    assert isinstance(store.load(Load(key(1), NOW)), Record)
    store.close()


@pytest.mark.asyncio
async def test_a_restart_does_not_cost_a_failed_request_async(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    store = AsyncMySQLStore.from_url(f"{proxied_url}&connect_timeout=2")
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    (idle,) = store._pool.idle_connections()
    proxy.stop()
    # A real restart gives the event loop ample time to see the close; here, wait for it
    # (the idle connection has nothing to read but the end of its stream).
    assert await asyncio.wait_for(idle._reader.read(), 5) == b""
    proxy.start()
    assert isinstance(await store.load(Load(key(1), NOW)), Record)
    await store.aclose()
