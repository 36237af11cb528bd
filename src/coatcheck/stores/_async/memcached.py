"""Sessions in memcached: native expiry, ``add`` to create, ``cas`` over the last read to change."""

from __future__ import annotations

import math
import time
from urllib.parse import parse_qsl, urlsplit

from ...errors import ConfigurationError
from .. import _packed
from .._memcache_async import UNAVAILABLE_ERRORS, AsyncMemcacheAdapter, Cas, DriverClient
from ..base import LOCKED, LoadResult, LockRequest, Slide, StoreStats

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
# What one remembered record costs beyond its key and value bytes (dict slot, tuple, ints,
# object headers), for the byte budget of _Seen.
_SEEN_OVERHEAD = 200


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


# What _Seen notes per store key: (version, cas token, stored value, the item's key). The item's
# key is there because a key is checked before it is noted: a write that finds it skips _key().
_Noted = tuple[int, int, bytes, bytes]


class _Seen:
    """The last (version, cas token, value) this store read or wrote, for recent keys.

    An update or touch usually follows a load of the same record within one request. With the
    cas token that load saw, it is a single ``cas``: if it succeeds, the item was exactly what
    was seen (memcached gives an item a new token on every change), so the version it bumps is
    exact; if the item changed or is gone, the store reads it again as it would without this.
    A successful write replaces the entry (the meta set reports the new token) and a refused
    one drops it, so a stale entry costs at most one refused ``cas``.

    Bounded by ``budget`` bytes (estimated) in two generations: entries go into the young one;
    when it holds half the budget it becomes the old one and the previous old one is dropped,
    so an entry lives at least half the budget's worth of later entries. No lock, though the
    sync store shares one instance between threads: dict reads and writes are atomic, and a
    race can only lose an entry (one more ``gets``) or undercount a generation by the
    entries written during it, never let it grow without bound. A lock here cost more than
    any other step of a ``load`` but the round trip.
    """

    __slots__ = ("_half", "_largest", "_old", "_old_bytes", "_young", "_young_bytes")

    def __init__(self, budget: int) -> None:
        self._half = budget // 2
        # One big session must not push out hundreds of small ones.
        self._largest = budget // 64
        self._young: dict[str, _Noted] = {}
        self._old: dict[str, _Noted] = {}
        self._young_bytes = self._old_bytes = 0

    def get(self, key: str) -> _Noted | None:
        entry = self._young.get(key)
        return self._old.get(key) if entry is None else entry

    def remember(self, key: str, k: bytes, version: int, token: int, value: bytes) -> None:
        """Note what ``key`` (stored as ``k``) holds now, unless ``value`` is too big."""
        cost = len(k) + len(value) + _SEEN_OVERHEAD
        if cost > self._largest:
            self.forget(key)
            return
        if self._young_bytes + cost > self._half:
            self._old, self._old_bytes = self._young, self._young_bytes
            self._young, self._young_bytes = {}, 0
        self._young[key] = (version, token, value, k)
        self._young_bytes += cost  # counts writes, so a replaced entry counts twice: safe

    def forget(self, key: str) -> None:
        """Drop what was noted for ``key``."""
        self._young.pop(key, None)
        self._old.pop(key, None)

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    @property
    def size(self) -> int:
        """Bytes held, by the estimate the budget is checked against."""
        return self._young_bytes + self._old_bytes


