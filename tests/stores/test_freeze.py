"""Every server store on a frozen server (SIGSTOP, connections open), sync and async: each
operation fails within the store's ``timeout`` (a load, an update, and a first connection),
and the store recovers by itself when the server resumes. The servers are private ones the
tests start and freeze (tests/stores/_frozen.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coatcheck.stores import (
    AsyncStore,
    Create,
    Load,
    Record,
    Store,
    Update,
    async_store_from_url,
    store_from_url,
)

from ._frozen import FreezableServer, fails_in_time, freezable_server, frozen
from ._support import HOUR, NOW, key, unique

TIMEOUT = 0.5
MARGIN = 0.5  # a busy 2-core machine, and PostgreSQL's watchdog wake-up

SERVERS = ["redis", "memcached", "postgresql", "mysql"]


@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=pytest.mark.server(name)) for name in SERVERS],
)
def private(request: pytest.FixtureRequest) -> Iterator[FreezableServer]:
    with freezable_server(request.param) as server:
        yield server


@pytest.fixture
def url(private: FreezableServer, request: pytest.FixtureRequest) -> str:
    """A store URL on the private server, with a table or key prefix of this test's own."""
    name = request.node.callspec.params["private"]
    port, options = private.port, f"timeout={TIMEOUT}"
    return {
        "redis": f"redis://127.0.0.1:{port}/0?prefix={unique('freeze:')}&{options}",
        "memcached": f"memcached://127.0.0.1:{port}?prefix={unique('freeze:')}&{options}",
        "postgresql": (
            f"postgresql://postgres@127.0.0.1:{port}/postgres?table={unique('cc_')}&{options}"
        ),
        "mysql": f"mysql://root@127.0.0.1:{port}/test?table={unique('cc_')}&{options}",
    }[name]


def _label(store: Store | AsyncStore, what: str) -> str:
    flavour = "async" if isinstance(store, AsyncStore) else "sync"
    return f"{store.name.partition(':')[0]} {flavour} {what}"


def test_a_frozen_server_fails_each_operation_in_time(private: FreezableServer, url: str) -> None:
    store = store_from_url(url)
    create_tables = getattr(store, "create_tables", None)
    if create_tables is not None:
        create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    with frozen(private):
        with fails_in_time(_label(store, "load"), store, under=TIMEOUT + MARGIN):
            store.load(Load(key(1), NOW))
        with fails_in_time(_label(store, "update"), store, under=TIMEOUT + MARGIN):
            store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        fresh = store_from_url(url)  # no connection yet: connecting is bounded too
        with fails_in_time(_label(store, "connect"), fresh, under=TIMEOUT + MARGIN):
            fresh.load(Load(key(1), NOW))
    assert isinstance(store.load(Load(key(1), NOW)), Record)  # resumed: the next one works
    drop_tables = getattr(store, "drop_tables", None)
    if drop_tables is not None:
        drop_tables()
    store.close()
    fresh.close()


@pytest.mark.asyncio
async def test_a_frozen_server_fails_each_operation_in_time_async(
    private: FreezableServer, url: str
) -> None:
    store = async_store_from_url(url)
    create_tables = getattr(store, "create_tables", None)
    if create_tables is not None:
        await create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    with frozen(private):
        with fails_in_time(_label(store, "load"), store, under=TIMEOUT + MARGIN):
            await store.load(Load(key(1), NOW))
        with fails_in_time(_label(store, "update"), store, under=TIMEOUT + MARGIN):
            await store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        fresh = async_store_from_url(url)
        with fails_in_time(_label(store, "connect"), fresh, under=TIMEOUT + MARGIN):
            await fresh.load(Load(key(1), NOW))
    assert isinstance(await store.load(Load(key(1), NOW)), Record)
    drop_tables = getattr(store, "drop_tables", None)
    if drop_tables is not None:
        await drop_tables()
    await store.aclose()
    await fresh.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "private", [pytest.param("redis", marks=pytest.mark.server("redis"))], indirect=True
)
async def test_a_write_larger_than_the_socket_buffers_fails_in_time_async(
    private: FreezableServer, url: str
) -> None:
    """The async Redis store puts a command straight into the transport's buffer and waits
    only when the buffer is full (stores._redis_pools.async_send): that wait has the deadline
    too. 32 MB is more than loopback's socket buffers hold, so the send itself must wait."""
    store = async_store_from_url(url)
    assert await store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    large = Update(key(2), b"y" * (32 << 20), NOW, NOW + HOUR, NOW, None)
    with (
        frozen(private),
        fails_in_time(_label(store, "large update"), store, under=TIMEOUT + MARGIN),
    ):
        await store.update(large)
    assert isinstance(await store.load(Load(key(2), NOW)), Record)  # resumed: it works again
    await store.aclose()
