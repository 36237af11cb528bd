"""PostgreSQLStore's connections: pools and factories passed in, pools it builds itself."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql

from coatcheck.stores import Create, Load, Record, Update
from coatcheck.stores._async.postgresql import AsyncPostgreSQLStore
from coatcheck.stores._sync.postgresql import PostgreSQLStore

from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("postgresql")


def test_a_pool_passed_in_stays_open(conninfo: str, table: str, raw: Any) -> None:
    with psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=2, open=True) as pool:
        store = PostgreSQLStore(pool, table=table)
        store.create_tables()
        assert store.create(Create(key(1), b"kept", NOW, NOW + HOUR, NOW))
        store.close()
        assert not pool.closed
        again = PostgreSQLStore(pool, table=table)
        record = again.load(Load(key(1), NOW))
        assert isinstance(record, Record)
        assert record.payload == b"kept"
        # That pool's connections are not in autocommit mode: the store switched each one
        # for its statement and back, and its writes were committed.
        with pool.connection() as conn:
            assert conn.autocommit is False
        count = raw.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        assert count.fetchone() == (1,)


@pytest.mark.asyncio
async def test_an_async_pool_passed_in_stays_open(conninfo: str, table: str, raw: Any) -> None:
    async with psycopg_pool.AsyncConnectionPool(
        conninfo, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    ) as pool:
        store = AsyncPostgreSQLStore(pool, table=table)
        await store.create_tables()
        assert await store.create(Create(key(1), b"kept", NOW, NOW + HOUR, NOW))
        await store.aclose()
        assert not pool.closed
        record = await AsyncPostgreSQLStore(pool, table=table).load(Load(key(1), NOW))
        assert isinstance(record, Record)


def test_a_store_built_from_a_url_closes_its_own_pool(store: PostgreSQLStore) -> None:
    assert store.load(Load(key(1), NOW)) is None
    store.close()
    with pytest.raises(psycopg_pool.PoolClosed):
        store.load(Load(key(1), NOW))


def test_a_connection_factory_gets_one_connection_per_operation(
    conninfo: str, table: str, raw: psycopg.Connection[Any]
) -> None:
    made: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        made.append(psycopg.connect(conninfo))  # not in autocommit mode
        return made[-1]

    store = PostgreSQLStore(connect=connect, table=table)
    assert table in store.name
    store.create_tables()
    assert store.create(Create(key(1), b"one", NOW, NOW + HOUR, NOW))
    assert store.update(Update(key(1), b"two", NOW, NOW + HOUR, NOW, 1)) == 2
    store.close()
    assert len(made) == 3
    assert all(conn.closed for conn in made)
    row = raw.execute(sql.SQL("SELECT payload FROM {}").format(sql.Identifier(table))).fetchone()
    assert row == (b"two",)


def test_short_event_loops_in_threads_of_their_own_each_finish(
    conninfo: str, table: str, raw: Any
) -> None:
    # How Django runs its async session methods under test (asgiref's async_to_sync: a loop
    # per call, in a thread of its own). With psycopg_pool, a connection its worker was still
    # opening when such a loop ended swallowed the loop's cancellation, and asyncio.run never
    # returned (psycopg#1345; seen within 15 loops). The store's own pool opens connections in
    # the caller's task, so each loop ends when its work does. A loop that hangs fails the
    # test at its deadline (the threads are daemons, so it cannot block pytest's exit).
    store = AsyncPostgreSQLStore.from_url(f"{conninfo}?table={table}&pool_size=3")
    sync = PostgreSQLStore.from_url(f"{conninfo}?table={table}")
    sync.create_tables()

    async def one(index: int) -> None:
        # Three at once, so the loop opens several connections, the way a pool grows.
        created = await asyncio.gather(
            *(store.create(Create(key(f"{index}-{n}"), b"x", NOW, NOW + HOUR, NOW)) for n in "abc")
        )
        assert created == [True, True, True]

    finished: list[int] = []
    failed: list[BaseException] = []

    def run(index: int) -> None:
        try:
            asyncio.run(one(index))
        except BaseException as exc:  # reported in the test's thread
            failed.append(exc)

    for index in range(40):
        runner = threading.Thread(target=run, args=(index,), daemon=True)
        runner.start()
        runner.join(15)
        assert not runner.is_alive(), f"asyncio.run of loop {index} did not return in 15 s"
        assert not failed, failed
        assert isinstance(sync.load(Load(key(f"{index}-c"), NOW)), Record)
        finished.append(index)
    assert len(finished) == 40
    # Every loop's connections but the last one's were abandoned as the next loop began.
    assert asyncio.run(store.count(NOW)) == 120
    asyncio.run(store.aclose())
    sync.close()
