"""MemcachedStore beyond the contract: exptime rules, key rules, cas under contention, outages,
round trips (one per operation after a load), what the store remembers and for how long."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from types import SimpleNamespace

import aiomcache
import pytest
from pymemcache.client.base import Client, PooledClient
from pymemcache.client.hash import HashClient

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, Delete, Load, LockRequest, Record, Touch, Unlock, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore
from tests.support.servers import require_server

from ._own_server import own_server

pytestmark = pytest.mark.server("memcached")

NOW = float(int(time.time()))
HOUR = 3600.0
DAY = 86400.0
# An absolute exptime is rounded up to the next second, and memcached reads the time left
# against its own clock, whole seconds that tick once a second from a start it backdates
# (memcached.c, clock_handler): the TTL it reports may exceed the one asked for by 3 s.
ABSOLUTE_SLACK = 3


def key(n: int | str) -> str:
    return hashlib.sha256(f"memcached-{n}".encode()).hexdigest()


def plain(record: object) -> tuple[object, ...]:
    """A loaded record's payload, version and times, without the store's handle."""
    assert isinstance(record, Record)
    return tuple(record[:4])


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


class CountingRelay:
    """A TCP relay to memcached that counts round trips: client turns the server answered.

    A turn is everything a client sends before the server answers; it is counted, with the first
    word it sent (``gets``, ``ms``, ``add``...), when the answer starts, which is before the
    client can have read it: when an operation returns, its turns are all counted.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.sent: list[str] = []
        self.connections = 0
        self.open = 0
        self._sockets: list[socket.socket] = []
        self.replying = threading.Event()  # clear it to hold the server's replies back
        self.replying.set()
        self.requested = threading.Event()  # set whenever a client sends something
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target)
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open += 1
                self._sockets += [client, upstream]
            turn: list[bytes] = []  # what the client sent since the server last answered
            for src, dst, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, turn, from_client), daemon=True
                ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, turn: list[bytes], from_client: bool
    ) -> None:
        try:
            while chunk := src.recv(1 << 16):
                if not from_client:
                    self.replying.wait()
                with self._lock:
                    if from_client:
                        self.requested.set()
                        turn.append(chunk)
                    elif turn:
                        self.sent.append(b"".join(turn).split(None, 1)[0].decode())
                        turn.clear()
                dst.sendall(chunk)
        except OSError:
            pass
        if from_client:
            with self._lock:
                self.open -= 1
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def since(self, mark: int) -> list[str]:
        """The commands of the round trips after ``mark`` (a length of :attr:`sent`)."""
        with self._lock:
            return self.sent[mark:]

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def relay(server: tuple[str, int]) -> Iterator[CountingRelay]:
    counting = CountingRelay(server)
    yield counting
    counting.close()


def trips(relay: CountingRelay, operation: Callable[[], object]) -> list[str]:
    """The commands ``operation`` sent, one per round trip."""
    mark = len(relay.sent)
    operation()
    return relay.since(mark)


async def async_trips(
    relay: CountingRelay, operation: Callable[[], Awaitable[object]]
) -> list[str]:
    mark = len(relay.sent)
    await operation()
    return relay.since(mark)


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
    assert store.create(Create(key(1), b"long", NOW, NOW + 31 * DAY, NOW))
    assert store.create(Create(key(2), b"short", NOW, NOW + 29 * DAY, NOW))
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert record.payload == b"long"
    # Sent as a relative 31 days, memcached would read it as a date in 1970: gone at once.
    ttl = remaining_ttl(raw, prefix + key(1))
    assert ttl is not None
    assert 31 * DAY - 5 <= ttl <= 31 * DAY + ABSOLUTE_SLACK
    ttl = remaining_ttl(raw, prefix + key(2))
    assert ttl is not None
    assert 29 * DAY - 5 <= ttl <= 29 * DAY
    store.close()


def test_touch_update_and_locks_set_native_ttls(url: str, raw: Client, prefix: str) -> None:
    store = MemcachedStore(url=url, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + 100, NOW))
    assert 95 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 100
    assert store.touch(Touch(key(1), NOW + 1, NOW + 5000, NOW + 1))
    assert 4995 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 5000
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert (record.payload, record.version, record.accessed_at) == (b"x", 1, NOW + 1)
    assert store.update(Update(key(1), b"y", NOW, NOW + 40 * DAY, NOW, 1)) == 2
    assert 40 * DAY - 5 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 40 * DAY + ABSOLUTE_SLACK
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    assert 25 <= (remaining_ttl(raw, prefix + key(1) + ":lock") or 0) <= 30
    # A deadline already past gets the one-second floor, never 0 (which would mean "forever").
    assert store.touch(Touch(key(1), NOW, NOW - 5, NOW))
    assert 0 <= (remaining_ttl(raw, prefix + key(1)) or 0) <= 1
    store.close()


