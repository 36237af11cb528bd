"""RedisStore on a Redis Cluster: where the keys go, scripts on every node, a session's life."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from coatcheck import AsyncSessionManager, SessionLocked, SessionManager
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
from coatcheck.testing import FrozenClock

from .._support import HOUR, NOW, key
from ._deployments import HOST, Cluster, node_keys, topology_prefix

# These tests start deployments of their own; the mark keeps them with the other Redis tests.
pytestmark = pytest.mark.server("redis")


def test_cluster_sessions_spread_over_every_node_and_count_sees_them_all(
    cluster: Cluster, sync_cluster_client: redis.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    store = RedisStore(sync_cluster_client, prefix=prefix)
    for n in range(60):
        assert store.create(Create(key(n), b"1234", NOW, NOW + (10 if n % 4 == 0 else HOUR), NOW))
    per_node = node_keys(cluster, prefix + "*")
    assert all(len(keys) > 0 for keys in per_node.values()), {
        p: len(k) for p, k in per_node.items()
    }
    assert sum(len(keys) for keys in per_node.values()) == 60
    assert store.count(NOW) == 60
    stats = store.stats(NOW + 20)
    assert (stats.live, stats.expired, stats.payload_bytes) == (45, 15, 240)
    for n in range(60):
        store.delete(Delete(key(n)))
    assert store.count(NOW) == 0
    assert node_keys(cluster, prefix + "*") == {port: set() for port in cluster.ports}
    store.close()


@pytest.mark.asyncio
async def test_async_cluster_count_and_stats_see_every_node(
    cluster: Cluster, async_cluster: redis.asyncio.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    store = AsyncRedisStore(async_cluster, prefix=prefix)
    for n in range(60):
        assert await store.create(
            Create(key(n), b"12", NOW, NOW + (10 if n % 3 == 0 else HOUR), NOW)
        )
    # A lock key on the way must not be counted as a record.
    assert isinstance(await store.load(Load(key(0), NOW, LockRequest("t", 30.0))), Record)
    per_node = node_keys(cluster, prefix + "*")
    assert all(len(keys) > 0 for keys in per_node.values())
    assert await store.count(NOW) == 60
    stats = await store.stats(NOW + 20)
    assert (stats.live, stats.expired, stats.payload_bytes) == (40, 20, 120)
    for n in range(60):
        await store.delete(Delete(key(n)))
    assert node_keys(cluster, prefix + "*") == {port: set() for port in cluster.ports}
    await store.aclose()


def test_cluster_record_and_lock_share_a_slot_and_a_node(
    cluster: Cluster, sync_cluster_client: redis.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    store = RedisStore(sync_cluster_client, prefix=prefix)
    ports_used = set()
    for n in range(12):
        assert store.create(Create(key(n), b"x", NOW, NOW + HOUR, NOW))
        assert isinstance(store.load(Load(key(n), NOW, LockRequest("t", 30.0))), Record)
        record_key = f"{prefix}{{{key(n)}}}"
        lock_key = record_key + ":lock"
        # Asked of the server, not computed here: CLUSTER KEYSLOT is what routing obeys.
        slots = {sync_cluster_client.cluster_keyslot(k) for k in (record_key, lock_key)}
        assert slots == {key_slot(key(n).encode())}
        owner = sync_cluster_client.get_node_from_key(record_key)
        assert owner is not None and owner.port is not None
        ports_used.add(owner.port)
        with cluster.node_client(owner.port) as node:
            assert node.exists(record_key, lock_key) == 2
        store.delete(Delete(key(n)))
    assert ports_used == set(cluster.ports)
    store.close()


def script_keys_on_every_node(cluster: Cluster, prefix: str) -> list[str]:
    """One session key per node, so every script runs on every node."""
    chosen: dict[int, str] = {}
    with redis.cluster.RedisCluster(host=HOST, port=cluster.ports[0]) as client:
        for n in range(100):
            node = client.get_node_from_key(f"{prefix}{{{key(n)}}}")
            assert node is not None and node.port is not None
            chosen.setdefault(node.port, key(n))
            if len(chosen) == len(cluster.ports):
                return list(chosen.values())
    raise AssertionError("100 keys did not reach every node")


def flush_scripts(cluster: Cluster) -> None:
    """Empty every node's script cache, so the store must load its scripts again (NOSCRIPT)."""
    for port in cluster.ports:
        with cluster.node_client(port) as node:
            node.script_flush()


