"""RedisStore when its server is gone, silent, or restarted."""

from __future__ import annotations

import pytest

from coatcheck.stores import Load, LockRequest, Update
from coatcheck.stores._async.redis import AsyncRedisStore
from coatcheck.stores._sync.redis import RedisStore

from .._own_server import async_check_restarts, check_restarts, free_port, own_server
from .._support import HOUR, NOW, key, unavailable_within

pytestmark = pytest.mark.server("redis")


def test_a_closed_port_fails_fast_with_an_unavailable_error() -> None:
    store = RedisStore(url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1.0)
    with unavailable_within(store, 1.0):
        store.load(Load(key(1), NOW))
    store.close()


def test_a_silent_server_fails_within_the_socket_timeout(silent_port: int) -> None:
    store = RedisStore(url=f"redis://127.0.0.1:{silent_port}/0", socket_timeout=0.3)
    for operation in (
        lambda: store.load(Load(key(1), NOW)),
        lambda: store.update(Update(key(1), b"x", NOW, NOW + HOUR, NOW, 1)),
    ):
        with unavailable_within(store, 1.0, after=0.25):
            operation()
    store.close()


@pytest.mark.asyncio
async def test_async_outages_fail_within_the_socket_timeout(silent_port: int) -> None:
    for port in (free_port(), silent_port):
        store = AsyncRedisStore(url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        with unavailable_within(store, 1.0):
            await store.load(Load(key(1), NOW, LockRequest("t", 5.0)))
        await store.aclose()


def test_the_store_recovers_when_its_server_restarts() -> None:
    with own_server("redis") as server:
        check_restarts(
            server, RedisStore(url=f"redis://127.0.0.1:{server.port}/0", socket_timeout=1.0)
        )


@pytest.mark.asyncio
async def test_the_async_store_recovers_when_its_server_restarts() -> None:
    with own_server("redis") as server:
        store = AsyncRedisStore(url=f"redis://127.0.0.1:{server.port}/0", socket_timeout=1.0)
        await async_check_restarts(
            server,
            store,
            after_restart=lambda: store.load(Load(key(1), NOW)),
            while_down=lambda: store.update(Update(key(1), b"x", NOW, NOW + HOUR, NOW, None)),
        )
