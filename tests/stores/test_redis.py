"""RedisStore beyond the contract: key layout, native TTLs, owned clients, round trips, outages."""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from coatcheck.errors import ConfigurationError
from coatcheck.stores import (
    LOCKED,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    Slide,
    Touch,
    Unlock,
    Update,
)
from coatcheck.stores._async.redis import AsyncRedisStore
from coatcheck.stores._sync.redis import RedisStore
from tests.support.servers import require_server

from ._own_server import own_server

pytestmark = pytest.mark.server("redis")

NOW = float(int(time.time()))
HOUR = 3600.0


def key(n: int | str) -> str:
    return hashlib.sha256(f"redis-{n}".encode()).hexdigest()


@pytest.fixture
def server() -> tuple[str, int]:
    return require_server("redis")


@pytest.fixture
def raw(server: tuple[str, int]) -> Iterator[redis.Redis]:
    client = redis.Redis(host=server[0], port=server[1])
    yield client
    client.close()


@pytest.fixture
def new_prefix(raw: redis.Redis) -> Iterator[Callable[[], str]]:
    """Hands out unique key prefixes, and deletes every key under them afterwards."""
    given: list[str] = []

    def make() -> str:
        given.append(f"cc-test-{uuid.uuid4().hex[:12]}:")
        return given[-1]

    yield make
    for prefix in given:
        for k in raw.scan_iter(match=prefix + "*", count=1000):
            raw.delete(k)


@pytest.fixture
def url(server: tuple[str, int]) -> str:
    return f"redis://{server[0]}:{server[1]}/0"


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


def test_keys_carry_the_prefix_and_share_a_hash_tag_with_the_lock(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    record_key, lock_key = f"{prefix}{{{key(1)}}}", f"{prefix}{{{key(1)}}}:lock"
    assert sorted(raw.scan_iter(match=prefix + "*")) == [record_key.encode(), lock_key.encode()]
    assert key_slot(record_key.encode()) == key_slot(lock_key.encode()) == key_slot(key(1).encode())
    store.close()


def test_ttl_is_native_refreshed_by_touch_and_floored_at_one_second(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    record_key = f"{prefix}{{{key(1)}}}"
    assert store.create(Create(key(1), b"x", NOW, NOW + 100, NOW))
    assert 99_000 < raw.pttl(record_key) <= 100_000
    assert store.touch(Touch(key(1), NOW, NOW + 5000, NOW))
    assert 4_999_000 < raw.pttl(record_key) <= 5_000_000
    assert store.update(Update(key(1), b"y", NOW, NOW + 200, NOW, None)) == 2
    assert 199_000 < raw.pttl(record_key) <= 200_000
    # A deadline already past still gets a (one-second) TTL rather than an error or no TTL.
    assert store.touch(Touch(key(1), NOW, NOW - 5, NOW))
    assert 0 < raw.pttl(record_key) <= 1000
    # The lock key expires by itself too, as a safety net for a holder that died.
    assert store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(2), NOW, LockRequest("t", 30.0))), Record)
    assert 29_000 < raw.pttl(f"{prefix}{{{key(2)}}}:lock") <= 30_000
    store.close()


