"""The few memcached operations the store needs, over pymemcache (blocking).

The twin of ``_memcache_async`` (read its docstring): same names and meanings, so the generated
``_sync/memcached.py`` runs unchanged on top of it. Every call asks for a reply (``noreply=False``)
whatever the client's ``default_noreply``, since the store acts on what the server answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

__all__ = ["UNAVAILABLE_ERRORS", "DriverClient", "MemcacheAdapter"]

T = TypeVar("T")

# pymemcache's Client, PooledClient or HashClient; it ships no type information.
DriverClient = Any

# Refused, reset and timed-out sockets are OSErrors (socket.timeout is TimeoutError).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (OSError, MemcacheUnexpectedCloseError)

# A pooled connection the server closed (it restarted) fails before the command is carried out,
# so sending it again on a fresh connection is safe. pymemcache drops a client that failed.
_STALE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    MemcacheUnexpectedCloseError,
)


class MemcacheAdapter:
    """A pymemcache client with a retry on stale connections.

    Its own ``connect_timeout`` and ``timeout`` bound every call. ``attempts`` bounds how many
    stale pooled connections one call may discard before it reports the error.
    """

    def __init__(self, client: DriverClient, *, timeout: float, attempts: int, owned: bool) -> None:
        self.client = client
        self._attempts = attempts
        self._owned = owned

    @classmethod
    def connect(cls, host: str, port: int, *, timeout: float, pool_size: int) -> MemcacheAdapter:
        """A thread-safe pooled client of our own, closed by :meth:`close`."""
        client = PooledClient(
            (host, port),
            connect_timeout=timeout,
            timeout=timeout,
            no_delay=True,
            max_pool_size=pool_size,
            default_noreply=False,
        )
        return cls(client, timeout=timeout, attempts=pool_size + 1, owned=True)

    def describe(self) -> str:
        """``memcached://host:port``, from the client's settings."""
        server = getattr(self.client, "server", None)
        if isinstance(server, tuple) and len(server) == 2:
            return f"memcached://{server[0]}:{server[1]}"
        return "memcached://(client)"

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                return fn(*args, **kwargs)
            except _STALE:
                if attempt == self._attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get(self, key: bytes) -> bytes | None:
        """The value, or ``None``."""
        value: bytes | None = self._call(self.client.get, key)
        return value

    def gets(self, key: bytes) -> tuple[bytes, int] | None:
        """The value and its cas token, or ``None``."""
        value, token = self._call(self.client.gets, key)
        if value is None or token is None:
            return None
        return value, int(token)

    def add(self, key: bytes, value: bytes, exptime: int) -> bool:
        """Store only if absent; ``False`` when the key exists."""
        return bool(self._call(self.client.add, key, value, expire=exptime, noreply=False))

    def cas(self, key: bytes, value: bytes, token: int, exptime: int) -> bool:
        """Store only if unchanged since ``gets``; ``False`` when changed or gone."""
        stored = self._call(self.client.cas, key, value, token, expire=exptime, noreply=False)
        return stored is True

    def delete(self, key: bytes) -> None:
        """Remove the key; a missing key is fine."""
        self._call(self.client.delete, key, noreply=False)

    def close(self) -> None:
        """Close the connections, if the client is ours."""
        if self._owned:
            self.client.close()