def test_round_trips_per_operation(server: tuple[str, int], prefix: str, raw: Client) -> None:
    """Requests written on the socket of a client passed in: a write with the handle of the
    load before it is one cas (a meta set) on the token that load saw; without one it reads
    first. A locked load is add + gets, and the unlock after a write is a second step (gets +
    cas on the lock), as memcached has no multi-key step."""
    sent = [0]

    class CountingSocket(socket.socket):
        def sendall(self, data: bytes, flags: int = 0) -> None:
            sent[0] += 1
            super().sendall(data, flags)

    counting_module = SimpleNamespace(**{**vars(socket), "socket": CountingSocket})
    client = Client(server, socket_module=counting_module)
    store = MemcachedStore(client, prefix=prefix)
    lock = LockRequest("t", 30.0)
    loaded: list[Record] = []

    def load(op: Load) -> None:
        record = store.load(op)
        assert isinstance(record, Record)
        loaded.append(record)

    def handle() -> object:
        return loaded[-1].handle

    def touch() -> object:
        return store.touch(Touch(key(1), NOW, NOW + HOUR, NOW, handle=handle()))

    def update(payload: bytes, expected: int | None, unlock: str | None = None) -> object:
        op = Update(key(1), payload, NOW, NOW + HOUR, NOW, expected, unlock, handle())
        return store.update(op)

    expected: list[tuple[str, Callable[[], object], int]] = [
        ("create", lambda: store.create(Create(key(1), b"p", NOW, NOW + HOUR, NOW)), 1),
        ("load", lambda: load(Load(key(1), NOW)), 1),
        ("load+lock", lambda: load(Load(key(1), NOW, lock)), 2),
        ("touch", touch, 1),
        # The handle is stale after the touch: the cas is refused, the store reads and writes.
        ("update+unlock, stale handle", lambda: update(b"q", 1, "t"), 5),
        # The unlock's cas made the lock item vanish at once, so this add succeeds first time.
        ("load+lock again", lambda: load(Load(key(1), NOW, lock)), 2),
        ("unlock", lambda: store.unlock(Unlock(key(1), "t")), 2),
        ("update", lambda: update(b"r", None), 1),
        (
            "update without a handle",
            lambda: store.update(Update(key(1), b"s", NOW, NOW + HOUR, NOW, 3)),
            2,
        ),
        ("delete", lambda: store.delete(Delete(key(1))), 2),
    ]
    client.version()  # connect first
    for name, operation, round_trips in expected:
        before = sent[0]
        operation()
        assert sent[0] - before == round_trips, name
    assert raw.get(prefix + key(1) + ":lock") is None
    client.close()


def test_a_write_after_a_load_is_one_round_trip(relay: CountingRelay, prefix: str) -> None:
    store = MemcachedStore(url=relay.url, prefix=prefix)
    assert trips(relay, lambda: store.create(Create(key(1), b"p", NOW, NOW + HOUR, NOW))) == ["add"]
    loaded: list[object] = []
    assert trips(relay, lambda: loaded.append(store.load(Load(key(1), NOW)))) == ["gets"]
    record = loaded[0]
    assert isinstance(record, Record)
    result: list[object] = []
    # No handle (the caller did not load it): the store reads first.
    touch = Touch(key(1), NOW + 2, NOW + HOUR, NOW)
    assert trips(relay, lambda: result.append(store.touch(touch))) == ["gets", "ms"]
    # A handle that went stale (the touch changed the item's token, not its version): the cas
    # is refused, the store reads, the version matches, it writes.
    stale = Update(key(1), b"q", NOW, NOW + HOUR, NOW, 1, handle=record.handle)
    assert trips(relay, lambda: result.append(store.update(stale))) == ["ms", "gets", "ms"]
    # The handle of the load just before: one meta set.
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    update = Update(key(1), b"r", NOW, NOW + HOUR, NOW, 2, handle=record.handle)
    assert trips(relay, lambda: result.append(store.update(update))) == ["ms"]
    assert result == [True, 2, 3]
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert record[:4] == (b"r", 3, NOW, NOW + HOUR)
    store.close()


