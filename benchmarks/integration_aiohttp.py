#!/usr/bin/env python3
"""What an aiohttp request costs with coatcheck's aiohttp-session storage, against
aiohttp-session's own storage on the same server.

Run: ``.venv/bin/python benchmarks/integration_aiohttp.py [--iterations N] [--no-memcached]``

One aiohttp handler doing a read-modify-write of a counter in the session
(``aiohttp_session.get_session``; the client presents its session cookie, the handler adds
one), called through aiohttp-session's middleware with a prepared ``web.Request`` on one event
loop (aiohttp's ``make_mocked_request``, built before timing; no sockets, no router), so the
figures are the storage's and the middleware's, not the network's:

- ``bare``: the handler with no session at all (what the request itself costs);
- ``simple cookie``: aiohttp-session's ``SimpleCookieStorage`` (JSON in the cookie, no store:
  the reference floor);
- ``aiohttp-session``: aiohttp-session's ``RedisStorage`` on a ``redis.asyncio`` client (or
  its ``MemcachedStorage`` on ``aiomcache``);
- ``coatcheck``: :class:`coatcheck.contrib.aiohttp.CoatcheckStorage` on ``redis://`` (or
  ``memcached://``), behind ``aiohttp_session.setup``'s middleware alone;
- ``coatcheck setup()``: the same behind :func:`coatcheck.contrib.aiohttp.setup` (its lock
  release middleware outside aiohttp-session's).

Both server-side storages run with a 14-day ``max_age`` (so both send the cookie back on
every write) on the same server: Redis at 127.0.0.1:6379, and memcached at 127.0.0.1:11211
when it answers; keys under names of this run, deleted from Redis at the end (memcached's
expire with their sessions). Each figure is the median µs of ``--iterations`` requests after
a warm-up, the variants taking turns in blocks of ``_overhead.peers.PEER_BLOCK`` requests
(``time_turns``), so load from elsewhere hits them alike. The ratio: coatcheck /
aiohttp-session, on the whole per-request cost (target < 1).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from _flavours import ASYNC
from _overhead.peers import PEER_BLOCK
from _overhead.timing import WARMUP, time_turns

REDIS = ("127.0.0.1", 6379)
MEMCACHED = ("127.0.0.1", 11211)
LIFETIME = 14 * 24 * 3600
Call = Callable[[Any], Awaitable[Any]]


async def _counter(request: Any) -> Any:
    import aiohttp_session
    from aiohttp import web

    session = await aiohttp_session.get_session(request)
    session["n"] = session.get("n", 0) + 1
    return web.Response(text="ok")


async def _bare(request: Any) -> Any:
    from aiohttp import web

    return web.Response(text="ok")


def _pipeline(storage: Any, guarded: bool = False) -> Call:
    """The request through aiohttp-session's middleware (and coatcheck's, when ``guarded``)."""
    import aiohttp_session

    session_mw = aiohttp_session.session_middleware(storage)

    async def call(request: Any) -> Any:
        return await session_mw(request, _counter)

    if not guarded:
        return call
    guard = storage.middleware()
    return lambda request: guard(request, call)


def _variants(backend: str, tag: str, cookie: str) -> tuple[list[tuple[str, Call]], list[Any]]:
    """The pipelines of one row group, and what to close after it."""
    from aiohttp_session import SimpleCookieStorage

    from coatcheck.contrib.aiohttp import CoatcheckStorage

    if backend == "redis":
        from aiohttp_session.redis_storage import RedisStorage
        from redis.asyncio import Redis

        client: Any = Redis(host=REDIS[0], port=REDIS[1])
        peer: Any = RedisStorage(client, cookie_name=cookie, max_age=LIFETIME)
        url = f"redis://{REDIS[0]}:{REDIS[1]}/0?prefix={tag}coatcheck:"
        closing: list[Any] = [client.aclose]
    else:
        import aiomcache
        from aiohttp_session.memcached_storage import MemcachedStorage

        client = aiomcache.Client(*MEMCACHED)
        peer = MemcachedStorage(client, cookie_name=cookie, max_age=LIFETIME)
        url = f"memcached://{MEMCACHED[0]}:{MEMCACHED[1]}?prefix={tag}coatcheck:"
        closing = [client.close]
    ours = CoatcheckStorage(url, cookie_name=cookie, max_age=LIFETIME, warn_insecure=False)
    closing.append(ours.aclose)
    variants = [
        ("bare", _bare),
        ("simple cookie", _pipeline(SimpleCookieStorage(cookie_name=cookie))),
        ("aiohttp-session", _pipeline(peer)),
        ("coatcheck", _pipeline(ours)),
        ("coatcheck setup()", _pipeline(ours, guarded=True)),
    ]
    return variants, closing


def _request(cookie: str, value: str | None) -> Any:
    from aiohttp.test_utils import make_mocked_request

    headers = {} if value is None else {"Cookie": f"{cookie}={value}"}
    return make_mocked_request("GET", "/", headers=headers)


async def _ticket(call: Call, cookie: str) -> str | None:
    """The session cookie a first request gets (None for the bare handler)."""
    response = await call(_request(cookie, None))
    morsel = response.cookies.get(cookie)
    if morsel is not None:
        return str(morsel.value)
    for header in response.headers.getall("Set-Cookie", ()):
        name, _, rest = header.partition("=")
        if name == cookie:
            return rest.partition(";")[0]
    return None


async def _measure(variants: list[tuple[str, Call]], cookie: str, n: int) -> dict[str, float]:
    ops = []
    for name, call in variants:
        value = await _ticket(call, cookie)
        if name != "bare" and not value:
            raise RuntimeError(f"{name}: the first request set no session cookie")
        requests = [_request(cookie, value) for _ in range(WARMUP + n)]
        ops.append(_op(call, requests))
    medians = await time_turns(ASYNC, ops, n, PEER_BLOCK)
    return dict(zip((name for name, _ in variants), medians, strict=True))


def _op(call: Call, requests: list[Any]) -> Callable[[int], Awaitable[Any]]:
    return lambda i: call(requests[i])


async def _forget_redis(tag: str, cookie: str) -> None:
    from redis.asyncio import Redis

    client = Redis(host=REDIS[0], port=REDIS[1])
    try:
        for pattern in (f"{tag}*", f"{cookie}_*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


def _up(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


async def _run(backends: list[str], n: int) -> int:
    print(f"median µs per read-modify-write request, {n} requests each")
    print(f"{'backend':<10} {'variant':<18} {'µs':>8} {'added':>8}")
    for backend in backends:
        tag = f"bench-{uuid.uuid4().hex[:12]}:"
        # A cookie name of this run: aiohttp-session's keys are "<cookie name>_<key>".
        cookie = f"AIOHTTP_SESSION_bench{tag[6:18]}"
        variants, closing = _variants(backend, tag, cookie)
        try:
            figures = await _measure(variants, cookie, n)
        finally:
            for close in closing:
                await close()
            if backend == "redis":
                await _forget_redis(tag, cookie)
        for name, value in figures.items():
            added = value - figures["bare"]
            print(f"{backend:<10} {name:<18} {value:>8.1f} {added:>8.1f}")
        for name in ("coatcheck", "coatcheck setup()"):
            ratio = figures[name] / figures["aiohttp-session"]
            print(f"{backend:<10} {name} / aiohttp-session = {ratio:.2f} (target < 1)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-memcached", action="store_true", help="the Redis backend only")
    args = parser.parse_args(argv)
    try:
        import aiohttp_session  # noqa: F401
    except ImportError:
        print("aiohttp-session is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if not _up(REDIS):
        print(f"no Redis at {REDIS[0]}:{REDIS[1]}", file=sys.stderr)
        return 2
    backends = ["redis"]
    if not args.no_memcached and _up(MEMCACHED):
        backends.append("memcached")
    # aiohttp 3.14 warns once about aiohttp-session's plain str request keys.
    warnings.filterwarnings("ignore", message="It is recommended to use web.RequestKey")
    return asyncio.run(_run(backends, args.iterations))


if __name__ == "__main__":
    sys.exit(main())
