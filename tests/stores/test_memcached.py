"""MemcachedStore beyond the contract: exptime rules, key rules, cas under contention, outages."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace

import aiomcache
import pytest
from pymemcache.client.base import Client

from coatcheck.errors import ConfigurationError
from coatcheck.stores import LockRequest, Record
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore
from tests.servers import require_server

from ._own_server import own_server

NOW = float(int(time.time()))
HOUR = 3600.0
DAY = 86400.0


def key(n: int | str) -> str:
    return hashlib.sha256(f"memcached-{n}".encode()).hexdigest()


@pytest.fixture
def server() -> tuple[str, int]:
    return require_server("memcached")


@pytest.fixture
def raw(server: tuple[str, int]) -> Iterator[Client]:
    client = Client(server, default_noreply=False)
    yield client
    client.close()


@pytest.fixture
def url(server: tuple[str, int]) -> str:
    return f"memcached://{server[0]}:{server[1]}"


@pytest.fixture
def prefix(raw: Client) -> Iterator[str]:
    """A unique prefix; the keys this module writes under it are deleted afterwards."""
    value = f"cc-test-{uuid.uuid4().hex[:12]}:"
    yield value
    for n in [*range(4), "counter"]:
        raw.delete(f"{value}{key(n)}")
        raw.delete(f"{value}{key(n)}:lock")


def remaining_ttl(raw: Client, item: str) -> int | None:
    """Seconds the server will keep ``item``, via the meta protocol (``mg <key> t``)."""
    reply = raw.raw_command(f"mg {item} t".encode(), b"\r\n").decode()
    if reply.startswith("EN"):
        return None
    flags = {token[0]: token[1:] for token in reply.split()[1:]}
    return int(flags["t"])


def test_ttl_beyond_thirty_days_becomes_an_absolute_time(
    url: str, raw: Client, prefix: str
) -> None:
    store = MemcachedStore(url=url, prefix=prefix)
    assert store.create(key(1), b"long", NOW, NOW + 31 * DAY, NOW)
    assert store.create(key(2), b"short", NOW, NOW + 29 * DAY, NOW)
    record = store.load(key(1), NOW)
    assert isinstance(record, Record)
    assert record.payload == b"long"
    # Sent as a relative 31 days, memcached would read it as a date in 1970: gone at once.
    ttl = remaining_ttl(raw, prefix + key(1))
    assert ttl is not None
    assert 31 * DAY - 5 <= ttl <= 31 * DAY + 1
    ttl = remaining_ttl(raw, prefix + key(2))
    assert ttl is not None
    assert 29 * DAY - 5 <= ttl <= 29 * DAY
    store.close()


def test_touch_update_and_locks_set_native_ttls(url: str, raw: Client, prefix: str) -> None:
    store = MemcachedStore(url=url, prefix=prefix)
    assert store.create(key(1), b"x", NOW, NOW + 100, NOW)
    assert 95 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 100
    assert store.touch(key(1), NOW + 1, NOW + 5000, NOW + 1)
    assert 4995 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 5000
    record = store.load(key(1), NOW)
    assert isinstance(record, Record)
    assert (record.payload, record.version, record.accessed_at) == (b"x", 1, NOW + 1)
    assert store.update(key(1), b"y", NOW, NOW + 40 * DAY, NOW, 1) == 2
    assert 40 * DAY - 5 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 40 * DAY + 1
    assert isinstance(store.load(key(1), NOW, LockRequest("t", 30.0)), Record)
    assert 25 <= (remaining_ttl(raw, prefix + key(1) + ":lock") or 0) <= 30
    # A deadline already past gets the one-second floor, never 0 (which would mean "forever").
    assert store.touch(key(1), NOW, NOW - 5, NOW)
    assert 0 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 1
    store.close()


def test_round_trips_per_operation(server: tuple[str, int], prefix: str, raw: Client) -> None:
    """Requests written on the client's own socket: memcached has no multi-key atomic step, so
    update and touch are gets + cas, and a locked load is get + add."""
    sent = [0]

    class CountingSocket(socket.socket):
        def sendall(self, data: bytes, flags: int = 0) -> None:
            sent[0] += 1
            super().sendall(data, flags)

    counting_module = SimpleNamespace(**{**vars(socket), "socket": CountingSocket})
    client = Client(server, socket_module=counting_module)
    store = MemcachedStore(client, prefix=prefix)
    lock = LockRequest("t", 30.0)
    expected: list[tuple[str, Callable[[], object], int]] = [
        ("create", partial(store.create, key(1), b"p", NOW, NOW + HOUR, NOW), 1),
        ("load", partial(store.load, key(1), NOW), 1),
        ("load+lock", partial(store.load, key(1), NOW, lock), 2),
        ("touch", partial(store.touch, key(1), NOW, NOW + HOUR, NOW), 2),
        ("update+unlock", partial(store.update, key(1), b"q", NOW, NOW + HOUR, NOW, 1, "t"), 4),
        # The unlock's cas made the lock item vanish at once, so this add succeeds first time.
        ("load+lock again", partial(store.load, key(1), NOW, lock), 2),
        ("unlock", partial(store.unlock, key(1), "t"), 2),
        ("update", partial(store.update, key(1), b"r", NOW, NOW + HOUR, NOW, None), 2),
        ("delete", partial(store.delete, key(1)), 2),
    ]
    client.version()  # connect first
    for name, operation, round_trips in expected:
        before = sent[0]
        operation()
        assert sent[0] - before == round_trips, name
    assert raw.get(prefix + key(1) + ":lock") is None
    client.close()


def test_bad_prefixes_and_keys_are_refused(url: str) -> None:
    for bad in ["a b", "tab\t", "new\nline", "\x00", "ünï:", "x" * 182]:
        with pytest.raises(ConfigurationError):
            MemcachedStore(url=url, prefix=bad)
    MemcachedStore(url=url, prefix="x" * 181).close()  # 181 + 64 + ":lock" = 250 bytes
    store = MemcachedStore(url=url, prefix="ok:")
    for bad_key in ["", "a b", "é", "\x00", "k" * 246]:
        with pytest.raises(ValueError, match="invalid store key"):
            store.load(bad_key, NOW)
    store.close()
    for bad_url in ["memcached://", "redis://localhost:11211", "memcached://h?pool_size=0"]:
        with pytest.raises(ConfigurationError):
            MemcachedStore.from_url(bad_url)
    with pytest.raises(ConfigurationError):
        MemcachedStore.from_url("memcached://h?timeout=soon")
    with pytest.raises(ConfigurationError):
        MemcachedStore.from_url("memcached://h?colour=blue")
    with pytest.raises(ConfigurationError):
        MemcachedStore()


def test_from_url_options_and_name(url: str, raw: Client, prefix: str) -> None:
    store = MemcachedStore.from_url(f"{url}?prefix={prefix}&timeout=2&pool_size=3")
    assert store.name == f"{url} prefix={prefix!r}"
    assert store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
    assert raw.get(prefix + key(1)) is not None
    store.close()


def test_two_prefixes_are_isolated(url: str, prefix: str, raw: Client) -> None:
    other = prefix + "b:"
    app_a = MemcachedStore(url=url, prefix=prefix)
    app_b = MemcachedStore(url=url, prefix=other)
    assert app_a.create(key(1), b"a", NOW, NOW + HOUR, NOW)
    assert app_b.load(key(1), NOW) is None
    assert app_b.update(key(1), b"b", NOW, NOW + HOUR, NOW, None) is None
    assert app_b.create(key(1), b"b", NOW, NOW + HOUR, NOW)
    app_b.delete(key(1))
    record = app_a.load(key(1), NOW)
    assert isinstance(record, Record)
    assert record.payload == b"a"
    app_a.close()
    app_b.close()


def run_counter(store: MemcachedStore, k: str, increments: int, start: threading.Barrier) -> None:
    start.wait()
    for _ in range(increments):
        while True:
            record = store.load(k, NOW)
            assert isinstance(record, Record)
            payload = str(int(record.payload) + 1).encode()
            if store.update(k, payload, NOW, NOW + HOUR, NOW, record.version) is not None:
                break


def run_touches(store: MemcachedStore, k: str, times: int, start: threading.Barrier) -> None:
    start.wait()
    for n in range(times):
        # A touch changes the cas id but not the version: updates must retry, not give up.
        assert store.touch(k, NOW + n, NOW + HOUR, NOW)


def test_concurrent_cas_increments_from_threads_end_exact(url: str, prefix: str) -> None:
    counters, increments = 8, 40
    store = MemcachedStore(url=url, prefix=prefix, pool_size=counters + 1)
    k = key("counter")
    assert store.create(k, b"0", NOW, NOW + HOUR, NOW)
    start = threading.Barrier(counters + 1)
    workers = [
        threading.Thread(target=run_counter, args=(store, k, increments, start))
        for _ in range(counters)
    ]
    workers.append(threading.Thread(target=run_touches, args=(store, k, 100, start)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    record = store.load(k, NOW)
    assert isinstance(record, Record)
    assert int(record.payload) == counters * increments
    assert record.version == counters * increments + 1
    store.close()


@pytest.mark.asyncio
async def test_concurrent_async_increments_end_exact(url: str, prefix: str) -> None:
    store = AsyncMemcachedStore(url=url, prefix=prefix, pool_size=4)
    k = key("counter")
    assert await store.create(k, b"0", NOW, NOW + HOUR, NOW)

    async def blind_increments(n: int) -> None:
        for _ in range(n):
            while True:
                record = await store.load(k, NOW)
                assert isinstance(record, Record)
                payload = str(int(record.payload) + 1).encode()
                if await store.update(k, payload, NOW, NOW + HOUR, NOW, record.version):
                    break

    async def touches(n: int) -> None:
        for _ in range(n):
            assert await store.touch(k, NOW, NOW + HOUR, NOW)

    await asyncio.gather(*(blind_increments(25) for _ in range(6)), touches(50))
    record = await store.load(k, NOW)
    assert isinstance(record, Record)
    assert (int(record.payload), record.version) == (150, 151)
    await store.aclose()


def test_a_client_passed_in_stays_open(server: tuple[str, int], prefix: str) -> None:
    client = Client(server)
    store = MemcachedStore(client, prefix=prefix)
    assert store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
    sock = client.sock
    store.close()
    assert client.sock is sock is not None
    assert client.get(prefix + key(1)) is not None
    client.close()


@pytest.mark.asyncio
async def test_async_client_passed_in_stays_open(server: tuple[str, int], prefix: str) -> None:
    client = aiomcache.Client(server[0], server[1])
    store = AsyncMemcachedStore(client, prefix=prefix)
    assert await store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
    await store.aclose()
    assert await client.get((prefix + key(1)).encode()) is not None
    await client.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def test_outages_fail_within_the_timeout(silent_port: int) -> None:
    for port in (closed_port(), silent_port):
        store = MemcachedStore(url=f"memcached://127.0.0.1:{port}", timeout=0.3)
        operations: list[Callable[[], object]] = [
            partial(store.load, key(1), NOW),
            partial(store.create, key(1), b"x", NOW, NOW + HOUR, NOW),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(store.unavailable_errors):
                operation()
            assert time.monotonic() - started < 1.0
        store.close()


@pytest.mark.asyncio
async def test_async_outages_fail_within_the_timeout(silent_port: int) -> None:
    for port in (closed_port(), silent_port):
        store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{port}", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            await store.load(key(1), NOW)
        assert time.monotonic() - started < 1.0
        await store.aclose()


def test_the_store_recovers_when_its_server_restarts() -> None:
    with own_server("memcached") as server:
        store = MemcachedStore(url=f"memcached://127.0.0.1:{server.port}", timeout=1.0)
        assert store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
        # Restarted between two requests: the pooled connection is stale, the next call works.
        server.stop()
        server.start()
        assert store.load(key(1), NOW) is None  # memcached keeps nothing across a restart
        server.stop()
        with pytest.raises(store.unavailable_errors):
            store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
        server.start()
        assert store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
        store.close()


@pytest.mark.asyncio
async def test_the_async_store_recovers_when_its_server_restarts() -> None:
    with own_server("memcached") as server:
        store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{server.port}", timeout=1.0)
        assert await store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
        server.stop()
        server.start()
        assert await store.update(key(1), b"y", NOW, NOW + HOUR, NOW, None) is None
        server.stop()
        with pytest.raises(store.unavailable_errors):
            await store.load(key(1), NOW)
        server.start()
        assert await store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
        await store.aclose()


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
            await store.create(key(1), b"x", NOW, NOW + HOUR, NOW)
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
