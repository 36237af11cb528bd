"""RedisStore on the user's own Cluster and Sentinel clients: the store contract, unchanged.

The suite of ``coatcheck.testing.contract``, with ``store`` fixtures that hand it a store built
on a ``RedisCluster`` or a Sentinel ``master_for`` client, in both flavours."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from coatcheck.stores._async.redis import AsyncRedisStore
from coatcheck.stores._sync.redis import RedisStore
from coatcheck.testing.contract import AsyncStoreContract, StoreContract

from ._deployments import (
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


TOPOLOGIES = ["cluster", "sentinel"]


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
    prefix = topology_prefix()
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
    prefix = topology_prefix()
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
