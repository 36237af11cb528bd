"""Sessions in memcached: native expiry, ``add`` to create, ``cas`` over the last read to change."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

from ...errors import ConfigurationError
from .. import _packed
from .._memcache import Cas
from .._memcache_async import UNAVAILABLE_ERRORS, AsyncMemcacheAdapter, DriverClient
from ..base import (
    LOCKED,
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    LockRequest,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["AsyncMemcachedStore"]

# memcached reads an exptime above 30 days as an absolute Unix time, not a number of seconds
# (protocol.txt, "Expiration times"; aiohttp-session #398 is what happens otherwise).
_RELATIVE_LIMIT = 60 * 60 * 24 * 30
_MAX_KEY = 250
_LOCK_SUFFIX = ":lock"
# Unlock is a cas, not a delete: a delete could remove a lock that another token took over
# between our gets and our delete. The cas writes an absolute exptime before the server started,
# which memcached treats as already expired (memcached.c, realtime()), so the item is gone at
# once and the next add succeeds: a conditional delete in one command.
_GONE = b"0 "
_GONE_EXPTIME = _RELATIVE_LIMIT + 1


def _exptime(expires_at: float, now: float) -> int:
    """``expires_at - now`` as a memcached exptime, never under one second."""
    ttl = math.ceil(expires_at - now)
    if 0 < ttl <= _RELATIVE_LIMIT:
        return ttl
    if ttl < 1:
        return 1
    # An absolute time is judged by the server's clock, so it is built from the real clock
    # rather than the caller's (which tests freeze).
    return math.ceil(time.time()) + ttl


def _lock_value(expires: float, token: str) -> bytes:
    return f"{expires!r} {token}".encode()


def _lock_holder(value: bytes) -> tuple[float, str]:
    expires, _, token = value.decode().partition(" ")
    return float(expires), token


def _check_prefix(prefix: str) -> str:
    room = _MAX_KEY - 64 - len(_LOCK_SUFFIX)
    if (
        not isinstance(prefix, str)
        or not prefix.isascii()
        or not prefix.isprintable()
        or " " in prefix
        or len(prefix) > room
    ):
        raise ConfigurationError(
            f"memcached key prefix {prefix!r} must be printable ASCII without spaces, "
            f"at most {room} characters (keys are limited to {_MAX_KEY} bytes)"
        )
    return prefix


class _Seen(NamedTuple):
    """What a load saw of an item, handed back as the record's handle (``Record.handle``).

    An update or touch usually follows a load of the same record within one request. With the
    cas token that load saw, it is a single ``cas``: if it succeeds, the item was exactly what
    was seen (memcached gives an item a new token on every change), so the version it bumps is
    exact; if the item changed or is gone, the store reads it again as it would without a
    handle. ``value`` is the whole stored item, which a touch rewrites with new times.
    """

    token: int
    value: bytes


class AsyncMemcachedStore:
    """Sessions in memcached, expired by memcached itself (``clear_expired`` is a no-op).

    Pass a ``url``, or a ready ``client``, which stays open after :meth:`aclose`: pymemcache's
    ``Client``, ``PooledClient`` or ``HashClient`` for the sync store (without ``ignore_exc``),
    aiomcache's ``Client`` for the async one. Prefer the URL with aiomcache: the store's own
    client fixes aiomcache#502 (a server that hangs up mid-command freezes the event loop).
    ``timeout`` bounds connecting and every reply; a connection found stale after a server
    restart is replaced and the command sent again. memcached 1.6.10 or later (checked): a
    ``cas`` is a meta set (``ms``), whose reply carries the item's new cas token (except over
    pymemcache's ``HashClient``, which cannot send one; there it is the classic ``cas``).

    A record is one item under ``prefix + key`` (layout in :mod:`coatcheck.stores._packed`).
    ``create`` is ``add``. ``load`` is ``gets``, and the record it returns carries the version,
    cas token and item it saw as its ``handle``, so the ``update`` or ``touch`` of that record
    is a single ``cas``. When the item changed since (or the caller has no handle), ``update``
    and ``touch`` are ``gets`` then ``cas``, retried when
    another writer got in between, so a compare-and-set on the version is exact. The lock is a
    separate small item ``prefix + key + ":lock"`` holding the token and its expiry by the
    caller's clock, taken with ``add`` (or ``cas`` over an expired one). memcached cannot
    enumerate keys, so ``count`` and ``stats`` report ``None``; and it cannot change two items
    atomically, so the unlock that follows a successful update or touch is a second step.
    """

    slides_on_load = False
    unavailable_errors: tuple[type[BaseException], ...] = UNAVAILABLE_ERRORS

    def __init__(
        self,
        client: DriverClient | None = None,
        *,
        url: str | None = None,
        prefix: str = "coatcheck:",
        timeout: float = 5.0,
        pool_size: int = 10,
    ) -> None:
        self._prefix = _check_prefix(prefix)
        self._max_key = _MAX_KEY - len(_LOCK_SUFFIX) - len(prefix)
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        if client is not None:
            if url is not None:
                raise ConfigurationError("AsyncMemcachedStore takes client= or url=, not both")
            self._mc = AsyncMemcacheAdapter(client, timeout=timeout, attempts=2, owned=False)
        elif url is not None:
            parts = urlsplit(url)
            if parts.scheme != "memcached" or not parts.hostname:
                raise ConfigurationError(f"not a memcached://host:port URL: {url!r}")
            if pool_size < 1:
                raise ConfigurationError(f"pool_size must be at least 1, not {pool_size!r}")
            self._mc = AsyncMemcacheAdapter.connect(
                parts.hostname, parts.port or 11211, timeout=timeout, pool_size=pool_size
            )
        else:
            raise ConfigurationError("AsyncMemcachedStore needs a client= or a url=")
        self.name = f"{self._mc.describe()} prefix={prefix!r}"

    @classmethod
    def from_url(cls, url: str) -> AsyncMemcachedStore:
        """``memcached://host:port?prefix=app:&timeout=5&pool_size=10`` (port 11211 by default)."""
        parts = urlsplit(url)
        prefix, timeout, pool_size = "coatcheck:", 5.0, 10
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            try:
                if name == "prefix":
                    prefix = value
                elif name == "timeout":
                    timeout = float(value)
                elif name == "pool_size":
                    pool_size = int(value)
                else:
                    raise ConfigurationError(f"unknown memcached URL option {name!r}")
            except ValueError:
                raise ConfigurationError(f"memcached URL option {name}={value!r}") from None
        plain = parts._replace(query="").geturl()
        return cls(url=plain, prefix=prefix, timeout=timeout, pool_size=pool_size)

    def _key(self, key: str) -> bytes:
        if not (
            0 < len(key) <= self._max_key and key.isascii() and key.isprintable() and " " not in key
        ):
            raise ValueError(f"invalid store key {key!r} for memcached")
        return (self._prefix + key).encode()

    async def load(self, op: Load) -> LoadResult:
        k = self._key(op.key)
        lock = op.lock
        # Lock first, read second: a record read before the lock was ours could be overwritten
        # by the previous holder's save, and this request would then work on stale data.
        if lock is not None and not await self._acquire(k, lock, op.now):
            return LOCKED
        # gets costs what get does, and its token saves the update or touch a round trip.
        found = await self._mc.gets(k)
        if found is None:
            if lock is not None:
                await self._release(k, lock.token)  # the contract: no lock without a record
            return None
        value, token = found
        return _packed.unpack(value, _Seen(token, value))

    async def _acquire(self, k: bytes, lock: LockRequest, now: float) -> bool:
        lk = k + b":lock"
        mine = _lock_value(now + lock.ttl, lock.token)
        exptime = _exptime(now + lock.ttl, now)
        while True:
            if await self._mc.add(lk, mine, exptime):
                return True
            found = await self._mc.gets(lk)
            if found is None:
                continue  # released between our add and gets
            held, token = found
            expires, holder = _lock_holder(held)
            if holder != lock.token and expires > now:
                return False
            if not isinstance(await self._mc.cas(lk, mine, token, exptime), Cas):
                return True

    async def _release(self, k: bytes, token: str) -> None:
        lk = k + b":lock"
        while True:
            found = await self._mc.gets(lk)
            if found is None or _lock_holder(found[0])[1] != token:
                return
            if await self._mc.cas(lk, _GONE, found[1], _GONE_EXPTIME) is not Cas.CHANGED:
                return  # released, or expired meanwhile

    async def create(self, op: Create) -> bool:
        value = _packed.pack(op.payload, 1, op.accessed_at, op.expires_at)
        return await self._mc.add(self._key(op.key), value, _exptime(op.expires_at, op.now))

    async def update(self, op: Update) -> int | None:
        expected = op.expected_version

        def rewrite(value: bytes) -> bytes | None:
            version = _packed.version_of(value)
            if expected is not None and version != expected:
                return None
            return _packed.pack(op.payload, version + 1, op.accessed_at, op.expires_at)

        k = self._key(op.key)
        stored = await self._rewrite(k, op.handle, _exptime(op.expires_at, op.now), rewrite)
        if stored is None:
            return None
        if op.unlock is not None:
            await self._release(k, op.unlock)
        return _packed.version_of(stored)

    async def touch(self, op: Touch) -> bool:
        times = _packed.pack_times(op.accessed_at, op.expires_at)

        def rewrite(value: bytes) -> bytes:
            _packed.version_of(value)  # refuses a value some other program wrote
            # memcached's own touch would move the expiry but not accessed_at.
            return value[: _packed.TIMES_OFFSET] + times + value[_packed.HEADER_SIZE :]

        k = self._key(op.key)
        stored = await self._rewrite(k, op.handle, _exptime(op.expires_at, op.now), rewrite)
        if stored is None:
            return False
        if op.unlock is not None:
            await self._release(k, op.unlock)
        return True

    async def _rewrite(
        self, k: bytes, handle: object, exptime: int, rewrite: Callable[[bytes], bytes | None]
    ) -> bytes | None:
        """Replace item ``k`` with ``rewrite(its value)`` by compare-and-set; what was stored.

        None when there is no item, or when ``rewrite`` refuses what the server holds. The
        load's handle saves the first read; when its token is stale (or ``rewrite`` refuses
        the value it saw, which may just be old) the item is read again, and so is it when
        another writer gets in between.
        """
        seen = handle if type(handle) is _Seen else None
        while True:
            if seen is None:
                found = await self._mc.gets(k)
                if found is None:
                    return None
                value, token = found
            else:
                value, token = seen.value, seen.token
            new = rewrite(value)
            if new is None:
                if seen is None:
                    return None
                seen = None
                continue
            outcome = await self._mc.cas(k, new, token, exptime)
            if isinstance(outcome, int):
                return new
            if outcome is Cas.GONE:
                return None
            seen = None  # another writer (or a touch) got in between: judge it again

    async def unlock(self, op: Unlock) -> None:
        await self._release(self._key(op.key), op.token)

    async def delete(self, op: Delete) -> bool:
        expected = op.expected_version
        k = self._key(op.key)
        if expected is None:
            # Whatever the item holds goes, even a value another program wrote.
            removed = await self._mc.delete(k)
        else:

            def retire(value: bytes) -> bytes | None:
                try:
                    return _GONE if _packed.version_of(value) == expected else None
                except ValueError:
                    return None  # not a record of ours: no version to match

            # A cas to an exptime in the past, as in _release: a compare-and-delete.
            removed = await self._rewrite(k, op.handle, _GONE_EXPTIME, retire) is not None
        await self._mc.delete(k + b":lock")
        return removed

    async def clear_expired(self, op: ClearExpired) -> int:
        """memcached drops expired items itself."""
        return 0

    async def count(self, now: float) -> int | None:
        """``None``: memcached cannot enumerate keys."""
        return None

    async def stats(self, now: float) -> StoreStats:
        """All unknown: memcached cannot enumerate keys."""
        return StoreStats(None, None, None)

    async def aclose(self) -> None:
        """Close the connections, unless the client was passed in."""
        await self._mc.aclose()