def test_a_writer_between_load_and_update_is_caught(
    relay: CountingRelay, prefix: str, raw: Client
) -> None:
    """A load's handle is only a first guess: the server's cas check decides."""
    mine = MemcachedStore(url=relay.url, prefix=prefix)
    theirs = MemcachedStore(url=relay.url, prefix=prefix)
    k = key(1)
    assert mine.create(Create(k, b"0", NOW, NOW + HOUR, NOW))
    seen: list[object] = []

    def load() -> object:
        record = mine.load(Load(k, NOW))
        assert isinstance(record, Record)
        return record.handle

    def update(payload: bytes, expected: int | None, handle: object) -> Callable[[], object]:
        op = Update(k, payload, NOW, NOW + HOUR, NOW, expected, handle=handle)
        return lambda: seen.append(mine.update(op))

    # They save between my load and my save: my cas is refused, the version I expected is gone.
    handle = load()
    assert theirs.update(Update(k, b"theirs", NOW, NOW + HOUR, NOW, 1)) == 2
    assert trips(relay, update(b"mine", 1, handle)) == ["ms", "gets"]
    # They touch in between: the token changed, the version did not, so my save goes through.
    handle = load()
    assert theirs.touch(Touch(k, NOW + 5, NOW + HOUR, NOW))
    assert trips(relay, update(b"mine", 2, handle)) == ["ms", "gets", "ms"]
    # A blind save (no expected version) over their save bumps the version it finds.
    handle = load()
    assert theirs.update(Update(k, b"theirs", NOW, NOW + HOUR, NOW, None)) == 4
    assert trips(relay, update(b"blind", None, handle)) == ["ms", "gets", "ms"]
    assert seen == [None, 3, 5]
    record = theirs.load(Load(k, NOW))
    assert isinstance(record, Record)
    assert record[:4] == (b"blind", 5, NOW, NOW + HOUR)
    # They destroy it: my save and my touch find nothing in one round trip, and create nothing.
    handle = load()
    theirs.delete(Delete(k))
    assert trips(relay, update(b"late", 5, handle)) == ["ms"]
    assert seen[-1] is None
    assert not mine.touch(Touch(k, NOW, NOW + HOUR, NOW, handle=handle))
    assert raw.get(prefix + k) is None
    # They destroy it and create it again under the same key, with the same version: a new item
    # has a new token, so my cas is refused all the same, and the version check runs on theirs.
    assert mine.create(Create(k, b"0", NOW, NOW + HOUR, NOW))
    handle = load()
    theirs.delete(Delete(k))
    assert theirs.create(Create(k, b"again", NOW, NOW + HOUR, NOW))
    assert trips(relay, update(b"mine", 1, handle)) == ["ms", "gets", "ms"]
    assert seen[-1] == 2
    # A handle of another version than the one expected is not even tried: read.
    handle = load()
    assert trips(relay, update(b"mine", 1, handle)) == ["gets"]
    assert seen[-1] is None
    mine.close()
    theirs.close()


