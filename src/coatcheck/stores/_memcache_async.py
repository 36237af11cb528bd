"""The few memcached operations the store needs, over aiomcache (asyncio).

``_memcache_sync`` is the pymemcache twin with the same names. The two drivers differ in method
names, reply values, cas-token types and timeouts (aiomcache has none), so the store is written
once against this adapter in ``_async/memcached.py`` and unasync swaps the module for the sync
flavour. Keys and values are bytes here; the store validates keys before they arrive.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiomcache
from aiomcache.client import acquire
from aiomcache.exceptions import ClientException
from aiomcache.pool import Connection

from .._flavours import async_owner
from ._memcache import Cas, check_version, meta_set, meta_set_outcome
from ._owners import PerOwner, forget_transport

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


@acquire
async def _one_line(client: aiomcache.Client, conn: Connection, command: bytes) -> bytes:
    """Send ``command`` on a pooled connection of ``client`` and read its one-line reply.

    Any aiomcache client's pool will do; the reply is read here, with the EOF check of
    :class:`_Client`, so a client passed in cannot spin on a closed connection either.
    """
    conn.writer.write(command)
    await conn.writer.drain()
    line = await conn.reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionResetError("memcached closed the connection")
    return line[:-2]


@acquire
async def _meta_get(
    client: aiomcache.Client, conn: Connection, key: bytes
) -> tuple[bytes, int] | None:
    """``key``'s value and cas token by a meta get (``mg <key> v c``), or None when absent.

    aiomcache's ``gets`` goes through its multi-key reader (key checks, a dict per reply,
    flag handling): about as much Python again as the round trip's own. One key's meta get
    answers ``VA <size> c<token>`` and the value, or ``EN``; anything else is the server's
    error, reported as aiomcache reports one. A connection the server closed reads an empty
    line: that raises as in :func:`_one_line`, so the pool drops it.
    """
    conn.writer.write(b"mg %b v c\r\n" % key)
    line = await conn.reader.readline()
    if line == b"EN\r\n":
        return None
    if not line.endswith(b"\r\n"):
        raise ConnectionResetError("memcached closed the connection")
    terms = line.split()
    if len(terms) != 3 or terms[0] != b"VA" or not terms[2].startswith(b"c"):
        raise ClientException("unexpected reply to a meta get", line[:64])
    size = int(terms[1])
    data = await conn.reader.readexactly(size + 2)
    if data[size:] != b"\r\n":
        raise ClientException("malformed value in a meta get reply")
    return data[:size], int(terms[2][1:])


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


class _Watchdog:
    """Deadlines for the commands in flight, kept by one timer rather than one per command.

    ``asyncio.timeout()`` schedules and cancels a timer handle for every command, and the event
    loop sifts its timer heap on every turn: on a local memcached that costs about a sixth of a
    ``get``. Here a command only notes its deadline. One timer, set for the earliest deadline,
    cancels each task whose deadline has passed, then re-arms for the next deadline or stops
    when nothing is in flight; :meth:`expired` tells the cancellation it made from any other.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        # task -> (deadline, task.cancelling() when the command started)
        self._inflight: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    def start(self) -> asyncio.Task[Any]:
        """Note the current task's deadline; return the task, for :meth:`stop`."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("memcached commands must run inside an asyncio task")
        if loop is not self._loop:
            # Another event loop (asyncio.run again): whatever was noted belongs to the old one.
            self._loop, self._timer = loop, None
            self._inflight.clear()
            self._expired.clear()
        deadline = loop.time() + self._timeout
        cancelling = 0
        if sys.version_info >= (3, 11):
            cancelling = task.cancelling()
        self._inflight[task] = (deadline, cancelling)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._fire)
        return task

    def stop(self, task: asyncio.Task[Any]) -> None:
        """The command of ``task`` is over."""
        self._inflight.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the ``CancelledError`` that ``task`` got means its deadline passed.

        ``False`` when someone else cancelled the task, even if the deadline passed too: their
        cancellation must go on. Call it once, in the handler, before :meth:`stop`.
        """
        noted = self._inflight.pop(task, None)
        if task not in self._expired:
            return False
        self._expired.discard(task)
        if sys.version_info >= (3, 11) and noted is not None:
            return task.uncancel() <= noted[1]
        return True

    def _fire(self) -> None:
        loop = self._loop
        self._timer = None
        if loop is None:
            return
        # A timer may run up to the clock's resolution early; a millisecond early is fine.
        now = loop.time() + 1e-3
        nearest = math.inf
        for task, (deadline, _) in self._inflight.items():
            if deadline <= now:
                if task not in self._expired:
                    self._expired.add(task)
                    task.cancel()  # takes effect at the task's next step, not here
            elif deadline < nearest:
                nearest = deadline
        if nearest < math.inf:
            self._timer = loop.call_at(nearest, self._fire)

    def close(self) -> None:
        """Drop the timer (the commands in flight keep their deadlines until they end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AsyncMemcacheAdapter:
    """An aiomcache client with a deadline on every call and a retry on stale connections.

    ``attempts`` bounds how many stale pooled connections one call may discard before it
    reports the error: after a server restart every idle connection in the pool is stale. The
    first call checks the server's ``version`` before its command, once for the adapter: every
    cas is a meta set, which older servers do not understand
    (:func:`~coatcheck.stores._memcache.check_version`).
    """

    def __init__(self, client: DriverClient, *, timeout: float, attempts: int, owned: bool) -> None:
        self._client = client
        # connect()'s clients, one per event loop and process (their pools are the loop's).
        self._clients: PerOwner[DriverClient] | None = None
        self._timeout = timeout
        self._attempts = attempts
        self._owned = owned
        self._watchdog = _Watchdog(timeout)
        self._checked = False

    @classmethod
    def connect(
        cls, host: str, port: int, *, timeout: float, pool_size: int
    ) -> AsyncMemcacheAdapter:
        """Clients of our own (with the EOF fix), closed by :meth:`aclose`: one per event loop
        and process, so a forked child or a second ``asyncio.run`` never shares a connection."""

        def make() -> DriverClient:
            return _Client(host, port, pool_size=pool_size, pool_minsize=1)

        adapter = cls(make(), timeout=timeout, attempts=pool_size + 1, owned=True)
        adapter._clients = PerOwner(make, _abandon)
        return adapter

    @property
    def client(self) -> DriverClient:
        """The client: the one passed in, or our own of the running loop."""
        clients = self._clients
        return self._client if clients is None else clients.get(async_owner())

    def describe(self) -> str:
        """``memcached://host:port``, from the client's settings."""
        pool = getattr(self._client, "_pool", None)
        host, port = getattr(pool, "_host", "?"), getattr(pool, "_port", "?")
        return f"memcached://{host}:{port}"

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(*args)``, retried on stale connections, all of it within the timeout."""
        watchdog = self._watchdog
        task = watchdog.start()
        try:
            for attempt in range(1, self._attempts + 1):
                try:
                    if not self._checked:
                        await self._check()
                    return await fn(*args)
                except _STALE:
                    if attempt == self._attempts:
                        raise
                except ClientException as exc:
                    # A get on a connection the server closed reads an empty line, which
                    # aiomcache reports only in its message ("get failed: b''"): an outage.
                    if not str(exc).endswith(": b''"):
                        raise
                    if attempt == self._attempts:
                        raise ConnectionResetError("memcached closed the connection") from exc
        except asyncio.CancelledError:
            timed_out = watchdog.expired(task)
            # aiomcache puts a connection cancelled mid-command back into its pool (its acquire
            # catches Exception, not CancelledError), where the next command would read this
            # one's reply as its own: drop the idle connections so it is never used again.
            # (No await in clear() suspends while the pool holds connections.)
            await self.client.close()
            if not timed_out:
                raise
            raise asyncio.TimeoutError(f"no reply from memcached in {self._timeout} s") from None
        finally:
            watchdog.stop(task)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _check(self) -> None:
        """Refuse a server too old for the meta set; remember one that passed."""
        check_version(self.describe(), bytes(await self.client.version()))
        self._checked = True

    async def gets(self, key: bytes) -> tuple[bytes, int] | None:
        """The value and its cas token, or ``None``."""
        return await self._call(_meta_get, self.client, key)

    async def add(self, key: bytes, value: bytes, exptime: int) -> bool:
        """Store only if absent; ``False`` when the key exists."""
        return await self._call(self.client.add, key, value, exptime)

    async def cas(self, key: bytes, value: bytes, token: int, exptime: int) -> int | Cas:
        """Store only if unchanged since ``token`` was read.

        Stored: the new cas token. Not stored: :attr:`Cas.CHANGED` or :attr:`Cas.GONE`.
        """
        # aiomcache's cas answers only True or False: the meta set goes out on a connection of
        # its pool instead.
        command = meta_set(key, value, token, exptime) + b"\r\n"
        reply = await self._call(_one_line, self.client, command)
        outcome = meta_set_outcome(reply)
        if outcome is not None:
            return outcome
        raise ClientException("unexpected reply to a meta set", reply[:64])

    async def delete(self, key: bytes) -> bool:
        """Remove the key; False when it was not there."""
        return bool(await self._call(self.client.delete, key))

    async def aclose(self) -> None:
        """Close the connections, if the client is ours (another loop's are abandoned)."""
        self._watchdog.close()
        if self._clients is not None:
            mine, others = self._clients.take_all(async_owner())
            for client in others:
                _abandon(client)
            if mine is not None:
                await mine.close()
        elif self._owned:
            await self._client.close()


def _abandon(client: DriverClient) -> None:
    """Forget a client of a closed event loop or of another process: its connections'
    sockets are closed here without their loop (aiomcache's pool keeps the idle ones in an
    ``asyncio.Queue`` and the rest in ``_in_use``)."""
    pool = client._pool
    idle = getattr(pool._pool, "_queue", ())
    for conn in [*idle, *pool._in_use]:
        forget_transport(conn.writer.transport)
