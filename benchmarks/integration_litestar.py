#!/usr/bin/env python3
"""What a Litestar request costs with coatcheck's Litestar backend, against Litestar's own.

Run: ``.venv/bin/python benchmarks/integration_litestar.py [--iterations N] [--no-redis]``

One Litestar app, one async route doing a read-modify-write of a counter in
``request.session`` (the client presents its session cookie; the route adds one), called as
an ASGI app with a prepared scope on one event loop (no sockets, no test client), through:

- ``litestar server-side``: Litestar's ``ServerSideSessionConfig`` on its own store (the
  reference);
- ``plain middleware``: :class:`coatcheck.asgi.SessionMiddleware` in the app's middleware, on
  a manager with exactly the backend's settings, so the ratio shows what the Litestar backend
  adds to it;
- ``integration``: :class:`coatcheck.contrib.litestar.CoatcheckSessionConfig`.

Backends, one row group each: Redis at 127.0.0.1:6379 (coatcheck's ``RedisStore`` against
Litestar's ``RedisStore`` on a ``redis.asyncio`` client; keys under a prefix of this run,
deleted at the end) and the in-process memory (coatcheck's ``MemoryStore`` against Litestar's
``MemoryStore``). The ``bare`` row is the app with no session middleware and a route that does
not touch a session: what Litestar itself costs.

Each figure is the median µs of ``--iterations`` requests after a warm-up, the variants of a
group taking turns in blocks of ``_overhead.peers.PEER_BLOCK`` requests (``time_turns``) so
load from elsewhere hits them alike. The ratios: integration / plain middleware and
integration / litestar server-side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _flavours import ASYNC
from _overhead.peers import PEER_BLOCK
from _overhead.serving import asgi_scope, asgi_ticket, receive, send
from _overhead.timing import WARMUP, time_turns

REDIS = ("127.0.0.1", 6379)
ASGIApp = Callable[..., Awaitable[None]]


def _app(middleware: list[Any], touch: bool = True, stores: Any = None) -> ASGIApp:
    from litestar import Litestar, Request, get

    @get("/", media_type="text/plain")
    async def counter(request: Request[Any, Any, Any]) -> str:
        if touch:
            session = request.session
            session["n"] = session.get("n", 0) + 1
        return "ok"

    return Litestar([counter], middleware=middleware, stores=stores, logging_config=None)


def _variants(backend: str, tag: str) -> tuple[list[tuple[str, ASGIApp]], list[Any]]:
    """The apps of one row group, and what to close after it."""
    from litestar.middleware import DefineMiddleware
    from litestar.middleware.session.server_side import ServerSideSessionConfig
    from litestar.stores.memory import MemoryStore

    from coatcheck import AsyncSessionManager
    from coatcheck.asgi import SessionMiddleware as Plain
    from coatcheck.contrib.litestar import CoatcheckSessionConfig

    closing: list[Any] = []
    peer_store: Any
    if backend == "redis":
        from litestar.stores.redis import RedisStore
        from redis.asyncio import Redis

        host, port = REDIS
        url = f"redis://{host}:{port}/0?prefix={tag}coatcheck:"
        client = Redis(host=host, port=port)
        peer_store = RedisStore(client, namespace=f"{tag}litestar")
        closing.append(client)
    else:
        url = "memory://"
        peer_store = MemoryStore()
    config = CoatcheckSessionConfig(store=url)
    closing.append(config)
    plain = AsyncSessionManager(url, config.session_config())
    closing.append(plain)
    variants = [
        ("bare", _app([], touch=False)),
        (
            "litestar server-side",
            _app([ServerSideSessionConfig().middleware], stores={"sessions": peer_store}),
        ),
        ("plain middleware", _app([DefineMiddleware(Plain, manager=plain)])),
        ("integration", _app([config.middleware])),
    ]
    return variants, closing


async def _measure(variants: list[tuple[str, ASGIApp]], n: int) -> dict[str, float]:
    ops = []
    for name, app in variants:
        ticket = None if name == "bare" else await asgi_ticket(app)
        scopes = [asgi_scope(ticket) for _ in range(WARMUP + n)]
        ops.append(_request(app, scopes))
    medians = await time_turns(ASYNC, ops, n, PEER_BLOCK)
    return dict(zip((name for name, _ in variants), medians, strict=True))


def _request(app: ASGIApp, scopes: list[dict[str, Any]]) -> Callable[[int], Awaitable[None]]:
    return lambda i: app(scopes[i], receive, send)


async def _forget_redis(tag: str) -> None:
    from redis.asyncio import Redis

    client = Redis(host=REDIS[0], port=REDIS[1])
    try:
        keys = [key async for key in client.scan_iter(match=f"{tag}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1.0):
            return True
    except OSError:
        return False


async def _run(backends: list[str], n: int) -> int:
    print(f"median µs per read-modify-write request, {n} requests each")
    print(f"{'backend':<8} {'variant':<22} {'µs':>8} {'added':>8}")
    for backend in backends:
        tag = f"bench-{uuid.uuid4().hex[:12]}:"
        variants, closing = _variants(backend, tag)
        try:
            figures = await _measure(variants, n)
        finally:
            for thing in closing:
                await thing.aclose()
            if backend == "redis":
                await _forget_redis(tag)
        for name, value in figures.items():
            added = value - figures["bare"]
            print(f"{backend:<8} {name:<22} {value:>8.1f} {added:>8.1f}")
        ratio = figures["integration"] / figures["plain middleware"]
        peer = figures["integration"] / figures["litestar server-side"]
        print(f"{backend:<8} integration / plain middleware      = {ratio:.2f}")
        print(f"{backend:<8} integration / litestar server-side  = {peer:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-redis", action="store_true", help="the memory backend only")
    args = parser.parse_args(argv)
    # Litestar warns about sync callables at app creation; none here, but keep it quiet.
    os.environ.setdefault("LITESTAR_WARN_IMPLICIT_SYNC_TO_THREAD", "0")
    backends = ["memory"]
    if not args.no_redis:
        if _redis_up():
            backends.insert(0, "redis")
        else:
            print(f"no Redis at {REDIS[0]}:{REDIS[1]}: the memory backend only", file=sys.stderr)
    return asyncio.run(_run(backends, args.iterations))


if __name__ == "__main__":
    sys.exit(main())
