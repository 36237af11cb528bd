"""MemcachedStore's round trips: one per write after a load, the server's cas deciding."""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import SimpleNamespace

import aiomcache
import pytest
from pymemcache.client.base import Client, PooledClient
from pymemcache.client.hash import HashClient

from coatcheck.stores import Create, Delete, Load, LockRequest, Record, Touch, Unlock, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._sync.memcached import MemcachedStore

from .._support import HOUR, NOW, key
from ._probes import CountingRelay, async_trips, plain, trips

pytestmark = pytest.mark.server("memcached")


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
    # Connect, and let the store check the server's version (once, before its first command).
    assert store.load(Load(key(9), NOW)) is None
    for name, operation, round_trips in expected:
        before = sent[0]
        operation()
        assert sent[0] - before == round_trips, name
    assert raw.get(prefix + key(1) + ":lock") is None
    client.close()


def test_a_write_after_a_load_is_one_round_trip(relay: CountingRelay, prefix: str) -> None:
    store = MemcachedStore(url=relay.url, prefix=prefix)
    # The store's first command asks the server's version first, and no later one does.
    first = trips(relay, lambda: store.create(Create(key(1), b"p", NOW, NOW + HOUR, NOW)))
    assert first == ["version", "add"]
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
    ) == ["version", "add"]  # the version is checked once, before the first command
    assert await async_trips(relay, lambda: store.load(Load(k, NOW))) == ["mg"]
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
    assert await async_trips(relay, lambda: store.update(update)) == ["ms", "mg"]
    seen = await handle()
    assert await other.touch(Touch(k, NOW + 2, NOW + HOUR, NOW))
    update = Update(k, b"r", NOW, NOW + HOUR, NOW, 3, handle=seen)
    assert await async_trips(relay, lambda: store.update(update)) == ["ms", "mg", "ms"]
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
