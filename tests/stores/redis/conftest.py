"""Fixtures of the RedisStore tests: a plain client on the shared server and unique key
prefixes there; private Cluster and Sentinel deployments, started once for the package and
only when a test that needs one runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio.cluster
import redis.cluster

from .._support import unique
from ._deployments import (
    Cluster,
    SentinelDeployment,
    async_cluster_client,
    cluster_client,
    redis_cluster,
    redis_sentinel,
)


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
        given.append(unique("cc-test-") + ":")
        return given[-1]

    yield make
    for prefix in given:
        for k in raw.scan_iter(match=prefix + "*", count=1000):
            raw.delete(k)


@pytest.fixture
def url(server: tuple[str, int]) -> str:
    return f"redis://{server[0]}:{server[1]}/0"


# -- private deployments and clients on them --------------------------------------------------


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as deployment:
        yield deployment


@pytest.fixture(scope="package")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    with redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as deployment:
        yield deployment


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
