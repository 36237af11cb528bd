"""The few memcached operations the store needs, over aiomcache (asyncio).

``_memcache_sync`` is the pymemcache twin with the same names. The two drivers differ in method
names, reply values, cas-token types and timeouts (aiomcache has none), so the store is written
once against this adapter in ``_async/memcached.py`` and unasync swaps the module for the sync
flavour. Keys and values are bytes here; the store validates keys before they arrive.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

import aiomcache

__all__ = ["UNAVAILABLE_ERRORS", "AsyncMemcacheAdapter", "DriverClient"]

T = TypeVar("T")

DriverClient = aiomcache.Client

# Refused or reset connections are OSErrors; a server that closes mid-reply ends the stream.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncio.IncompleteReadError,
)


class AsyncMemcacheAdapter:
    """An aiomcache client with a deadline on every call."""

    def __init__(self, client: DriverClient, *, timeout: float | None, owned: bool) -> None:
        self.client = client
        self._timeout = timeout
        self._owned = owned

    @classmethod
    def connect(
        cls, host: str, port: int, *, timeout: float | None, pool_size: int
    ) -> AsyncMemcacheAdapter:
        """A client of our own, closed by :meth:`aclose`."""
        client = aiomcache.Client(host, port, pool_size=pool_size, pool_minsize=1)
        return cls(client, timeout=timeout, owned=True)

    def describe(self) -> str:
        """``memcached://host:port``, from the client's settings."""
        pool = getattr(self.client, "_pool", None)
        host, port = getattr(pool, "_host", "?"), getattr(pool, "_port", "?")
        return f"memcached://{host}:{port}"

    async def _call(self, call: Awaitable[T]) -> T:
        if self._timeout is None:
            return await call
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(self._timeout):
                    return await call
            return await asyncio.wait_for(call, self._timeout)
        except asyncio.TimeoutError:
            # aiomcache puts a connection cancelled mid-reply back into its pool; drop the idle
            # connections so that half-read one is never used again.
            await self.client.close()
            raise

    async def get(self, key: bytes) -> bytes | None:
        """The value, or ``None``."""
        return await self._call(self.client.get(key))

    async def gets(self, key: bytes) -> tuple[bytes, int] | None:
        """The value and its cas token, or ``None``."""
        value, token = await self._call(self.client.gets(key))
        if value is None or token is None:
            return None
        return value, token

    async def add(self, key: bytes, value: bytes, exptime: int) -> bool:
        """Store only if absent; ``False`` when the key exists."""
        return await self._call(self.client.add(key, value, exptime))

    async def cas(self, key: bytes, value: bytes, token: int, exptime: int) -> bool:
        """Store only if unchanged since ``gets``; ``False`` when changed or gone."""
        return await self._call(self.client.cas(key, value, token, exptime))

    async def delete(self, key: bytes) -> None:
        """Remove the key; a missing key is fine."""
        await self._call(self.client.delete(key))

    async def aclose(self) -> None:
        """Close the connections, if the client is ours."""
        if self._owned:
            await self.client.close()
