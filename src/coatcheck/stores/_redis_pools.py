"""The connection pool class of a RedisStore built from a URL, and its send, per flavour.

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

__all__ = ["AsyncOwnPool", "OwnPool", "async_send", "sync_send"]

OwnPool = redis.ConnectionPool

# The transport's buffer above which a send waits for the socket (asyncio's own default
# high-water mark): a session record rarely comes near it.
_HIGH_WATER = 64 * 1024


async def async_send(connection: Any, packed: list[bytes]) -> None:
    """``connection.send_packed_command(packed)``, without its per-call ``wait_for``.

    redis-py wraps every asyncio send in ``asyncio.wait_for``, which on Python 3.10 and 3.11
    runs the send as a task of its own: a task and a loop iteration per command, for a write
    that only fills the transport's buffer. The bytes go into the buffer directly; only when
    the buffer is full does the send wait, with the connection's socket timeout. A connection
    that is not open (or a redis-py whose connection has no ``_writer``) takes redis-py's own
    path, which connects first.
    """
    writer = getattr(connection, "_writer", None)
    if writer is None or writer.transport.is_closing():
        await connection.send_packed_command(packed)
        return
    try:
        writer.writelines(packed)
        if writer.transport.get_write_buffer_size() > _HIGH_WATER:
            await asyncio.wait_for(writer.drain(), connection.socket_timeout or None)
    except asyncio.TimeoutError:  # first: on 3.11+ it is the builtin, an OSError
        # Abort, not close: a close would wait to flush the full buffer to a server that
        # does not read, and leave the transport open until it is collected.
        writer.transport.abort()
        await connection.disconnect(nowait=True)
        raise redis.exceptions.TimeoutError("timeout writing to Redis") from None
    except (OSError, RuntimeError) as exc:
        # What redis-py raises for a broken write (and drops the connection for).
        await connection.disconnect(nowait=True)
        raise redis.exceptions.ConnectionError(f"error while writing to Redis: {exc}") from exc


def sync_send(connection: Any, packed: list[bytes]) -> None:
    """``connection.send_packed_command(packed)``: a blocking send has no task to save."""
    connection.send_packed_command(packed)


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