class AsyncMemcachedStore:
    """Sessions in memcached, expired by memcached itself (``clear_expired`` is a no-op).

    Pass a ``url``, or a ready ``client``, which stays open after :meth:`aclose`: pymemcache's
    ``Client``, ``PooledClient`` or ``HashClient`` for the sync store (without ``ignore_exc``),
    aiomcache's ``Client`` for the async one. Prefer the URL with aiomcache: the store's own
    client fixes aiomcache#502 (a server that hangs up mid-command freezes the event loop).
    ``timeout`` bounds connecting and every reply; a connection found stale after a server
    restart is replaced and the command sent again. memcached 1.6 or later: a ``cas`` is a
    meta set (``ms``), whose reply carries the item's new cas token (except over pymemcache's
    ``HashClient``, which cannot send one; there it is the classic ``cas``).

    A record is one item under ``prefix + key`` (layout in :mod:`coatcheck.stores._packed`).
    ``create`` is ``add``. ``load`` is ``gets``, and the store remembers the version, cas token
    and value it saw (at most ``seen_bytes`` of them, 8 MiB by default; 0 turns this off), so
    the ``update`` or ``touch`` that follows is a single ``cas``. When the record changed since
    (or was not remembered), ``update`` and ``touch`` are ``gets`` then ``cas``, retried when
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
        seen_bytes: int = 8 << 20,
    ) -> None:
        self._prefix = _check_prefix(prefix)
        if not isinstance(seen_bytes, int) or seen_bytes < 0:
            raise ConfigurationError(f"seen_bytes must be 0 or more, not {seen_bytes!r}")
        self._seen = _Seen(seen_bytes)
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

    async def load(
        self, key: str, now: float, lock: LockRequest | None = None, slide: Slide | None = None
    ) -> LoadResult:
        k = self._key(key)
        # Lock first, read second: a record read before the lock was ours could be overwritten
        # by the previous holder's save, and this request would then work on stale data.
        if lock is not None and not await self._acquire(k, lock, now):
            return LOCKED
        # gets costs what get does, and its token saves the update or touch a round trip.
        found = await self._mc.gets(k)
        if found is None:
            if lock is not None:
                await self._release(k, lock.token)  # the contract: no lock without a record
            return None
        value, token = found
        record = _packed.unpack(value)
        self._seen.remember(key, k, record.version, token, value)
        return record

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

    async def create(
        self, key: str, payload: bytes, accessed_at: float, expires_at: float, now: float
    ) -> bool:
        value = _packed.pack(payload, 1, accessed_at, expires_at)
        return await self._mc.add(self._key(key), value, _exptime(expires_at, now))

    async def update(
        self,
        key: str,
        payload: bytes,
        accessed_at: float,
        expires_at: float,
        now: float,
        expected_version: int | None,
        unlock: str | None = None,
    ) -> int | None:
        exptime = _exptime(expires_at, now)
        seen = self._seen.get(key)
        # A remembered version other than the expected one may just be stale: read it again.
        if seen is not None and expected_version not in (None, seen[0]):
            seen = None
        k = self._key(key) if seen is None else seen[3]
        while True:
            if seen is not None:
                version, token = seen[0], seen[1]
            else:
                found = await self._mc.gets(k)
                if found is None:
                    return None
                value, token = found
                version = _packed.version_of(value)
                if expected_version is not None and version != expected_version:
                    return None
            new = _packed.pack(payload, version + 1, accessed_at, expires_at)
            outcome = await self._mc.cas(k, new, token, exptime)
            if isinstance(outcome, int):
                break
            if seen is not None:
                self._seen.forget(key)
                seen = None
            if outcome is Cas.GONE:
                return None
            # Another writer (or a touch) got in between: judge the version again.
        if outcome:
            self._seen.remember(key, k, version + 1, outcome, new)
        else:  # 0: stored, but the client cannot tell the new token (HashClient)
            self._seen.forget(key)
        if unlock is not None:
            await self._release(k, unlock)
        return version + 1

    async def touch(
        self,
        key: str,
        accessed_at: float,
        expires_at: float,
        now: float,
        unlock: str | None = None,
    ) -> bool:
        exptime = _exptime(expires_at, now)
        times = _packed.pack_times(accessed_at, expires_at)
        seen = self._seen.get(key)
        k = self._key(key) if seen is None else seen[3]
        while True:
            if seen is not None:
                version, token, value, _ = seen
            else:
                found = await self._mc.gets(k)
                if found is None:
                    return False
                value, token = found
                version = _packed.version_of(value)  # refuses a value some other program wrote
            new = value[: _packed.TIMES_OFFSET] + times + value[_packed.HEADER_SIZE :]
            # memcached's own touch would move the expiry but not accessed_at.
            outcome = await self._mc.cas(k, new, token, exptime)
            if isinstance(outcome, int):
                break
            if seen is not None:
                self._seen.forget(key)
                seen = None
            if outcome is Cas.GONE:
                return False
        if outcome:
            self._seen.remember(key, k, version, outcome, new)
        else:  # 0: stored, but the client cannot tell the new token (HashClient)
            self._seen.forget(key)
        if unlock is not None:
            await self._release(k, unlock)
        return True

    async def unlock(self, key: str, token: str) -> None:
        await self._release(self._key(key), token)

    async def delete(self, key: str) -> None:
        k = self._key(key)
        self._seen.forget(key)
        await self._mc.delete(k)
        await self._mc.delete(k + b":lock")

    async def clear_expired(self, now: float) -> int:
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
