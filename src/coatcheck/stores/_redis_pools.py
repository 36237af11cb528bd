"""The connection pool class of a RedisStore built from a URL, per flavour.

redis-py's blocking ``ConnectionPool`` already checks the process id on every checkout and
starts afresh in a forked child, without closing the parent's sockets (``_checkpid``), so the
sync store uses it as it is. Its asyncio pool checks nothing: after a fork or in a second
event loop it hands out connections whose streams belong to a loop that is closed or another
process's. :class:`AsyncOwnPool` adds that check (the unasync rule ``AsyncOwnPool`` ->
``OwnPool`` picks the class for each flavour).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio

from .._flavours import Owner, async_owner
from ._owners import forget_transport

__all__ = ["AsyncOwnPool", "OwnPool"]

OwnPool = redis.ConnectionPool


class AsyncOwnPool(redis.asyncio.ConnectionPool):
    """redis-py's asyncio pool, for one owner (process and event loop) at a time.

    When a command comes from another owner, the connections are abandoned: their sockets are
    closed in this process only (no QUIT, no shutdown: the parent may still use them) without
    their event loop, and the pool starts afresh, with a lock of the new loop.
    """

    _owner: Owner | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        owner = async_owner()
        if owner != self._owner:
            if self._owner is not None:
                self._abandon()
            self._owner = owner
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        if self._owner is not None and self._owner != async_owner():
            self._abandon()  # another loop's (or process's) connections: not from here
            self._owner = None
        await super().disconnect(*args, **kwargs)

    def _abandon(self) -> None:
        for conn in [*self._available_connections, *self._in_use_connections]:
            writer = getattr(conn, "_writer", None)
            # Without its streams the connection counts as disconnected, so one still checked
            # out reconnects when it is used again rather than touching the old loop.
            conn._reader = conn._writer = None
            if writer is not None:
                forget_transport(writer.transport)
        self.reset()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        self._lock = asyncio.Lock()
