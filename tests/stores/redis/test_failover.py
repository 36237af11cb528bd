"""RedisStore through a deployment's failures: a Sentinel failover, a crashed master, a dead
Cluster node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from coatcheck import AsyncSessionManager, SessionManager, StoreUnavailable
from coatcheck._sansio.ids import storage_key
from coatcheck.stores._async.redis import AsyncRedisStore
from coatcheck.stores._sync.redis import RedisStore

from .._support import NOW
from ._deployments import (
    HOST,
    aclose_sentinel_client,
    async_master_client,
    close_sentinel_client,
    cluster_client,
    master_client,
    redis_cluster,
    redis_sentinel,
    topology_prefix,
    wait_until,
)

# These tests start deployments of their own; the mark keeps them with the other Redis tests.
pytestmark = pytest.mark.server("redis")


def raw(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port)


def test_sessions_survive_a_sentinel_failover(tmp_path: Path) -> None:
    with redis_sentinel(tmp_path, replica=True, service="failover") as deployment:
        old_master = deployment.master.port
        assert deployment.replica is not None
        new_master = deployment.replica.port
        client = master_client(deployment)
        store = RedisStore(client, prefix=topology_prefix())
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
        store = AsyncRedisStore(client, prefix=topology_prefix())
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
        manager = SessionManager(RedisStore(client, prefix=topology_prefix()))
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
        prefix = topology_prefix()
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
