"""Sessions in Redis (redis-py): native TTL, one round trip per operation, Cluster-ready keys."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis.exceptions
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff

from ...errors import ConfigurationError
from .. import _deadline, _packed
from .. import _redis_scripts as _scripts
from .._redis_pools import AsyncOwnPool, async_send
from ..base import (
    LOCKED,
    ClearExpired,
    Create,
    Damaged,
    Delete,
    Load,
    LoadResult,
    Record,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["AsyncRedisStore"]

log = logging.getLogger("coatcheck")

# A prefix goes into every key and, escaped, into the SCAN pattern; braces would move the
# Cluster hash tag off the session key and glob characters would widen count() and stats().
_BAD_PREFIX = re.compile(r"[\s\x00-\x1f\x7f*?\[\]{}]")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
_SCAN_BATCH = 1000


# redis-py's default retries three times with backoff, on timeouts too, which multiplies the
# outage bound. One immediate retry on a connection error is what a restarted server needs: the
# retry reconnects. A timed-out command may have run, so it is not sent again; a command on a
# dropped connection that did run is harmless to repeat (a create then reports a collision, an
# update a version conflict; the rest are idempotent).
def _retry_stale_connection() -> Retry:
    return Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix or _BAD_PREFIX.search(prefix):
        raise ConfigurationError(
            f"Redis key prefix {prefix!r} must be non-empty, without whitespace, control "
            "characters, glob characters (*?[]) or braces (the session key is the hash tag)"
        )
    return prefix


def _describe(client: Redis | RedisCluster) -> str:
    # Only addresses and names: connection kwargs and sentinel clients may hold passwords.
    if isinstance(client, RedisCluster):
        return "redis-cluster://" + ",".join(sorted(client.nodes_manager.startup_nodes))
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        # A master_for() client: its kwargs hold no address (it asks the sentinels for one).
        addresses = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
        sentinels = ",".join(
            f"{a.get('host', 'localhost')}:{a.get('port', 26379)}" for a in addresses
        )
        return f"redis+sentinel://{sentinels}/{pool.service_name}/{kwargs.get('db', 0)}"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{scheme}://{host}:{port}/{db}"


class AsyncRedisStore:
    """Sessions in Redis, expired by Redis itself (``clear_expired`` is a no-op).

    Pass a ready ``client`` (a ``Redis``, a Sentinel master or a ``RedisCluster``; it must not
    decode responses, and it stays open after :meth:`aclose`) or a ``url``. A store built from a
    URL owns its connection pool and uses ``timeout`` (5 s; ``socket_timeout`` is its former
    name) as redis-py's ``socket_connect_timeout`` and ``socket_timeout``: for connecting and for
    every reply, so an outage, a frozen server too, fails within that bound (the pool opens a
    connection rather than wait for one). A client passed in keeps its own timeouts: give it a
    ``socket_timeout`` and a ``socket_connect_timeout``, for a Sentinel master and a Cluster too.
    It retries once, at once, only on a connection error (the pooled connection went stale when
    the server restarted), never after a timeout.

    Each record is one string under ``{prefix}{<key>}`` (layout in :mod:`coatcheck.stores._packed`)
    and its lock is ``{prefix}{<key>}:lock``, the longest waiter for it (``orders_waiters``)
    ``{prefix}{<key>}:next``; the braces make the session key the Cluster hash tag, so a
    record and its lock share a slot and one script can touch all three. Every operation is
    one round trip: plain ``GET``/``SET NX``/``DEL`` where that is enough, a Lua script (EVALSHA)
    where a compare-and-set needs it. ``load`` with a ``slide`` is a script too, which also does
    the idle timeout's touch (times and TTL) when the record is stale, so a read that must slide
    the session costs one round trip instead of two.
    """

    slides_on_load = True
    orders_waiters = True
    unavailable_errors: tuple[type[BaseException], ...] = (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.BusyLoadingError,
        redis.exceptions.ReadOnlyError,
        redis.exceptions.ClusterDownError,
        redis.exceptions.TryAgainError,
    )

    def __init__(
        self,
        client: Redis | RedisCluster | None = None,
        *,
        url: str | None = None,
        prefix: str = "coatcheck:",
        timeout: float = _deadline.DEFAULT_TIMEOUT,
        socket_timeout: float | None = None,
    ) -> None:
        if socket_timeout is not None:
            timeout = socket_timeout
        self._prefix = _check_prefix(prefix)
        if client is not None:
            if url is not None:
                raise ConfigurationError("AsyncRedisStore takes client= or url=, not both")
            self._owns_client = False
        elif url is not None:
            if not timeout > 0:
                raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
            try:
                # A pool of the store's own checks its owner: a forked child, or another
                # event loop, gets connections of its own (coatcheck.stores._redis_pools).
                pool = AsyncOwnPool.from_url(
                    url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=_retry_stale_connection(),
                )
            except ValueError as exc:  # redis-py's word for a malformed URL
                raise ConfigurationError(f"bad Redis URL: {exc}") from exc
            client = Redis.from_pool(pool)
            self._owns_client = True
        else:
            raise ConfigurationError("AsyncRedisStore needs a client= or a url=")
        connection = client.get_connection_kwargs()
        if connection.get("decode_responses"):
            raise ConfigurationError("the Redis client must return bytes: decode_responses=False")
        if not self._owns_client and not (
            connection.get("socket_timeout") and connection.get("socket_connect_timeout")
        ):
            # Not refused (the client is the application's to configure), but said: without
            # both, a frozen server hangs every request for as long as it stays frozen.
            log.warning(
                "the Redis client passed to the session store has no socket_timeout and"
                " socket_connect_timeout: its commands have no deadline (give it both)"
            )
        self._client: Redis | RedisCluster = client
        # Loads and scripts go through this, bound once: redis-py's Script objects and its
        # evalsha() wrapper cost microseconds per call, which the 1.3x-of-raw target notices.
        # A client the store built itself skips the client layer altogether (_direct).
        self._execute: Callable[..., Any] = client.execute_command
        if self._owns_client and isinstance(client, Redis):
            self._pool: Any = client.connection_pool  # redis-py leaves these methods untyped
            self._execute = self._direct
        self.name = f"{_describe(client)} prefix={prefix!r}"
        self._pattern = _GLOB_SPECIAL.sub(r"\\\1", prefix) + "{*}"

    @classmethod
    def from_url(cls, url: str) -> AsyncRedisStore:
        """``redis://[user:password@]host:port/db``, ``rediss://...`` or ``unix:///path.sock?db=0``.

        Query options of coatcheck's own: ``prefix`` (default ``coatcheck:``) and
        ``timeout`` in seconds (default 5; ``socket_timeout`` is the same); every other option
        goes to redis-py.
        """
        parts = urlsplit(url)
        options: dict[str, Any] = {}
        rest: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name == "prefix":
                options["prefix"] = value
            elif name in ("timeout", "socket_timeout"):
                try:
                    options["timeout"] = float(value)
                except ValueError:
                    raise ConfigurationError(f"{name}={value!r} is not a number") from None
            else:
                rest.append((name, value))
        # Rebuilt by hand: urlunsplit drops the "//" of "unix:///path" (empty host).
        base = url.split("?", 1)[0]
        return cls(url=base + ("?" + urlencode(rest) if rest else ""), **options)

    def _key(self, key: str) -> bytes:
        if not key or "{" in key or "}" in key:
            raise ValueError(f"invalid store key {key!r}")
        # Bytes, so redis-py sends it as is (its encoder tests a str four ways per argument).
        return f"{self._prefix}{{{key}}}".encode()

    async def _direct(self, *args: Any) -> Any:
        """``execute_command`` for the store's own client, without redis-py's client layer.

        That layer (a retry closure, observability hooks, response callbacks that none of
        these commands has) costs about 15 µs of CPU per command on Python 3.11: most of what
        a session request spends in Python on top of its two round trips. What of it matters
        is kept: the pool's checks (the owner process and event loop), the connection dropped
        on any error, and the one retry on a new connection after a ``ConnectionError`` that
        ``_retry_stale_connection`` asks for (a pooled connection the server closed or lost
        on a restart). Replies are the same: a ``ResponseError`` (NOSCRIPT, WRONGTYPE) raised.
        """
        pool = self._pool
        connection = await pool.get_connection()
        try:
            try:
                await async_send(connection, connection.pack_command(*args))
                return await connection.read_response()
            except redis.exceptions.ConnectionError:
                await connection.disconnect()
                await async_send(connection, connection.pack_command(*args))
                return await connection.read_response()
        finally:
            await pool.release(connection)

    async def _eval(self, script: _scripts.Script, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA of ``script``; EVAL of its source when the server lacks it (NOSCRIPT).

        A server loses its scripts on a restart, a failover (a Sentinel replica promoted) or
        ``SCRIPT FLUSH``. EVAL runs the script (NOSCRIPT means it did not run) and caches it,
        in one round trip, on the one node its keys route to: ``SCRIPT LOAD`` on a Cluster
        would go to every primary, and fail while any of them is down.
        """
        try:
            return await self._execute("EVALSHA", script.sha, numkeys, *keys_and_args)
        except redis.exceptions.NoScriptError:
            return await self._execute("EVAL", script.source, numkeys, *keys_and_args)

    async def load(self, op: Load) -> LoadResult:
        try:
            return await self._load(op)
        except redis.exceptions.ResponseError as exc:
            # A key of another type (a list, a hash) under a session key, or one without a
            # TTL: damage, not an outage.
            message = str(exc)
            if message.startswith("WRONGTYPE"):
                return Damaged("wrong-type")
            if message.startswith(_scripts.NO_TTL):
                return Damaged("no-ttl")
            raise

    async def _load(self, op: Load) -> LoadResult:
        k = self._key(op.key)
        lock, slide, now = op.lock, op.slide, op.now
        if lock is not None:
            args = [
                lock.token.encode(),
                _scripts.DOUBLE.pack(now),
                b"%r" % (now + lock.ttl),
                b"%d" % max(1, math.ceil(lock.ttl * 1000)),
                _scripts.DOUBLE.pack(now if lock.since is None else lock.since),
            ]
            if slide is not None:
                args += (_scripts.slide_arg(slide), _scripts.px(slide.expires_at, now))
            value = await self._eval(_scripts.LOAD_LOCKED, 3, k, k + b":lock", k + b":next", *args)
            if value == 0:
                return LOCKED
        elif slide is not None:
            value = await self._eval(
                _scripts.LOAD_SLIDE,
                1,
                k,
                _scripts.DOUBLE.pack(now),
                _scripts.slide_arg(slide),
                _scripts.px(slide.expires_at, now),
            )
        else:
            value = await self._execute("GET", k)
        if value is None:
            return None
        if type(value) is list:  # [value]: the load slid the record
            value = value[0]
            if slide is not None:
                # The stored times are now exactly the slide's (packed doubles round-trip).
                return Record(
                    value[_packed.HEADER_SIZE :],
                    _packed.version_of(value),
                    slide.accessed_at,
                    slide.expires_at,
                )
        # bytes: the constructor refuses a client that decodes responses.
        return _packed.unpack(cast(bytes, value))

    async def create(self, op: Create) -> bool:
        value = _packed.pack(op.payload, 1, op.accessed_at, op.expires_at)
        px = _scripts.ttl_ms(op.expires_at, op.now)
        return bool(await self._client.set(self._key(op.key), value, nx=True, px=px))

    async def update(self, op: Update) -> int | None:
        k = self._key(op.key)
        expected_version = op.expected_version
        next_version = 0 if expected_version is None else expected_version + 1
        value = _packed.pack(op.payload, next_version, op.accessed_at, op.expires_at)
        px = _scripts.px(op.expires_at, op.now)
        expected = b"" if expected_version is None else b"%d" % expected_version
        if op.unlock is None:
            version = await self._eval(_scripts.UPDATE, 1, k, value, px, expected)
        else:
            lock_key, token = k + b":lock", op.unlock.encode()
            version = await self._eval(_scripts.UPDATE, 2, k, lock_key, value, px, expected, token)
        return None if version is None else int(version)

    async def touch(self, op: Touch) -> bool:
        k = self._key(op.key)
        times = _packed.pack_times(op.accessed_at, op.expires_at)
        px = _scripts.px(op.expires_at, op.now)
        if op.unlock is None:
            return bool(await self._eval(_scripts.TOUCH, 1, k, times, px))
        token = op.unlock.encode()
        return bool(await self._eval(_scripts.TOUCH, 2, k, k + b":lock", times, px, token))

    async def unlock(self, op: Unlock) -> None:
        k = self._key(op.key)
        await self._eval(_scripts.UNLOCK, 2, k + b":lock", k + b":next", op.token.encode())

    async def delete(self, op: Delete) -> bool:
        k = self._key(op.key)
        expected = b"" if op.expected_version is None else b"%d" % op.expected_version
        return bool(await self._eval(_scripts.RETIRE, 3, k, k + b":lock", k + b":next", expected))

    async def clear_expired(self, op: ClearExpired) -> int:
        """Redis drops expired keys itself."""
        return 0

    async def _tally(self, now: float) -> StoreStats:
        live = expired = size = 0
        batch: list[bytes] = []

        async def flush() -> None:
            nonlocal live, expired, size
            async with self._client.pipeline(transaction=False) as pipe:
                for k in batch:
                    pipe.getrange(k, _packed.TIMES_OFFSET, _packed.HEADER_SIZE - 1)
                    pipe.strlen(k)
                replies = await pipe.execute()
            for times, length in zip(replies[::2], replies[1::2], strict=True):
                if len(times) != 16:  # vanished between SCAN and now
                    continue
                _, expires_at = _packed.unpack_times(times)
                if expires_at > now:
                    live += 1
                else:
                    expired += 1
                size += length - _packed.HEADER_SIZE
            batch.clear()

        async for k in self._client.scan_iter(match=self._pattern, count=_SCAN_BATCH):
            batch.append(k)
            if len(batch) >= _SCAN_BATCH:
                await flush()
        if batch:
            await flush()
        return StoreStats(live, expired, size)

    async def count(self, now: float) -> int | None:
        """Live records by the caller's clock: a SCAN of this prefix, one batch at a time."""
        return (await self._tally(now)).live

    async def stats(self, now: float) -> StoreStats:
        """Live and not-yet-dropped expired records and payload bytes, from a SCAN of the prefix."""
        return await self._tally(now)

    async def aclose(self) -> None:
        """Close the connection pool, unless the client was passed in."""
        if self._owns_client:
            await self._client.aclose()
