"""MySQLStore on a frozen server (SIGSTOP, connections open): every command fails within the
store's ``timeout`` and the store recovers by itself when the server resumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coatcheck.stores import Create, Load, Record, Update
from coatcheck.stores._async.mysql import AsyncMySQLStore
from coatcheck.stores._sync.mysql import MySQLStore

from .._frozen import FreezableServer, fails_in_time, freezable_server, frozen
from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("mysql")

TIMEOUT = 0.5
MARGIN = 0.5  # a busy 2-core machine


@pytest.fixture(scope="module")
def private() -> Iterator[FreezableServer]:
    with freezable_server("mysql") as server:
        yield server


def _url(server: FreezableServer, table: str) -> str:
    return f"mysql://root@127.0.0.1:{server.port}/test?table={table}&timeout={TIMEOUT}"


def test_a_frozen_server_fails_each_statement_in_time(private: FreezableServer, table: str) -> None:
    store = MySQLStore.from_url(_url(private, table))
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    with frozen(private):
        with fails_in_time("mysql sync load", store, under=TIMEOUT + MARGIN):
            store.load(Load(key(1), NOW))
        with fails_in_time("mysql sync update", store, under=TIMEOUT + MARGIN):
            store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        fresh = MySQLStore.from_url(
            _url(private, table)
        )  # no connection yet: connecting is bounded too
        with fails_in_time("mysql sync connect", fresh, under=TIMEOUT + MARGIN):
            fresh.load(Load(key(1), NOW))
    assert isinstance(store.load(Load(key(1), NOW)), Record)  # resumed: the next one works
    store.drop_tables()
    store.close()
    fresh.close()


@pytest.mark.asyncio
async def test_a_frozen_server_fails_each_statement_in_time_async(
    private: FreezableServer, table: str
) -> None:
    store = AsyncMySQLStore.from_url(_url(private, table))
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    with frozen(private):
        with fails_in_time("mysql async load", store, under=TIMEOUT + MARGIN):
            await store.load(Load(key(1), NOW))
        with fails_in_time("mysql async update", store, under=TIMEOUT + MARGIN):
            await store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        fresh = AsyncMySQLStore.from_url(_url(private, table))
        with fails_in_time("mysql async connect", fresh, under=TIMEOUT + MARGIN):
            await fresh.load(Load(key(1), NOW))
    assert isinstance(await store.load(Load(key(1), NOW)), Record)
    await store.drop_tables()
    await store.aclose()
    await fresh.aclose()
