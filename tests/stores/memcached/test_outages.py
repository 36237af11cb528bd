"""MemcachedStore when its server is gone, silent, cancelled mid-reply, restarted or hangs up."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial

import pytest

from coatcheck.stores import Create, Load, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore

from .._own_server import async_check_restarts, check_restarts, free_port, own_server
from .._support import HOUR, NOW, key, unavailable_within
from ._probes import CountingRelay, plain

pytestmark = pytest.mark.server("memcached")


def test_outages_fail_within_the_timeout(silent_port: int) -> None:
    for port in (free_port(), silent_port):
        store = MemcachedStore(url=f"memcached://127.0.0.1:{port}", timeout=0.3)
        operations: list[Callable[[], object]] = [
            partial(store.load, Load(key(1), NOW)),
            partial(store.create, Create(key(1), b"x", NOW, NOW + HOUR, NOW)),
        ]
        for operation in operations:
            with unavailable_within(store, 1.0):
                operation()
        store.close()


@pytest.mark.asyncio
async def test_async_outages_fail_within_the_timeout(silent_port: int) -> None:
    for port in (free_port(), silent_port):
        store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{port}", timeout=0.3)
        with unavailable_within(store, 1.0):
            await store.load(Load(key(1), NOW))
        await store.aclose()


def run_guarded(main: Callable[[], Awaitable[None]]) -> None:
    """``asyncio.run(main())`` in a thread of its own, so a hang fails the test, not the run."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            asyncio.run(main())
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=15.0)
    assert not runner.is_alive(), "the event loop is stuck"
    if outcome[0] is not None:
        raise outcome[0]


def test_async_each_command_has_its_own_deadline(silent_port: int) -> None:
    """One timer keeps the deadlines of all the commands in flight (not one timer each)."""
    store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{silent_port}", timeout=0.4)

    async def timed(delay: float) -> float:
        await asyncio.sleep(delay)
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await store.load(Load(key(1), NOW))
        return time.monotonic() - started

    async def main() -> None:
        # The second starts while the first waits: each times out 0.4 s after its own start.
        first, second = await asyncio.gather(timed(0), timed(0.2))
        assert 0.38 <= first < 0.9
        assert 0.38 <= second < 0.9
        # Cancelled from outside, a command is cancelled, not timed out; the next one times out.
        task = asyncio.ensure_future(store.load(Load(key(1), NOW)))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 0.38 <= await timed(0) < 0.9

    async def then_close() -> None:
        await main()
        await store.aclose()

    run_guarded(then_close)


@pytest.mark.asyncio
async def test_async_a_command_cancelled_mid_reply_leaves_no_reply_behind(
    relay: CountingRelay, prefix: str
) -> None:
    """aiomcache returns a connection cancelled mid-command to its pool, where the next command
    would read the old reply as its own: the store must never use that connection again."""
    store = AsyncMemcachedStore(url=relay.url, prefix=prefix, pool_size=1)
    assert await store.create(Create(key(1), b"one", NOW, NOW + HOUR, NOW))
    assert await store.create(Create(key(2), b"two", NOW, NOW + HOUR, NOW))
    relay.replying.clear()
    relay.requested.clear()
    task = asyncio.ensure_future(store.load(Load(key(1), NOW)))
    assert await asyncio.to_thread(relay.requested.wait, 5.0)  # the gets has gone out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    relay.replying.set()
    assert plain(await store.load(Load(key(2), NOW))) == (b"two", 1, NOW, NOW + HOUR)
    assert await store.update(Update(key(2), b"2", NOW, NOW + HOUR, NOW, 1)) == 2
    assert plain(await store.load(Load(key(1), NOW))) == (b"one", 1, NOW, NOW + HOUR)
    await store.aclose()


def test_the_store_recovers_when_its_server_restarts() -> None:
    with own_server("memcached") as server:
        store = MemcachedStore(url=f"memcached://127.0.0.1:{server.port}", timeout=1.0)
        check_restarts(server, store)  # memcached keeps nothing across a restart


@pytest.mark.asyncio
async def test_the_async_store_recovers_when_its_server_restarts() -> None:
    with own_server("memcached") as server:
        store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{server.port}", timeout=1.0)
        await async_check_restarts(
            server,
            store,
            after_restart=lambda: store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None)),
            while_down=lambda: store.load(Load(key(1), NOW)),
        )


def test_a_server_that_hangs_up_mid_command_is_an_outage_not_a_hang() -> None:
    """aiomcache alone spins forever here without yielding (aiomcache#502); the store must not."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            conn.recv(4096)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    outcome: list[BaseException | None] = []

    async def attempt() -> None:
        store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{port}", timeout=1.0, pool_size=1)
        try:
            await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
        await store.aclose()

    # Its own thread and loop, so a regression fails this test instead of freezing the run.
    runner = threading.Thread(target=asyncio.run, args=(attempt(),), daemon=True)
    runner.start()
    runner.join(timeout=5.0)
    listener.close()
    assert not runner.is_alive(), "the event loop is stuck"
    assert len(outcome) == 1
    assert isinstance(outcome[0], AsyncMemcachedStore.unavailable_errors)
