"""Private Redis Cluster and Sentinel deployments on free ports, torn down afterwards, and the
clients a user would build on them.

Every process runs with its own directory (``--dir``), so nothing it writes (cluster node
tables, the RDB a replica receives during a full sync, the rewritten sentinel.conf) lands in
the working directory. None of them ever touches the shared server on 6379.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

from .._own_server import OwnServer, free_port, require_binaries
from .._support import unique

__all__ = [
    "HOST",
    "Cluster",
    "SentinelDeployment",
    "aclose_sentinel_client",
    "async_cluster_client",
    "async_master_client",
    "close_sentinel_client",
    "cluster_client",
    "master_client",
    "node_keys",
    "redis_cluster",
    "redis_sentinel",
    "topology_prefix",
    "wait_until",
]

HOST = "127.0.0.1"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _redis_server(directory: Path, *options: str) -> OwnServer:
    directory.mkdir(parents=True, exist_ok=True)
    command = ["redis-server", "--port", "{port}", "--bind", HOST, "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory), "--logfile", "redis.log"]
    return OwnServer(command + list(options))


def _started(stack: ExitStack, server: OwnServer) -> OwnServer:
    stack.callback(server.stop)
    server.start()
    return server


class Cluster:
    """A running Redis Cluster of primaries only, every slot covered."""

    def __init__(self, nodes: list[OwnServer]) -> None:
        self.nodes = nodes
        self.ports = [node.port for node in nodes]

    def node_client(self, port: int) -> redis.Redis:
        """A plain (non-cluster) client on one node: it sees only that node's keys."""
        return redis.Redis(host=HOST, port=port)


@contextmanager
def redis_cluster(directory: Path, size: int = 3) -> Iterator[Cluster]:
    """Start ``size`` cluster-enabled servers, join them with ``redis-cli --cluster create``."""
    require_binaries("redis-server", "redis-cli")
    with ExitStack() as stack:
        nodes = []
        for n in range(size):
            # The bus port is given explicitly: the default (port + 10000) may not exist.
            # Without full coverage a dead node fails only its own slots, from the first
            # refused connection on: the others keep serving however long the test takes,
            # instead of the whole cluster going down once the node timeout passes.
            node = _redis_server(
                directory / f"node-{n}",
                "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--cluster-require-full-coverage", "no",
            )  # fmt: skip
            nodes.append(_started(stack, node))
        create = ["redis-cli", "--cluster", "create"]
        create += [f"{HOST}:{node.port}" for node in nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        for node in nodes:
            client = stack.enter_context(redis.Redis(host=HOST, port=node.port))

            def state_ok(client: redis.Redis = client) -> bool:
                info = client.execute_command("CLUSTER INFO")  # parsed into a dict of str
                return bool(info["cluster_state"] == "ok")

            wait_until(state_ok, f"cluster_state:ok on node {node.port}")
        yield Cluster(nodes)


class SentinelDeployment:
    """A master, maybe one replica, and one sentinel watching them as ``service``."""

    def __init__(
        self, master: OwnServer, replica: OwnServer | None, sentinel: OwnServer, service: str
    ) -> None:
        self.master = master
        self.replica = replica
        self.sentinel = sentinel
        self.service = service
        self.sentinels = [(HOST, sentinel.port)]

    def _ask(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.sentinel.port, decode_responses=True)

    def master_port(self) -> int:
        """The master's port, as the sentinel currently reports it."""
        with self._ask() as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(self.service)
        return int(port)

    def failover(self, timeout: float = 15.0) -> None:
        """``SENTINEL FAILOVER`` to the replica; return once the old master follows the new one.

        Waiting for the demotion matters: until the sentinel turns the old master into a
        replica it still accepts writes, and those are lost when it resynchronises.
        """
        if self.replica is None:
            raise RuntimeError("this deployment has no replica to fail over to")
        old, new = self.master, self.replica
        with self._ask() as sentinel, redis.Redis(host=HOST, port=old.port) as old_client:
            sentinel.execute_command("SENTINEL", "FAILOVER", self.service)
            wait_until(lambda: self.master_port() == new.port, "the switch", timeout)

            def demoted() -> bool:
                role = old_client.role()
                return role[0] == b"slave" and role[2] == new.port and role[3] == b"connected"

            wait_until(demoted, "the old master to follow the new one", timeout)
        self.master, self.replica = new, old


@contextmanager
def redis_sentinel(
    directory: Path, *, replica: bool = False, service: str = "mymaster"
) -> Iterator[SentinelDeployment]:
    """Start a master (and a replica of it), then a sentinel that monitors it."""
    require_binaries("redis-server")
    with ExitStack() as stack:
        # No delay before a diskless full sync (the default waits 5 s for more replicas).
        master = _started(
            stack, _redis_server(directory / "master", "--repl-diskless-sync-delay", "0")
        )
        follower = None
        if replica:
            follower = _started(
                stack,
                _redis_server(
                    directory / "replica",
                    "--repl-diskless-sync-delay", "0",
                    "--replicaof", HOST, str(master.port),
                ),
            )  # fmt: skip
            master_client = stack.enter_context(redis.Redis(host=HOST, port=master.port))

            def synced() -> bool:
                info = master_client.info("replication")
                return info["connected_slaves"] == 1 and info["slave0"]["state"] == "online"

            wait_until(synced, "the replica's first sync")
        sentinel_dir = directory / "sentinel"
        sentinel_dir.mkdir(parents=True)
        conf = sentinel_dir / "sentinel.conf"  # the sentinel rewrites it, so it is its own copy
        sentinel = OwnServer(["redis-server", str(conf), "--sentinel"])
        conf.write_text(
            f"port {sentinel.port}\nbind {HOST}\ndir {sentinel_dir}\nlogfile sentinel.log\n"
            f"sentinel monitor {service} {HOST} {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 10000\n"
        )
        _started(stack, sentinel)
        deployment = SentinelDeployment(master, follower, sentinel, service)
        ask = stack.enter_context(deployment._ask())
        # Redis 7's SENTINEL DEBUG shortens the 10 s INFO period and the publish period that
        # time how soon a sentinel notices a promotion and reconfigures the old master.
        ask.execute_command("SENTINEL", "DEBUG", "info-period", 100, "publish-period", 200)
        if follower is not None:

            def replica_known() -> bool:
                replicas = ask.sentinel_slaves(service)
                return any(
                    int(r["port"]) == follower.port
                    and r["flags"] == "slave"
                    and r.get("master-link-status") == "ok"
                    for r in replicas
                )

            wait_until(replica_known, "the sentinel to know the replica")
        yield deployment


# -- the clients a user would build on them ----------------------------------------------------


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


def topology_prefix() -> str:
    """A key prefix no other test uses, for a store on a private deployment."""
    return unique("cc-topo-") + ":"


def node_keys(cluster: Cluster, pattern: str) -> dict[int, set[bytes]]:
    """The keys matching ``pattern`` on each node, asked of each node directly."""
    found = {}
    for port in cluster.ports:
        with cluster.node_client(port) as node:
            found[port] = set(node.scan_iter(match=pattern, count=1000))
    return found
