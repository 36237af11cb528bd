#!/usr/bin/env python3
"""What a Starlette request costs with coatcheck's Starlette integration, against the others.

Run: ``.venv/bin/python benchmarks/integration_starlette.py [--iterations N] [--no-redis]``

One Starlette app, one async route doing a read-modify-write of a counter in
``request.session`` (the client presents its session cookie; the route adds one), called as
an ASGI app with a prepared scope on one event loop (no sockets, no test client), through:

- ``starlette cookie``: Starlette's own signed-cookie ``SessionMiddleware`` (the reference: no
  store at all);
- ``plain middleware``: :class:`coatcheck.asgi.SessionMiddleware` in the app's middleware, on
  a manager with exactly the integration's settings (signed cookie, ``destroy_when_emptied``),
  so the ratio shows what the integration adds to it;
- ``integration``: :class:`coatcheck.contrib.starlette.SessionMiddleware`;
- ``starsessions``: starsessions 2 (its ``SessionMiddleware`` with ``SessionAutoloadMiddleware``,
  14-day lifetime as the others).

Backends, one row group each, every server-side variant of a group on the same one: Redis at
127.0.0.1:6379 (coatcheck's ``RedisStore`` against starsessions' ``RedisStore`` on a
``redis.asyncio`` client; keys under a prefix of this run, deleted at the end) and the
in-process memory (coatcheck's ``MemoryStore`` against starsessions' ``InMemoryStore``). The
``bare`` row is the same app with no session middleware and a route that does not touch a
session: what Starlette itself costs.

Each figure is the median µs of ``--iterations`` requests after a warm-up, the variants of a
group taking turns in blocks of ``_overhead.peers.PEER_BLOCK`` requests (``time_turns``) so
load from elsewhere hits them alike. The ratios, on the whole per-request cost: integration /
plain middleware (target <= 1.10) and integration / starsessions (target < 1).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _flavours import ASYNC
from _overhead.peers import PEER_BLOCK
from _overhead.serving import asgi_scope, asgi_ticket, receive, send
from _overhead.timing import WARMUP, time_turns

SECRET = "bench-secret-key-" * 2
REDIS = ("127.0.0.1", 6379)
LIFETIME = 14 * 24 * 3600
ASGIApp = Callable[..., Awaitable[None]]


def _app(middleware: list[Any], touch: bool = True) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def counter(request: Request) -> PlainTextResponse:
        if touch:
            session = request.session
            session["n"] = session.get("n", 0) + 1
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", counter)], middleware=middleware)


def _variants(backend: str, tag: str) -> tuple[list[tuple[str, ASGIApp]], list[Any]]:
    """The apps of one row group, and what to close after it."""
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware as SignedCookie
    from starsessions import InMemoryStore, SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as Starsessions

    from coatcheck import AsyncSessionManager
    from coatcheck.asgi import SessionMiddleware as Plain
    from coatcheck.contrib.starlette import SessionMiddleware as Integration

    if backend == "redis":
        from redis.asyncio import Redis
        from starsessions.stores.redis import RedisStore

        host, port = REDIS
        url = f"redis://{host}:{port}/0?prefix={tag}coatcheck:"
        client = Redis(host=host, port=port)
        peer_store: Any = RedisStore(connection=client, prefix=f"{tag}starsessions:")
        closing: list[Any] = [client]
    else:
        url = "memory://"
        peer_store = InMemoryStore()
        closing = []
    options = {"secret_key": SECRET, "store": url, "warn_insecure": False}
    # The plain middleware's manager gets the integration's own settings.
    config = Integration(_app([]), **options).manager.config
    plain = AsyncSessionManager(url, config)
    closing.append(plain)
    integration = _app([Middleware(Integration, **options)])
    variants = [
        ("bare", _app([], touch=False)),
        ("starlette cookie", _app([Middleware(SignedCookie, secret_key=SECRET)])),
        ("plain middleware", _app([Middleware(Plain, manager=plain)])),
        ("integration", integration),
        (
            "starsessions",
            _app(
                [
                    Middleware(Starsessions, store=peer_store, lifetime=LIFETIME),
                    Middleware(SessionAutoloadMiddleware),
                ]
            ),
        ),
    ]
    return variants, [*closing, integration]


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


async def _close(things: list[Any]) -> None:
    for thing in things:
        if hasattr(thing, "middleware_stack"):  # the integration's app: its own manager
            stack = thing.middleware_stack
            while stack is not None and not hasattr(stack, "manager"):
                stack = getattr(stack, "app", None)
            if stack is not None:
                await stack.manager.aclose()
        else:
            await thing.aclose()


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
    print(f"{'backend':<8} {'variant':<18} {'µs':>8} {'added':>8}")
    for backend in backends:
        tag = f"bench-{uuid.uuid4().hex[:12]}:"
        variants, closing = _variants(backend, tag)
        try:
            figures = await _measure(variants, n)
        finally:
            await _close(closing)
            if backend == "redis":
                await _forget_redis(tag)
        for name, value in figures.items():
            added = value - figures["bare"]
            print(f"{backend:<8} {name:<18} {value:>8.1f} {added:>8.1f}")
        ratio = figures["integration"] / figures["plain middleware"]
        peer = figures["integration"] / figures["starsessions"]
        print(f"{backend:<8} integration / plain middleware = {ratio:.2f} (target <= 1.10)")
        print(f"{backend:<8} integration / starsessions     = {peer:.2f} (target < 1)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-redis", action="store_true", help="the memory backend only")
    args = parser.parse_args(argv)
    try:
        import starsessions  # noqa: F401
    except ImportError:
        print("starsessions is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    backends = ["memory"]
    if not args.no_redis:
        if _redis_up():
            backends.insert(0, "redis")
        else:
            print(f"no Redis at {REDIS[0]}:{REDIS[1]}: the memory backend only", file=sys.stderr)
    return asyncio.run(_run(backends, args.iterations))


if __name__ == "__main__":
    sys.exit(main())
