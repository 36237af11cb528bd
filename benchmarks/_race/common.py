"""What every race shares: where the servers are, the session it starts from, and clean-up.

The servers' ports come from ``BENCH_REDIS_PORT``, ``BENCH_MEMCACHED_PORT``, ``BENCH_PG_PORT``
and ``BENCH_MYSQL_PORT``; the SQL databases from ``BENCH_PG_URL`` and ``BENCH_MYSQL_URL``.
"""

from __future__ import annotations

import os
import socket

__all__ = [
    "FIRST_VISIT",
    "LIFETIME",
    "MYSQL_URL",
    "PG_URL",
    "REDIS",
    "SERVERS",
    "WORKERS",
    "delete_redis_keys",
    "reachable",
]

REDIS = ("127.0.0.1", int(os.environ.get("BENCH_REDIS_PORT", "6379")))
MEMCACHED = ("127.0.0.1", int(os.environ.get("BENCH_MEMCACHED_PORT", "11211")))
POSTGRESQL = ("127.0.0.1", int(os.environ.get("BENCH_PG_PORT", "5432")))
MYSQL = ("127.0.0.1", int(os.environ.get("BENCH_MYSQL_PORT", "3306")))
PG_URL = os.environ.get(
    "BENCH_PG_URL", f"postgresql://postgres@{POSTGRESQL[0]}:{POSTGRESQL[1]}/test"
)
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", f"mysql://root@{MYSQL[0]}:{MYSQL[1]}/test")
SERVERS = {"redis": REDIS, "memcached": MEMCACHED, "postgresql": POSTGRESQL, "mysql": MYSQL}

LIFETIME = 3600
WORKERS = 2
# What the first visit stores besides the counter (~100 bytes, as in the peer measurements).
FIRST_VISIT = {
    "uid": 4217,
    "roles": ["user", "editor"],
    "csrf": "9f2c1e7ab04d4c55a8e1f03b6d2c7e19",
    "lang": "en",
}


def delete_redis_keys(pattern: str) -> None:
    import redis

    client = redis.Redis(*REDIS)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def reachable(server: str) -> bool:
    try:
        with socket.create_connection(SERVERS[server], timeout=1.0):
            return True
    except OSError:
        return False
