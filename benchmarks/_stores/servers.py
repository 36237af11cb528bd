"""Where the store benchmark finds its servers, and how it points a client elsewhere.

Override the URLs with ``BENCH_PG_URL``, ``BENCH_MYSQL_URL``, ``BENCH_REDIS_URL`` and
``BENCH_MEMCACHED_URL``.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MEMCACHED_URL", "MYSQL_URL", "PG_URL", "REDIS_URL", "SERVER_URLS", "address"]

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED_URL = os.environ.get("BENCH_MEMCACHED_URL", "memcached://127.0.0.1:11211")

# Each server store's URL and its protocol's default port.
SERVER_URLS = {
    "postgresql": (PG_URL, 5432),
    "mysql": (MYSQL_URL, 3306),
    "redis": (REDIS_URL, 6379),
    "memcached": (MEMCACHED_URL, 11211),
}


def with_port(url: str, port: int) -> str:
    """``url`` with its port replaced (to point a client at the counting relay)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc[-1] = host
    return urlunsplit(parts._replace(netloc="@".join(netloc)))


def address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def answers(url: str, default_port: int) -> bool:
    try:
        with socket.create_connection(address(url, default_port), timeout=1.0):
            return True
    except OSError:
        return False
