"""The few memcached operations the store needs, over pymemcache (blocking).

The twin of ``_memcache_async`` (read its docstring): same names and meanings, so the generated
``_sync/memcached.py`` runs unchanged on top of it. Every call asks for a reply (``noreply=False``)
whatever the client's ``default_noreply``, since the store acts on what the server answered.
"""

from __future__ import annotations

from typing import Any

from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

__all__ = ["UNAVAILABLE_ERRORS", "DriverClient", "MemcacheAdapter"]

# pymemcache's Client, PooledClient or HashClient; it ships no type information.
DriverClient = Any

# Refused, reset and timed-out sockets are OSErrors (socket.timeout is TimeoutError).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (OSError, MemcacheUnexpectedCloseError)


class MemcacheAdapter:
    """A pymemcache client; its own ``connect_timeout`` and ``timeout`` bound every call."""

    def __init__(self, client: DriverClient, *, timeout: float | None, owned: bool) -> None:
        self.client = client
        self._owned = owned

    @classmethod
    def connect(
        cls, host: str, port: int, *, timeout: float | None, pool_size: int
    ) -> MemcacheAdapter:
        """A thread-safe pooled client of our own, closed by :meth:`close`."""
        client = PooledClient(
            (host, port),
            connect_timeout=timeout,
            timeout=timeout,
            no_delay=True,
            max_pool_size=pool_size,
            default_noreply=False,
        )
        return cls(client, timeout=timeout, owned=True)

    def describe(self) -> str:
        """``memcached://host:port``, from the client's settings."""
        server = getattr(self.client, "server", None)
        if isinstance(server, tuple) and len(server) == 2:
            return f"memcached://{server[0]}:{server[1]}"
        return "memcached://(client)"

    def get(self, key: bytes) -> bytes | None:
        """The value, or ``None``."""
        value: bytes | None = self.client.get(key)
        return value

    def gets(self, key: bytes) -> tuple[bytes, int] | None:
        """The value and its cas token, or ``None``."""
        value, token = self.client.gets(key)
        if value is None or token is None:
            return None
        return value, int(token)

    def add(self, key: bytes, value: bytes, exptime: int) -> bool:
        """Store only if absent; ``False`` when the key exists."""
        return bool(self.client.add(key, value, expire=exptime, noreply=False))

    def cas(self, key: bytes, value: bytes, token: int, exptime: int) -> bool:
        """Store only if unchanged since ``gets``; ``False`` when changed or gone."""
        return self.client.cas(key, value, token, expire=exptime, noreply=False) is True

    def delete(self, key: bytes) -> None:
        """Remove the key; a missing key is fine."""
        self.client.delete(key, noreply=False)

    def close(self) -> None:
        """Close the connections, if the client is ours."""
        if self._owned:
            self.client.close()
