"""The few memcached operations the store needs, over pymemcache (blocking).

The twin of ``_memcache_async`` (read its docstring): same names and meanings, so the generated
``_sync/memcached.py`` runs unchanged on top of it. Every call asks for a reply (``noreply=False``)
whatever the client's ``default_noreply``, since the store acts on what the server answered.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheUnexpectedCloseError, MemcacheUnknownError

from .._flavours import sync_owner
from ._memcache import Cas, check_version, meta_set, meta_set_outcome
from ._owners import PerOwner

__all__ = ["UNAVAILABLE_ERRORS", "DriverClient", "MemcacheAdapter"]

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
    stale pooled connections one call may discard before it reports the error. A client with
    ``raw_command`` (``Client``, ``PooledClient``) does cas as a meta set that reports the new
    token; ``HashClient`` has none, so there it is the classic ``cas``. Before the first command
    that may need the meta set, the server's ``version`` is checked once
    (:func:`~coatcheck.stores._memcache.check_version`); the classic commands need no check.
    """

    def __init__(self, client: DriverClient, *, timeout: float, attempts: int, owned: bool) -> None:
        self.client = client
        self._attempts = attempts
        self._owned = owned
        self._meta = callable(getattr(client, "raw_command", None))
        # Only a client that will send the meta set needs a server new enough for it.
        self._checked = not self._meta
        # pymemcache adds the client's key_prefix to every key, but not inside a raw command.
        self._key_prefix: bytes = getattr(client, "key_prefix", b"") or b""

    @classmethod
    def connect(cls, host: str, port: int, *, timeout: float, pool_size: int) -> MemcacheAdapter:
        """A thread-safe pool of plain clients of our own, closed by :meth:`close`."""
        return _Pool(host, port, timeout=timeout, pool_size=pool_size)

    def describe(self) -> str:
        """``memcached://host:port``, from the client's settings."""
        server = getattr(self.client, "server", None)
        if isinstance(server, tuple) and len(server) == 2:
            return f"memcached://{server[0]}:{server[1]}"
        return "memcached://(client)"

    def _call(self, name: str, *args: Any) -> Any:
        """The client's method ``name`` on ``args`` (positional: the cheaper call)."""
        # The caller's client: pymemcache closes a socket that failed, and reconnects.
        for attempt in range(1, self._attempts + 1):
            try:
                if not self._checked:
                    self._check(self.client)
                return getattr(self.client, name)(*args)
            except _STALE:
                if attempt == self._attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _check(self, client: Any) -> None:
        """Refuse a server too old for the meta set; remember one that passed."""
        check_version(self.describe(), bytes(client.version()))
        self._checked = True

    def gets(self, key: bytes) -> tuple[bytes, int] | None:
        """The value and its cas token, or ``None``."""
        value, token = self._call("gets", key)
        if value is None or token is None:
            return None
        return value, int(token)

    def add(self, key: bytes, value: bytes, exptime: int) -> bool:
        """Store only if absent; ``False`` when the key exists."""
        return bool(self._call("add", key, value, exptime, False))

    def cas(self, key: bytes, value: bytes, token: int, exptime: int) -> int | Cas:
        """Store only if unchanged since ``token`` was read.

        Stored: the new cas token, or 0 when the client cannot tell it (``HashClient``). Not
        stored: :attr:`Cas.CHANGED` or :attr:`Cas.GONE`.
        """
        if self._meta:
            # pymemcache's raw_command adds the final CRLF; its key_prefix is not applied there.
            command = meta_set(self._key_prefix + key, value, token, exptime)
            reply = self._call("raw_command", command, b"\r\n")
            outcome = meta_set_outcome(reply)
            if outcome is None:
                raise MemcacheUnknownError(f"unexpected reply to a meta set: {reply[:64]!r}")
            return outcome
        stored = self._call("cas", key, value, token, exptime, False)
        if stored:
            return 0
        return Cas.CHANGED if stored is False else Cas.GONE

    def delete(self, key: bytes) -> bool:
        """Remove the key; False when it was not there."""
        return bool(self._call("delete", key, False))

    def close(self) -> None:
        """Close the connections, if the client is ours."""
        if self._owned:
            self.client.close()


class _Pool(MemcacheAdapter):
    """Plain pymemcache clients shared by threads: a deque of idle ones.

    pymemcache's ``PooledClient`` takes a lock and a context manager around every command,
    about a quarter of a ``get`` on a local server; ``deque.pop`` and ``append`` are atomic,
    so a thread takes an idle client or makes one, and puts it back after a clean reply. A
    client that failed is closed, never reused (it may hold half a reply). At most
    ``pool_size`` clients wait idle; a burst beyond that opens extra ones and closes them. The
    first connection checks the server's version; the pool's later ones trust that check.
    The idle clients are kept per process: a forked child opens its own, and closes the
    parent's without a word (closing a socket that another process holds sends nothing).
    """

    def __init__(self, host: str, port: int, *, timeout: float, pool_size: int) -> None:
        super().__init__(None, timeout=timeout, attempts=pool_size + 1, owned=True)
        self._meta = True
        self._checked = False
        self._server = (host, port)
        self._timeout = timeout
        self._size = pool_size
        self._idles: PerOwner[deque[Client]] = PerOwner(deque, _close_all)

    def describe(self) -> str:
        return f"memcached://{self._server[0]}:{self._server[1]}"

    def _call(self, name: str, *args: Any) -> Any:
        idle = self._idles.get(sync_owner())
        for attempt in range(1, self._attempts + 1):
            try:
                client = idle.pop()
            except IndexError:
                client = Client(
                    self._server,
                    connect_timeout=self._timeout,
                    timeout=self._timeout,
                    no_delay=True,
                    default_noreply=False,
                )
            try:
                if not self._checked:
                    self._check(client)
                result = getattr(client, name)(*args)
            except _STALE:
                client.close()
                if attempt == self._attempts:
                    raise
                continue
            except BaseException:
                client.close()  # it may hold half a reply
                raise
            if len(idle) < self._size:
                idle.append(client)
            else:
                client.close()
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        """Close the idle clients; as with pymemcache's pool, a later call opens new ones."""
        mine, others = self._idles.take_all(sync_owner())
        for idle in [*others, mine or deque()]:
            _close_all(idle)


def _close_all(idle: deque[Client]) -> None:
    # pymemcache's close() only closes the socket: nothing goes to the server.
    while idle:
        try:
            idle.pop().close()
        except IndexError:
            return