def loaded_handle(store: MemcachedStore, k: str) -> object:
    """The handle of record ``k`` as ``store`` loads it now."""
    record = store.load(Load(k, NOW))
    assert isinstance(record, Record)
    return record.handle


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` (the relay's threads see a socket close a moment after it happens)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_pool_keeps_at_most_pool_size_idle_connections(
    relay: CountingRelay, prefix: str
) -> None:
    store = MemcachedStore(url=relay.url, prefix=prefix, pool_size=2)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    start = threading.Barrier(8)
    failures: list[object] = []

    def loads() -> None:
        start.wait()
        for _ in range(40):
            record = store.load(Load(key(1), NOW))
            if not isinstance(record, Record):
                failures.append(record)

    workers = [threading.Thread(target=loads) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    # Clients beyond pool_size that a burst opened were closed when they came back.
    assert wait_until(lambda: relay.open <= 2), relay.open
    assert store.load(Load(key(1), NOW)) is not None
    store.close()
    assert wait_until(lambda: relay.open == 0), relay.open


def test_other_pymemcache_clients_passed_in(relay: CountingRelay, prefix: str, raw: Client) -> None:
    """A PooledClient sends the meta set too, with the client's key_prefix; a HashClient has no
    raw_command, so it sends the classic cas, whose reply has no new token: its next write
    reads first."""
    prefixed = Client(("127.0.0.1", relay.port), key_prefix=prefix)
    store = MemcachedStore(prefixed, prefix="app:")
    assert store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    handle = loaded_handle(store, key(2))
    update = Update(key(2), b"y", NOW, NOW + HOUR, NOW, 1, handle=handle)
    assert trips(relay, lambda: store.update(update)) == ["ms"]
    assert plain(store.load(Load(key(2), NOW))) == (b"y", 2, NOW, NOW + HOUR)
    assert (raw.get(prefix + "app:" + key(2)) or b"").endswith(b"y")
    store.delete(Delete(key(2)))
    prefixed.close()
    pooled = PooledClient(("127.0.0.1", relay.port), max_pool_size=2)
    store = MemcachedStore(pooled, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    handle = loaded_handle(store, key(1))
    touch = Touch(key(1), NOW + 1, NOW + HOUR, NOW, handle=handle)
    assert trips(relay, lambda: store.touch(touch)) == ["ms"]
    store.close()
    pooled.close()
    hashed = HashClient([("127.0.0.1", relay.port)])
    store = MemcachedStore(hashed, prefix=prefix)
    handle = loaded_handle(store, key(1))
    updated: list[object] = []
    update = Update(key(1), b"y", NOW, NOW + HOUR, NOW, 1, handle=handle)
    assert trips(relay, lambda: updated.append(store.update(update))) == ["cas"]
    assert trips(
        relay, lambda: updated.append(store.touch(Touch(key(1), NOW + 2, NOW + HOUR, NOW)))
    ) == [
        "gets",
        "cas",
    ]
    assert updated == [2, True]
    assert plain(store.load(Load(key(1), NOW))) == (b"y", 2, NOW + 2, NOW + HOUR)
    store.close()
    hashed.close()


@pytest.mark.asyncio
async def test_async_a_write_after_a_load_is_one_round_trip(
    relay: CountingRelay, prefix: str
) -> None:
    store = AsyncMemcachedStore(url=relay.url, prefix=prefix)
    other = AsyncMemcachedStore(url=relay.url, prefix=prefix)
    k = key(1)

    async def handle() -> object:
        record = await store.load(Load(k, NOW))
        assert isinstance(record, Record)
        return record.handle

    assert await async_trips(
        relay, lambda: store.create(Create(k, b"p", NOW, NOW + HOUR, NOW))
    ) == ["add"]
    assert await async_trips(relay, lambda: store.load(Load(k, NOW))) == ["gets"]
    seen = await handle()
    update = Update(k, b"q", NOW, NOW + HOUR, NOW, 1, handle=seen)
    assert await async_trips(relay, lambda: store.update(update)) == ["ms"]
    seen = await handle()
    touch = Touch(k, NOW + 1, NOW + HOUR, NOW, handle=seen)
    assert await async_trips(relay, lambda: store.touch(touch)) == ["ms"]
    # Another writer in between: the cas is refused, the store reads again, the version decides.
    seen = await handle()
    assert await other.update(Update(k, b"theirs", NOW, NOW + HOUR, NOW, 2)) == 3
    update = Update(k, b"r", NOW, NOW + HOUR, NOW, 2, handle=seen)
    assert await async_trips(relay, lambda: store.update(update)) == ["ms", "gets"]
    seen = await handle()
    assert await other.touch(Touch(k, NOW + 2, NOW + HOUR, NOW))
    update = Update(k, b"r", NOW, NOW + HOUR, NOW, 3, handle=seen)
    assert await async_trips(relay, lambda: store.update(update)) == ["ms", "gets", "ms"]
    assert plain(await other.load(Load(k, NOW))) == (b"r", 4, NOW, NOW + HOUR)
    seen = await handle()
    await other.delete(Delete(k))
    touch = Touch(k, NOW, NOW + HOUR, NOW, handle=seen)
    assert await async_trips(relay, lambda: store.touch(touch)) == ["ms"]
    assert await store.load(Load(k, NOW)) is None
    await store.aclose()
    await other.aclose()


@pytest.mark.asyncio
async def test_async_client_passed_in_sends_the_meta_set(relay: CountingRelay, prefix: str) -> None:
    client = aiomcache.Client("127.0.0.1", relay.port)
    store = AsyncMemcachedStore(client, prefix=prefix)
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    record = await store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    update = Update(key(1), b"y", NOW, NOW + HOUR, NOW, 1, handle=record.handle)
    assert await async_trips(relay, lambda: store.update(update)) == ["ms"]
    assert plain(await store.load(Load(key(1), NOW))) == (b"y", 2, NOW, NOW + HOUR)
    await store.aclose()
    await client.close()


def test_bad_prefixes_and_keys_are_refused(url: str) -> None:
    for bad in ["a b", "tab\t", "new\nline", "\x00", "ünï:", "x" * 182]:
        with pytest.raises(ConfigurationError):
            MemcachedStore(url=url, prefix=bad)
    MemcachedStore(url=url, prefix="x" * 181).close()  # 181 + 64 + ":lock" = 250 bytes
    store = MemcachedStore(url=url, prefix="ok:")
    for bad_key in ["", "a b", "é", "\x00", "k" * 246]:
        with pytest.raises(ValueError, match="invalid store key"):
            store.load(Load(bad_key, NOW))
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
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert raw.get(prefix + key(1)) is not None
    store.close()


def test_two_prefixes_are_isolated(url: str, prefix: str, raw: Client) -> None:
    other = prefix + "b:"
    app_a = MemcachedStore(url=url, prefix=prefix)
    app_b = MemcachedStore(url=url, prefix=other)
    assert app_a.create(Create(key(1), b"a", NOW, NOW + HOUR, NOW))
    assert app_b.load(Load(key(1), NOW)) is None
    assert app_b.update(Update(key(1), b"b", NOW, NOW + HOUR, NOW, None)) is None
    assert app_b.create(Create(key(1), b"b", NOW, NOW + HOUR, NOW))
    app_b.delete(Delete(key(1)))
    record = app_a.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert record.payload == b"a"
    app_a.close()
    app_b.close()


def run_counter(store: MemcachedStore, k: str, increments: int, start: threading.Barrier) -> None:
    start.wait()
    for _ in range(increments):
        while True:
            record = store.load(Load(k, NOW))
            assert isinstance(record, Record)
            payload = str(int(record.payload) + 1).encode()
            if store.update(Update(k, payload, NOW, NOW + HOUR, NOW, record.version)) is not None:
                break


def run_touches(store: MemcachedStore, k: str, times: int, start: threading.Barrier) -> None:
    start.wait()
    for n in range(times):
        # A touch changes the cas id but not the version: updates must retry, not give up.
        assert store.touch(Touch(k, NOW + n, NOW + HOUR, NOW))


def test_concurrent_cas_increments_from_threads_end_exact(url: str, prefix: str) -> None:
    counters, increments = 8, 40
    store = MemcachedStore(url=url, prefix=prefix, pool_size=counters + 1)
    k = key("counter")
    assert store.create(Create(k, b"0", NOW, NOW + HOUR, NOW))
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
    record = store.load(Load(k, NOW))
    assert isinstance(record, Record)
    assert int(record.payload) == counters * increments
    assert record.version == counters * increments + 1
    store.close()


@pytest.mark.asyncio
async def test_concurrent_async_increments_end_exact(url: str, prefix: str) -> None:
    store = AsyncMemcachedStore(url=url, prefix=prefix, pool_size=4)
    k = key("counter")
    assert await store.create(Create(k, b"0", NOW, NOW + HOUR, NOW))

    async def blind_increments(n: int) -> None:
        for _ in range(n):
            while True:
                record = await store.load(Load(k, NOW))
                assert isinstance(record, Record)
                payload = str(int(record.payload) + 1).encode()
                if await store.update(Update(k, payload, NOW, NOW + HOUR, NOW, record.version)):
                    break

    async def touches(n: int) -> None:
        for _ in range(n):
            assert await store.touch(Touch(k, NOW, NOW + HOUR, NOW))

    await asyncio.gather(*(blind_increments(25) for _ in range(6)), touches(50))
    record = await store.load(Load(k, NOW))
    assert isinstance(record, Record)
    assert (int(record.payload), record.version) == (150, 151)
    await store.aclose()


def test_a_client_passed_in_stays_open(server: tuple[str, int], prefix: str) -> None:
    client = Client(server)
    store = MemcachedStore(client, prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    sock = client.sock
    store.close()
    assert client.sock is sock is not None
    assert client.get(prefix + key(1)) is not None
    client.close()


@pytest.mark.asyncio
async def test_async_client_passed_in_stays_open(server: tuple[str, int], prefix: str) -> None:
    client = aiomcache.Client(server[0], server[1])
    store = AsyncMemcachedStore(client, prefix=prefix)
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
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
            partial(store.load, Load(key(1), NOW)),
            partial(store.create, Create(key(1), b"x", NOW, NOW + HOUR, NOW)),
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
            await store.load(Load(key(1), NOW))
        assert time.monotonic() - started < 1.0
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
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        # Restarted between two requests: the pooled connection is stale, the next call works.
        server.stop()
        server.start()
        assert store.load(Load(key(1), NOW)) is None  # memcached keeps nothing across a restart
        server.stop()
        with pytest.raises(store.unavailable_errors):
            store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        server.start()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        store.close()


@pytest.mark.asyncio
async def test_the_async_store_recovers_when_its_server_restarts() -> None:
    with own_server("memcached") as server:
        store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{server.port}", timeout=1.0)
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        server.stop()
        server.start()
        assert await store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None)) is None
        server.stop()
        with pytest.raises(store.unavailable_errors):
            await store.load(Load(key(1), NOW))
        server.start()
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
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
