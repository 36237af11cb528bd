"""RedisStore with the user's own Cluster and Sentinel clients, on real private deployments.

The store contract runs unchanged against both: the suite of ``coatcheck.testing.contract``,
with ``store`` fixtures that hand it a store built on a ``RedisCluster`` or a Sentinel
``master_for`` client. Each deployment starts once per module,
and only when a test that needs it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.crc import key_slot

from coatcheck import AsyncSessionManager, SessionLocked, SessionManager, StoreUnavailable
from coatcheck._sansio.ids import storage_key
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
from coatcheck.testing.contract import AsyncStoreContract, StoreContract

from ._redis_topology import (
    HOST,
    Cluster,
    SentinelDeployment,
    redis_cluster,
    redis_sentinel,
    wait_until,
)

pytestmark = pytest.mark.server("redis")

NOW = float(int(time.time()))
HOUR = 3600.0
TOPOLOGIES = ["cluster", "sentinel"]


def key(n: int | str) -> str:
    return hashlib.sha256(f"topology-{n}".encode()).hexdigest()


# -- deployments and clients ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    with redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as deployment:
        yield deployment


def cluster_client(cluster: Cluster) -> redis.cluster.RedisCluster:
    nodes = [redis.cluster.ClusterNode(HOST, port) for port in cluster.ports]
    return redis.cluster.RedisCluster(startup_nodes=nodes, socket_timeout=2.0)


def async_cluster_client(cluster: Cluster) -> redis.asyncio.cluster.RedisCluster:
    nodes = [redis.asyncio.cluster.ClusterNode(HOST, port) for port in cluster.ports]
    return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, socket_timeout=2.0)


def master_client(deployment: SentinelDeployment, **options: Any) -> redis.Redis:
    manager = redis.sentinel.Sentinel(deployment.sentinels, socket_timeout=2.0)
    return manager.master_for(deployment.service, socket_timeout=2.0, **options)


def async_master_client(deployment: SentinelDeployment) -> redis.asyncio.Redis:
    manager = redis.asyncio.sentinel.Sentinel(deployment.sentinels, socket_timeout=2.0)
    return manager.master_for(deployment.service, socket_timeout=2.0)


def close_sentinel_client(client: redis.Redis) -> None:
    """Close a master_for client and the sentinel connections it asked for the master."""
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    for asked in pool.sentinel_manager.sentinels:
        asked.close()
    client.close()


async def aclose_sentinel_client(client: redis.asyncio.Redis) -> None:
    pool = client.connection_pool
    assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
    for asked in pool.sentinel_manager.sentinels:
        await asked.aclose()
    await client.aclose()


def new_prefix() -> str:
    return f"cc-topo-{uuid.uuid4().hex[:12]}:"


def node_keys(cluster: Cluster, pattern: str) -> dict[int, set[bytes]]:
    """The keys matching ``pattern`` on each node, asked of each node directly."""
    found = {}
    for port in cluster.ports:
        with cluster.node_client(port) as node:
            found[port] = set(node.scan_iter(match=pattern, count=1000))
    return found


@pytest.fixture
def sync_cluster_client(cluster: Cluster) -> Iterator[redis.cluster.RedisCluster]:
    client = cluster_client(cluster)
    yield client
    client.close()


@pytest_asyncio.fixture
async def async_cluster(cluster: Cluster) -> AsyncIterator[redis.asyncio.cluster.RedisCluster]:
    client = async_cluster_client(cluster)
    yield client
    await client.aclose()


# -- the store contract, on both topologies ----------------------------------------------------


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def sync_store(topology: str, request: pytest.FixtureRequest) -> Iterator[RedisStore]:
    # getfixturevalue: a deployment starts only when a test of its topology runs.
    deployment = request.getfixturevalue(topology)
    client: redis.Redis | redis.cluster.RedisCluster
    client = cluster_client(deployment) if topology == "cluster" else master_client(deployment)
    prefix = new_prefix()
    store = RedisStore(client, prefix=prefix)
    yield store
    store.close()
    for k in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(k)
    if isinstance(client, redis.cluster.RedisCluster):
        client.close()
    else:
        close_sentinel_client(client)


@pytest_asyncio.fixture
async def async_store(
    topology: str, request: pytest.FixtureRequest
) -> AsyncIterator[AsyncRedisStore]:
    deployment = request.getfixturevalue(topology)
    client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
    if topology == "cluster":
        client = async_cluster_client(deployment)
    else:
        client = async_master_client(deployment)
    prefix = new_prefix()
    store = AsyncRedisStore(client, prefix=prefix)
    yield store
    await store.aclose()
    async for k in client.scan_iter(match=prefix + "*", count=1000):
        await client.delete(k)
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        await client.aclose()
    else:
        await aclose_sentinel_client(client)


# The contract suite shipped in coatcheck.testing, on both topologies and both flavours.
class TestSyncContract(StoreContract):
    @pytest.fixture
    def store(self, sync_store: RedisStore) -> RedisStore:
        return sync_store

    @pytest.fixture
    def expires_natively(self) -> bool:
        return True


class TestAsyncContract(AsyncStoreContract):
    @pytest.fixture
    def store(self, async_store: AsyncRedisStore) -> AsyncRedisStore:
        return async_store

    @pytest.fixture
    def expires_natively(self) -> bool:
        return True


# -- cluster: where the keys go -----------------------------------------------------------------


def test_cluster_sessions_spread_over_every_node_and_count_sees_them_all(
    cluster: Cluster, sync_cluster_client: redis.cluster.RedisCluster
) -> None:
    prefix = new_prefix()
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
    prefix = new_prefix()
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
    prefix = new_prefix()
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
    prefix = new_prefix()
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
    prefix = new_prefix()
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


# -- cluster: a whole session's life through the manager -----------------------------------------


def test_cluster_session_manager_round_trip_in_lock_mode(
    cluster: Cluster, sync_cluster_client: redis.cluster.RedisCluster
) -> None:
    prefix = new_prefix()
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
    prefix = new_prefix()
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


# -- both topologies: names, and the user's client stays the user's -----------------------------


def test_names_describe_the_deployment(cluster: Cluster, sentinel: SentinelDeployment) -> None:
    with cluster_client(cluster) as client:
        store = RedisStore(client, prefix="app:")
        nodes = ",".join(sorted(f"{HOST}:{port}" for port in cluster.ports))
        assert store.name == f"redis-cluster://{nodes} prefix='app:'"
    # Never used, so the password the server does not expect costs nothing.
    master = master_client(sentinel, db=2, password="hunter2")
    store = RedisStore(master, prefix="app:")
    assert store.name == (
        f"redis+sentinel://{HOST}:{sentinel.sentinel.port}/{sentinel.service}/2 prefix='app:'"
    )
    close_sentinel_client(master)


def test_clients_passed_in_stay_open(cluster: Cluster, sentinel: SentinelDeployment) -> None:
    with cluster_client(cluster) as client:
        nodes = client.get_primaries()
        before = {node.name: client.client_id(target_nodes=node) for node in nodes}
        store = RedisStore(client, prefix=new_prefix())
        for n in range(12):  # keys on every node, so every node's pool is in use
            assert store.create(Create(key(n), b"x", NOW, NOW + 10, NOW))
        store.close()
        # Same server-side connection on every node: no pool was disconnected.
        assert {node.name: client.client_id(target_nodes=node) for node in nodes} == before
    master = master_client(sentinel)
    before_id = master.client_id()
    store = RedisStore(master, prefix=new_prefix())
    assert store.create(Create(key(1), b"x", NOW, NOW + 10, NOW))
    store.close()
    assert master.client_id() == before_id
    close_sentinel_client(master)


@pytest.mark.asyncio
async def test_async_clients_passed_in_stay_open(
    cluster: Cluster, sentinel: SentinelDeployment
) -> None:
    client = async_cluster_client(cluster)
    await client.initialize()
    nodes = client.get_primaries()
    before = {node.name: await client.client_id(target_nodes=node) for node in nodes}
    store = AsyncRedisStore(client, prefix=new_prefix())
    for n in range(12):
        assert await store.create(Create(key(n), b"x", NOW, NOW + 10, NOW))
    await store.aclose()
    assert {node.name: await client.client_id(target_nodes=node) for node in nodes} == before
    await client.aclose()
    master = async_master_client(sentinel)
    before_id = await master.client_id()
    store = AsyncRedisStore(master, prefix=new_prefix())
    assert await store.create(Create(key(1), b"x", NOW, NOW + 10, NOW))
    await store.aclose()
    assert await master.client_id() == before_id
    await aclose_sentinel_client(master)


# -- sentinel: a failover under a working store ---------------------------------------------------


def raw(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port)


def test_sessions_survive_a_sentinel_failover(tmp_path: Path) -> None:
    with redis_sentinel(tmp_path, replica=True, service="failover") as deployment:
        old_master = deployment.master.port
        assert deployment.replica is not None
        new_master = deployment.replica.port
        client = master_client(deployment)
        store = RedisStore(client, prefix=new_prefix())
        manager = SessionManager(store, concurrency="lock", lock_wait=0)
        session = manager.open(None)
        session["user"] = "ada"
        ticket = manager.save(session).ticket
        assert ticket is not None
        with raw(old_master) as master:
            assert master.wait(1, 5000) == 1  # the replica has every write so far

        deployment.failover()
        assert deployment.master_port() == new_master

        # The store goes on with the same client; a StoreUnavailable once is allowed.
        unavailable = 0
        for _ in range(2):
            try:
                after = manager.open(ticket)
                break
            except StoreUnavailable:
                unavailable += 1
        assert unavailable <= 1
        assert after["user"] == "ada" and after.lock_token is not None
        after["visits"] = 1
        manager.save(after)
        second = manager.open(None)
        second["user"] = "grace"
        assert manager.save(second).ticket is not None
        # The writes went to the new master, and replicate to the demoted one.
        with raw(new_master) as master:
            assert master.dbsize() == 2
            assert master.wait(1, 5000) == 1
        with raw(old_master) as replica:
            assert replica.role()[0] == b"slave" and replica.dbsize() == 2
        assert manager.open(ticket)["visits"] == 1
        manager.close()
        close_sentinel_client(client)


@pytest.mark.asyncio
async def test_async_sessions_survive_a_sentinel_failover(tmp_path: Path) -> None:
    with redis_sentinel(tmp_path, replica=True, service="failover") as deployment:
        old_master = deployment.master.port
        assert deployment.replica is not None
        new_master = deployment.replica.port
        client = async_master_client(deployment)
        store = AsyncRedisStore(client, prefix=new_prefix())
        manager = AsyncSessionManager(store, concurrency="lock", lock_wait=0)
        session = await manager.open(None)
        session["user"] = "ada"
        ticket = (await manager.save(session)).ticket
        assert ticket is not None
        with raw(old_master) as master:
            assert master.wait(1, 5000) == 1

        await asyncio.to_thread(deployment.failover)
        assert deployment.master_port() == new_master

        unavailable = 0
        for _ in range(2):
            try:
                after = await manager.open(ticket)
                break
            except StoreUnavailable:
                unavailable += 1
        assert unavailable <= 1
        assert after["user"] == "ada" and after.lock_token is not None
        after["visits"] = 1
        await manager.save(after)
        with raw(new_master) as master:
            assert master.dbsize() == 1
            assert master.wait(1, 5000) == 1
        with raw(old_master) as replica:
            assert replica.role()[0] == b"slave" and replica.dbsize() == 1
        assert (await manager.open(ticket))["visits"] == 1
        await manager.aclose()
        await aclose_sentinel_client(client)


def test_a_crashed_master_is_unavailable_until_the_sentinel_promotes_the_replica(
    tmp_path: Path,
) -> None:
    with redis_sentinel(tmp_path, replica=True, service="crash") as deployment:
        assert deployment.replica is not None
        new_master = deployment.replica.port
        client = master_client(deployment)
        manager = SessionManager(RedisStore(client, prefix=new_prefix()))
        session = manager.open(None)
        session["n"] = 1
        ticket = manager.save(session).ticket
        assert ticket is not None
        with raw(deployment.master.port) as master:
            assert master.wait(1, 5000) == 1
        deployment.master.stop()  # a crash: no SENTINEL FAILOVER, the sentinel must notice
        causes: list[str] = []

        def works_again() -> bool:
            try:
                session = manager.open(ticket)
                session["n"] += 1
                manager.save(session)
            except StoreUnavailable as exc:  # anything else fails the test
                causes.append(type(exc.__cause__).__name__)
                return False
            return True

        wait_until(works_again, "the store to work on the promoted replica", timeout=20)
        assert causes and set(causes) <= {"ConnectionError", "MasterNotFoundError"}
        assert deployment.master_port() == new_master
        assert manager.open(ticket)["n"] == 2  # nothing lost, nothing applied twice
        manager.close()
        close_sentinel_client(client)


def test_a_dead_cluster_node_fails_its_sessions_and_count_loudly(tmp_path: Path) -> None:
    with redis_cluster(tmp_path) as own_cluster, cluster_client(own_cluster) as client:
        prefix = new_prefix()
        store = RedisStore(client, prefix=prefix)
        manager = SessionManager(store)
        tickets: list[str] = []
        for n in range(12):
            session = manager.open(None)
            session["n"] = n
            ticket = manager.save(session).ticket
            assert ticket is not None
            tickets.append(ticket)
        victim = own_cluster.nodes[1]
        victim.stop()
        on_victim = [
            t
            for t in tickets
            if client.get_node_from_key(f"{prefix}{{{storage_key(t)}}}").port == victim.port
        ]
        assert 0 < len(on_victim) < len(tickets)
        for n, ticket in enumerate(tickets):
            if ticket in on_victim:
                with pytest.raises(StoreUnavailable):
                    manager.open(ticket)
            else:
                assert manager.open(ticket)["n"] == n
        # A count that skipped a node would be silently wrong; it fails instead.
        with pytest.raises(store.unavailable_errors):
            store.count(NOW)
        manager.close()