def test_cluster_every_script_runs_on_every_node(
    cluster: Cluster, sync_cluster_client: redis.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    store = RedisStore(sync_cluster_client, prefix=prefix)
    for k in script_keys_on_every_node(cluster, prefix):
        flush_scripts(cluster)
        assert store.create(Create(k, b"v1", NOW, NOW + HOUR, NOW))
        slid = store.load(Load(k, NOW + 120, None, Slide(NOW + 120, NOW + 2 * HOUR, NOW + 60)))
        assert slid == Record(b"v1", 1, NOW + 120, NOW + 2 * HOUR)
        assert isinstance(store.load(Load(k, NOW, LockRequest("a", 30.0))), Record)
        assert store.load(Load(k, NOW, LockRequest("b", 30.0))) is LOCKED
        assert store.update(Update(k, b"v2", NOW, NOW + HOUR, NOW, 1, unlock="a")) == 2
        assert store.update(Update(k, b"stale", NOW, NOW + HOUR, NOW, 1)) is None
        assert isinstance(store.load(Load(k, NOW, LockRequest("b", 30.0))), Record)
        assert store.touch(Touch(k, NOW + 5, NOW + HOUR, NOW + 5, unlock="b")) is True
        assert isinstance(store.load(Load(k, NOW + 5, LockRequest("c", 30.0))), Record)
        store.unlock(Unlock(k, "c"))
        assert store.update(Update(k, b"v3", NOW, NOW + HOUR, NOW, None)) == 3
        record = store.load(Load(k, NOW + 5))
        assert isinstance(record, Record)
        assert (record.payload, record.version, record.accessed_at) == (b"v3", 3, NOW)
        store.delete(Delete(k))
        assert store.touch(Touch(k, NOW, NOW + HOUR, NOW)) is False
        assert store.update(Update(k, b"late", NOW, NOW + HOUR, NOW, None)) is None
        store.unlock(Unlock(k, "c"))
    assert node_keys(cluster, prefix + "*") == {port: set() for port in cluster.ports}
    store.close()


@pytest.mark.asyncio
async def test_async_cluster_every_script_runs_on_every_node(
    cluster: Cluster, async_cluster: redis.asyncio.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    store = AsyncRedisStore(async_cluster, prefix=prefix)
    for k in script_keys_on_every_node(cluster, prefix):
        flush_scripts(cluster)
        assert await store.create(Create(k, b"v1", NOW, NOW + HOUR, NOW))
        slid = await store.load(
            Load(k, NOW + 120, None, Slide(NOW + 120, NOW + 2 * HOUR, NOW + 60))
        )
        assert slid == Record(b"v1", 1, NOW + 120, NOW + 2 * HOUR)
        assert isinstance(await store.load(Load(k, NOW, LockRequest("a", 30.0))), Record)
        assert await store.load(Load(k, NOW, LockRequest("b", 30.0))) is LOCKED
        assert await store.update(Update(k, b"v2", NOW, NOW + HOUR, NOW, 1, unlock="a")) == 2
        assert await store.update(Update(k, b"stale", NOW, NOW + HOUR, NOW, 1)) is None
        assert isinstance(await store.load(Load(k, NOW, LockRequest("b", 30.0))), Record)
        assert await store.touch(Touch(k, NOW + 5, NOW + HOUR, NOW + 5, unlock="b")) is True
        assert isinstance(await store.load(Load(k, NOW + 5, LockRequest("c", 30.0))), Record)
        await store.unlock(Unlock(k, "c"))
        assert await store.update(Update(k, b"v3", NOW, NOW + HOUR, NOW, None)) == 3
        record = await store.load(Load(k, NOW + 5))
        assert isinstance(record, Record)
        assert (record.payload, record.version, record.accessed_at) == (b"v3", 3, NOW)
        await store.delete(Delete(k))
        assert await store.touch(Touch(k, NOW, NOW + HOUR, NOW)) is False
    assert node_keys(cluster, prefix + "*") == {port: set() for port in cluster.ports}
    await store.aclose()


# -- a whole session's life through the manager ------------------------------------------------


def test_cluster_session_manager_round_trip_in_lock_mode(
    cluster: Cluster, sync_cluster_client: redis.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    clock = FrozenClock()
    store = RedisStore(sync_cluster_client, prefix=prefix)
    manager = SessionManager(store, clock=clock, concurrency="lock", lock_wait=0)
    session = manager.open(None)
    session["user"] = "ada"
    ticket = manager.save(session).ticket
    assert ticket is not None
    holder = manager.open(ticket)
    assert holder["user"] == "ada" and holder.lock_token is not None
    with pytest.raises(SessionLocked):
        manager.open(ticket)
    holder["cart"] = [1, 2]
    holder.regenerate()
    new_ticket = manager.save(holder).ticket
    assert new_ticket is not None and new_ticket != ticket
    assert manager.open(ticket).is_new  # the old id is gone
    again = manager.open(new_ticket)  # and the new one is not locked
    assert (again["user"], again["cart"]) == ("ada", [1, 2])
    again.destroy()
    assert manager.save(again).cleared
    assert manager.open(new_ticket).is_new
    assert store.count(clock()) == 0
    assert node_keys(cluster, prefix + "*") == {port: set() for port in cluster.ports}
    manager.close()
    assert sync_cluster_client.ping()  # the manager closed the store, not the user's client


@pytest.mark.asyncio
async def test_async_cluster_session_manager_round_trip_in_lock_mode(
    cluster: Cluster, async_cluster: redis.asyncio.cluster.RedisCluster
) -> None:
    prefix = topology_prefix()
    clock = FrozenClock()
    store = AsyncRedisStore(async_cluster, prefix=prefix)
    manager = AsyncSessionManager(store, clock=clock, concurrency="lock", lock_wait=0)
    session = await manager.open(None)
    session["user"] = "ada"
    ticket = (await manager.save(session)).ticket
    assert ticket is not None
    holder = await manager.open(ticket)
    assert holder["user"] == "ada" and holder.lock_token is not None
    with pytest.raises(SessionLocked):
        await manager.open(ticket)
    holder["cart"] = [1, 2]
    holder.regenerate()
    new_ticket = (await manager.save(holder)).ticket
    assert new_ticket is not None and new_ticket != ticket
    assert (await manager.open(ticket)).is_new
    again = await manager.open(new_ticket)
    assert (again["user"], again["cart"]) == ("ada", [1, 2])
    again.destroy()
    assert (await manager.save(again)).cleared
    assert await store.count(clock()) == 0
    assert node_keys(cluster, prefix + "*") == {port: set() for port in cluster.ports}
    await manager.aclose()
    assert await async_cluster.ping()
