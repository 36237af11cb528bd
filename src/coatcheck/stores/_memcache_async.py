"""The few memcached operations the store needs, over aiomcache (asyncio).

``_memcache_sync`` is the pymemcache twin with the same names. The two drivers differ in method
names, reply values, cas-token types and timeouts (aiomcache has none), so the store is written
once against this adapter in ``_async/memcached.py`` and unasync swaps the module for the sync
flavour. Keys and values are bytes here; the store validates keys before they arrive.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiomcache
from aiomcache.exceptions import ClientException
from aiomcache.pool import Connection

__all__ = ["UNAVAILABLE_ERRORS", "AsyncMemcacheAdapter", "DriverClient"]

T = TypeVar("T")

DriverClient = aiomcache.Client

# Refused or reset connections are OSErrors; a server that closes mid-reply ends the stream.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncio.IncompleteReadError,
)

# A pooled connection the server closed (it restarted) fails before the command is carried out,
# so sending it again on a fresh connection is safe.
_STALE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    asyncio.IncompleteReadError,
)


class _Client(aiomcache.Client):
    """aiomcache's client with its reply loop fixed for a connection the server closed.

    The stock loop keeps calling ``readline()``, which at EOF returns ``b""`` at once without
    yielding to the event loop: the whole process spins and no timeout can fire (aiomcache#502,
    fix proposed in aiomcache#503). Here EOF raises, the pool drops the connection, and the
    store reports the server as unavailable.
    """

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        conn.writer.write(raw_command)
        await conn.writer.drain()
        response = bytearray()
        while not response.endswith(b"\r\n"):
            line = await conn.reader.readline()
            if not line:
                raise ConnectionResetError("memcached closed the connection")
            response += line
        return bytes(response[:-2])


class AsyncMemcacheAdapter:
    """An aiomcache client with a deadline on every call and a retry on stale connections.

    ``attempts`` bounds how many stale pooled connections one call may discard before it
    reports the error: after a server restart every idle connection in the pool is stale.
    """

    def __init__(self, client: DriverClient, *, timeout: float, attempts: int, owned: bool) -> None:
        self.client = client
        self._timeout = timeout
        self._attempts = attempts
        self._owned = owned

    @classmethod
    def connect(
        cls, host: str, port: int, *, timeout: float, pool_size: int
    ) -> AsyncMemcacheAdapter:
        """A client of our own (with the EOF fix), closed by :meth:`aclose`."""
        client = _Client(host, port, pool_size=pool_size, pool_minsize=1)
        return cls(client, timeout=timeout, attempts=pool_size + 1, owned=True)

    def describe(self) -> str:
        """``memcached://host:port``, from the client's settings."""
        pool = getattr(self.client, "_pool", None)
        host, port = getattr(pool, "_host", "?"), getattr(pool, "_port", "?")
        return f"memcached://{host}:{port}"

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._once(fn, *args)
            except _STALE:
                if attempt == self._attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _once(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(self._timeout):
                    return await fn(*args)
            return await asyncio.wait_for(fn(*args), self._timeout)
        except asyncio.TimeoutError:
            # aiomcache puts a connection cancelled mid-reply back into its pool; drop the idle
            # connections so that half-read one is never used again.
            await self.client.close()
            raise
        except ClientException as exc:
            # A get on a connection the server closed reads an empty line, which aiomcache
            # reports only in its message ("get failed: b''"): that is an outage, not a bug.
            if str(exc).endswith(": b''"):
                raise ConnectionResetError("memcached closed the connection") from exc
            raise

    async def get(self, key: bytes) -> bytes | None:
        """The value, or ``None``."""
        return await self._call(self.client.get, key)

    async def gets(self, key: bytes) -> tuple[bytes, int] | None:
        """The value and its cas token, or ``None``."""
        value, token = await self._call(self.client.gets, key)
        if value is None or token is None:
            return None
        return value, token

    async def add(self, key: bytes, value: bytes, exptime: int) -> bool:
        """Store only if absent; ``False`` when the key exists."""
        return await self._call(self.client.add, key, value, exptime)

    async def cas(self, key: bytes, value: bytes, token: int, exptime: int) -> bool:
        """Store only if unchanged since ``gets``; ``False`` when changed or gone."""
        return await self._call(self.client.cas, key, value, token, exptime)

    async def delete(self, key: bytes) -> None:
        """Remove the key; a missing key is fine."""
        await self._call(self.client.delete, key)

    async def aclose(self) -> None:
        """Close the connections, if the client is ours."""
        if self._owned:
            await self.client.close()
