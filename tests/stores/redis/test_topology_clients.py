"""RedisStore on Cluster and Sentinel clients: its name describes the deployment, and the
user's client stays the user's."""

from __future__ import annotations

import pytest

from coatcheck.stores import Create
from coatcheck.stores._async.redis import AsyncRedisStore
from coatcheck.stores._sync.redis import RedisStore

from .._support import NOW, key
from ._deployments import (
    HOST,
    Cluster,
    SentinelDeployment,
    aclose_sentinel_client,
    async_cluster_client,
    async_master_client,
    close_sentinel_client,
    cluster_client,
    master_client,
    topology_prefix,
)

# These tests start deployments of their own; the mark keeps them with the other Redis tests.
pytestmark = pytest.mark.server("redis")


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
        store = RedisStore(client, prefix=topology_prefix())
        for n in range(12):  # keys on every node, so every node's pool is in use
            assert store.create(Create(key(n), b"x", NOW, NOW + 10, NOW))
        store.close()
        # Same server-side connection on every node: no pool was disconnected.
        assert {node.name: client.client_id(target_nodes=node) for node in nodes} == before
    master = master_client(sentinel)
    before_id = master.client_id()
    store = RedisStore(master, prefix=topology_prefix())
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
    store = AsyncRedisStore(client, prefix=topology_prefix())
    for n in range(12):
        assert await store.create(Create(key(n), b"x", NOW, NOW + 10, NOW))
    await store.aclose()
    assert {node.name: await client.client_id(target_nodes=node) for node in nodes} == before
    await client.aclose()
    master = async_master_client(sentinel)
    before_id = await master.client_id()
    store = AsyncRedisStore(master, prefix=topology_prefix())
    assert await store.create(Create(key(1), b"x", NOW, NOW + 10, NOW))
    await store.aclose()
    assert await master.client_id() == before_id
    await aclose_sentinel_client(master)