def test_a_slide_moves_the_native_ttl_only_when_it_slides(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    record_key, lock_key = f"{prefix}{{{key(1)}}}", f"{prefix}{{{key(1)}}}:lock"
    assert store.create(Create(key(1), b"x", NOW, NOW + 100, NOW))
    # Fresh (accessed after stale_before): neither the times nor the TTL move.
    fresh = store.load(Load(key(1), NOW + 30, None, Slide(NOW + 30, NOW + 5000, NOW - 30)))
    assert fresh == Record(b"x", 1, NOW, NOW + 100)
    assert 99_000 < raw.pttl(record_key) <= 100_000
    # Stale: the 16 time bytes and the TTL move together, in the load's one script.
    slid = store.load(Load(key(1), NOW + 60, None, Slide(NOW + 60, NOW + 5000, NOW + 30)))
    assert slid == Record(b"x", 1, NOW + 60, NOW + 5000)
    assert store.load(Load(key(1), NOW + 60)) == slid
    assert 4_939_000 < raw.pttl(record_key) <= 4_940_000  # expires_at - now
    # The locked load slides too, and its lock gets its own TTL.
    locked = store.load(
        Load(key(1), NOW + 120, LockRequest("t", 30.0), Slide(NOW + 120, NOW + 7000, NOW + 60))
    )
    assert locked == Record(b"x", 1, NOW + 120, NOW + 7000)
    assert 6_879_000 < raw.pttl(record_key) <= 6_880_000
    assert 29_000 < raw.pttl(lock_key) <= 30_000
    # A value some other program wrote is never slid (nor overwritten); load refuses it.
    raw.set(f"{prefix}{{{key(2)}}}", b"not a coatcheck record", px=100_000)
    with pytest.raises(ValueError, match="not a coatcheck record"):
        store.load(Load(key(2), NOW + 60, None, Slide(NOW + 60, NOW + 5000, NOW + 30)))
    assert raw.get(f"{prefix}{{{key(2)}}}") == b"not a coatcheck record"
    assert 99_000 < raw.pttl(f"{prefix}{{{key(2)}}}") <= 100_000
    store.close()


def connected(raw: redis.Redis, name: str, expected: bool) -> bool:
    """Whether a connection called ``name`` is (still) there; the server may take a moment to
    notice a close, so wait up to two seconds for the expected answer."""
    deadline = time.monotonic() + 2.0
    while True:
        found = any(c["name"] == name for c in raw.client_list())
        if found == expected or time.monotonic() > deadline:
            return found


def test_a_client_passed_in_stays_open(
    server: tuple[str, int], new_prefix: Callable[[], str]
) -> None:
    client = redis.Redis(host=server[0], port=server[1])
    before = client.client_id()
    store = RedisStore(client, prefix=new_prefix())
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    store.close()
    # Same server-side connection id: the pool was not disconnected.
    assert client.client_id() == before
    client.close()


def test_a_store_closes_the_client_it_built(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    name = f"cc-test-{uuid.uuid4().hex[:8]}"
    store = RedisStore.from_url(f"{url}?client_name={name}&prefix={new_prefix()}")
    assert store.load(Load(key(1), NOW)) is None
    assert connected(raw, name, True)
    store.close()
    assert not connected(raw, name, False)


@pytest.mark.asyncio
async def test_async_client_passed_in_stays_open(
    server: tuple[str, int], new_prefix: Callable[[], str]
) -> None:
    client = redis.asyncio.Redis(host=server[0], port=server[1])
    before = await client.client_id()
    store = AsyncRedisStore(client, prefix=new_prefix())
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    await store.aclose()
    assert await client.client_id() == before
    await client.aclose()


@pytest.mark.asyncio
async def test_async_store_closes_the_client_it_built(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    name = f"cc-test-{uuid.uuid4().hex[:8]}"
    store = AsyncRedisStore.from_url(f"{url}?client_name={name}&prefix={new_prefix()}")
    assert await store.load(Load(key(1), NOW)) is None
    assert connected(raw, name, True)
    await store.aclose()
    assert not connected(raw, name, False)


def test_two_prefixes_are_isolated(url: str, new_prefix: Callable[[], str]) -> None:
    app_a = RedisStore(url=url, prefix=new_prefix())
    app_b = RedisStore(url=url, prefix=new_prefix())
    assert app_a.create(Create(key(1), b"a", NOW, NOW + HOUR, NOW))
    assert app_b.load(Load(key(1), NOW)) is None
    assert app_b.update(Update(key(1), b"b", NOW, NOW + HOUR, NOW, None)) is None
    assert app_b.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is False
    assert app_b.create(Create(key(1), b"b", NOW, NOW + HOUR, NOW))
    app_b.delete(Delete(key(1)))
    record = app_a.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"a", 1)
    assert (app_a.count(NOW), app_b.count(NOW)) == (1, 0)
    app_a.close()
    app_b.close()


def test_count_and_stats_scan_only_this_prefix_and_skip_locks(
    url: str, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore(url=url, prefix=prefix)
    neighbour = RedisStore(url=url, prefix=prefix + "x")  # a prefix that extends ours
    for n in range(2500):  # more than one SCAN batch
        assert store.create(Create(key(n), b"12", NOW, NOW + (10 if n % 5 == 0 else HOUR), NOW))
    assert neighbour.create(Create(key("n"), b"zzz", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    assert store.count(NOW) == 2500
    stats = store.stats(NOW + 20)
    assert (stats.live, stats.expired, stats.payload_bytes) == (2000, 500, 5000)
    store.close()
    neighbour.close()


def test_one_round_trip_per_operation(
    server: tuple[str, int], new_prefix: Callable[[], str]
) -> None:
    """Counted on the client's own connection: every request written and every reply read."""
    counts = {"sent": 0, "read": 0}
    commands: list[str] = []

    class CountingConnection(redis.connection.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            commands.append(str(args[0]))
            super().send_command(*args, **kwargs)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counts["sent"] += 1
            super().send_packed_command(command, check_health)

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            counts["read"] += 1
            return super().read_response(*args, **kwargs)

    pool = redis.ConnectionPool(host=server[0], port=server[1], connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=new_prefix())
    lock = LockRequest("t", 30.0)
    stale = Slide(NOW + 120, NOW + HOUR, NOW + 60)  # the record was accessed at NOW
    operations: list[tuple[str, str, Callable[[], object]]] = [
        ("create", "SET", lambda: store.create(Create(key(1), b"p", NOW, NOW + HOUR, NOW))),
        ("load", "GET", lambda: store.load(Load(key(1), NOW))),
        ("load+lock", "EVALSHA", lambda: store.load(Load(key(1), NOW, lock))),
        (
            "load locked",
            "EVALSHA",
            lambda: store.load(Load(key(1), NOW, LockRequest("other", 30.0))),
        ),
        ("load+slide", "EVALSHA", lambda: store.load(Load(key(1), NOW + 120, None, stale))),
        ("load+lock+slide", "EVALSHA", lambda: store.load(Load(key(1), NOW + 120, lock, stale))),
        (
            "update+unlock",
            "EVALSHA",
            lambda: store.update(Update(key(1), b"q", NOW, NOW + HOUR, NOW, None, "t")),
        ),
        (
            "update",
            "EVALSHA",
            lambda: store.update(Update(key(1), b"r", NOW, NOW + HOUR, NOW, None)),
        ),
        ("touch+unlock", "EVALSHA", lambda: store.touch(Touch(key(1), NOW, NOW + HOUR, NOW, "t"))),
        ("touch", "EVALSHA", lambda: store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))),
        ("unlock", "EVALSHA", lambda: store.unlock(Unlock(key(1), "t"))),
        ("delete", "DEL", lambda: store.delete(Delete(key(1)))),
    ]
    for _, _, operation in operations:  # connect and load the scripts into the server first
        operation()
    store.load(Load(key(1), NOW, lock))  # hold the lock again so "load locked" is really LOCKED
    for name, command, operation in operations:
        before = dict(counts)
        commands.clear()
        result = operation()
        if name == "load locked":
            assert result is LOCKED
        if name in ("load+slide", "load+lock+slide"):
            assert isinstance(result, Record) and result.accessed_at == NOW + 120, name
        assert (counts["sent"] - before["sent"], counts["read"] - before["read"]) == (1, 1), name
        assert commands == [command], name
    client.close()


def test_a_load_with_a_slide_is_one_script_call_and_remembers_nothing(
    server: tuple[str, int], url: str, new_prefix: Callable[[], str]
) -> None:
    commands: list[str] = []

    class RecordingConnection(redis.connection.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            commands.append(str(args[0]))
            super().send_command(*args, **kwargs)

    pool = redis.ConnectionPool(
        host=server[0], port=server[1], connection_class=RecordingConnection
    )
    client = redis.Redis(connection_pool=pool)
    prefix = new_prefix()
    store = RedisStore(client, prefix=prefix)

    def load(now: float, stale_before: float) -> Record:
        commands.clear()
        record = store.load(Load(key(1), now, None, Slide(now, now + HOUR, stale_before)))
        assert isinstance(record, Record)
        return record

    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    # Within the resolution the script finds nothing to slide; past it, it slides. Either way
    # one round trip, decided by the server from what it holds, not by a client-side memory.
    assert load(NOW + 30, NOW - 60).accessed_at == NOW
    assert commands == ["EVALSHA"]
    assert load(NOW + 61, NOW + 1).accessed_at == NOW + 61
    assert commands == ["EVALSHA"]
    assert load(NOW + 90, NOW + 30).accessed_at == NOW + 61
    assert commands == ["EVALSHA"]
    # Another process (another store) slid it meanwhile: this one sees the new access time.
    other = RedisStore(url=url, prefix=prefix)
    assert isinstance(
        other.load(Load(key(1), NOW + 200, None, Slide(NOW + 200, NOW + HOUR, NOW + 140))), Record
    )
    assert load(NOW + 210, NOW + 150).accessed_at == NOW + 200
    assert commands == ["EVALSHA"]
    # Without a slide, a load is a plain GET.
    commands.clear()
    assert isinstance(store.load(Load(key(1), NOW + 220)), Record)
    assert commands == ["GET"]
    # Deleted and gone: nothing created.
    store.delete(Delete(key(1)))
    commands.clear()
    assert (
        store.load(Load(key(1), NOW + 230, None, Slide(NOW + 230, NOW + HOUR, NOW + 170))) is None
    )
    assert commands == ["EVALSHA"]
    other.close()
    client.close()


def test_bad_prefixes_and_keys_are_refused(url: str) -> None:
    for bad in ["", "a b", "a\tb", "a*", "a?", "a[b]", "{app}:", "a}", "\x00", "new\nline"]:
        with pytest.raises(ConfigurationError):
            RedisStore(url=url, prefix=bad)
    store = RedisStore(url=url, prefix="ok:")
    for bad_key in ["", "a{b", "a}b"]:
        with pytest.raises(ValueError, match="invalid store key"):
            store.load(Load(bad_key, NOW))
    store.close()
    with pytest.raises(ConfigurationError):
        RedisStore()
    with pytest.raises(ConfigurationError):
        RedisStore(redis.Redis(decode_responses=True))


def test_from_url_reads_its_options_and_never_names_the_password(
    server: tuple[str, int], raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore.from_url(
        f"redis://{server[0]}:{server[1]}/0?prefix={prefix}&socket_timeout=2"
    )
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert raw.exists(f"{prefix}{{{key(1)}}}") == 1
    store.close()
    secret = RedisStore.from_url("rediss://user:hunter2@cache.example:6380/3?prefix=app1:")
    assert secret.name == "rediss://cache.example:6380/3 prefix='app1:'"
    sock = RedisStore.from_url("unix:///nonexistent/redis.sock?db=2")
    assert sock.name == "unix:///nonexistent/redis.sock?db=2 prefix='coatcheck:'"
    with pytest.raises(sock.unavailable_errors):
        sock.load(Load(key(1), NOW))
    with pytest.raises(ConfigurationError):
        RedisStore.from_url("redis://localhost?socket_timeout=soon")


def test_a_closed_port_fails_fast_with_an_unavailable_error() -> None:
    store = RedisStore(url=f"redis://127.0.0.1:{closed_port()}/0", socket_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        store.load(Load(key(1), NOW))
    assert time.monotonic() - started < 1.0
    store.close()


def test_a_silent_server_fails_within_the_socket_timeout(silent_port: int) -> None:
    store = RedisStore(url=f"redis://127.0.0.1:{silent_port}/0", socket_timeout=0.3)
    for operation in (
        lambda: store.load(Load(key(1), NOW)),
        lambda: store.update(Update(key(1), b"x", NOW, NOW + HOUR, NOW, 1)),
    ):
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            operation()
        elapsed = time.monotonic() - started
        assert 0.25 < elapsed < 1.0
    store.close()


@pytest.mark.asyncio
async def test_async_outages_fail_within_the_socket_timeout(silent_port: int) -> None:
    for port in (closed_port(), silent_port):
        store = AsyncRedisStore(url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            await store.load(Load(key(1), NOW, LockRequest("t", 5.0)))
        assert time.monotonic() - started < 1.0
        await store.aclose()


def test_the_store_recovers_when_its_server_restarts() -> None:
    with own_server("redis") as server:
        store = RedisStore(url=f"redis://127.0.0.1:{server.port}/0", socket_timeout=1.0)
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        # Restarted between two requests: the pooled connection is stale, the next call works.
        server.stop()
        server.start()
        assert store.load(Load(key(1), NOW)) is None  # no persistence: the record went with it
        server.stop()
        with pytest.raises(store.unavailable_errors):
            store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        server.start()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        store.close()


@pytest.mark.asyncio
async def test_the_async_store_recovers_when_its_server_restarts() -> None:
    with own_server("redis") as server:
        store = AsyncRedisStore(url=f"redis://127.0.0.1:{server.port}/0", socket_timeout=1.0)
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        server.stop()
        server.start()
        assert await store.load(Load(key(1), NOW)) is None
        server.stop()
        with pytest.raises(store.unavailable_errors):
            await store.update(Update(key(1), b"x", NOW, NOW + HOUR, NOW, None))
        server.start()
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        await store.aclose()
