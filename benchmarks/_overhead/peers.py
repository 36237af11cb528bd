"""What the core's figure is read against: the floor, and the peers doing the same request.

:func:`floor_middleware` is the least any server-side session can do per read-modify-write;
the peers are Beaker (WSGI), starsessions (ASGI) and Starlette's signed cookie, each timed in
the same run as coatcheck on its in-process store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from _flavours import ASYNC, SYNC

from coatcheck import AsyncSessionManager, SessionManager
from coatcheck.asgi import SessionMiddleware as ASGIMiddleware
from coatcheck.stores import AsyncMemoryStore, MemoryStore
from coatcheck.wsgi import SessionMiddleware as WSGIMiddleware

from . import serving
from .timing import WARMUP, Row, time_turns

__all__ = [
    "PEER_BLOCK",
    "floor_middleware",
    "print_peers",
    "run_asgi_peers",
    "run_floor",
    "run_wsgi_peers",
]


# -- the floor -----------------------------------------------------------------------------------


def floor_middleware(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The least any server-side session can do per read-modify-write, in pure Python.

    Not a usable session layer: a dict as the store, the same cookie parsing loop, id check and
    SHA-256 storage key as coatcheck, plain ``json`` both ways, ``Vary: Cookie`` on the way out;
    no expiry, no versions, no tagged types, no lazy creation, no error handling. It puts the
    core's figure in proportion: the same request can cost no less than this on this machine.
    """
    store: dict[str, str] = {}
    valid = re.compile(r"[A-Za-z0-9_-]{43}").fullmatch
    loads, dumps = json.loads, json.dumps

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        ticket = None
        for pair in environ.get("HTTP_COOKIE", "").split(";"):
            name, _, value = pair.partition("=")
            if name.strip() == serving.COOKIE:
                ticket = value.strip()
        key = hashlib.sha256(ticket.encode()).hexdigest() if ticket and valid(ticket) else ""
        raw = store.get(key)
        data = {} if raw is None else loads(raw)
        environ[serving.KEY] = data

        def save(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            store[key] = dumps(data, separators=(",", ":"))
            headers.append(("Vary", "Cookie"))
            return start_response(status, headers, exc_info)

        return app(environ, save)

    return middleware


def run_floor(ticket: str, n: int) -> Row:
    """The floor's read-modify-write, timed like the others; its store (a dict) costs ~0."""
    bare = serving.wsgi_app("read-modify-write")
    floor = floor_middleware(bare)
    bare_environs = [serving.wsgi_environ(ticket) for _ in range(WARMUP + n)]
    floor_environs = [serving.wsgi_environ(ticket) for _ in range(WARMUP + n)]

    def call_bare(i: int) -> None:
        serving.wsgi_call(bare, bare_environs[i])

    def call_floor(i: int) -> None:
        serving.wsgi_call(floor, floor_environs[i])

    t_bare, t_floor = SYNC.run(time_turns(SYNC, [call_bare, call_floor], n))
    return ("WSGI", "floor", "read-modify-write", t_bare, t_floor, 0.0)


# -- the peers -----------------------------------------------------------------------------------
#
# The same read-modify-write, through the peer libraries' own middleware on their in-process
# stores (``pip install -e '.[bench]'``), in the same run as coatcheck: the ratio to coatcheck is
# read within one run, as the research's tables advise. Timed in alternating blocks rather than
# call by call: a call timed right after a much heavier library's runs with that library's
# instructions and data in the caches, which cost coatcheck's median 40-70 % here.

PEER_BLOCK = 200

BEAKER_COOKIE = "beaker.session.id"
PeerRow = tuple[str, str, float]  # protocol, library, µs added over the bare app


def _beaker() -> Callable[..., Iterable[bytes]]:
    from beaker.middleware import SessionMiddleware as BeakerMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        serving.act(environ["beaker.session"], "read-modify-write")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    options = {
        "session.type": "memory",
        "session.auto": True,  # saved after the request when changed, as coatcheck does
        "session.timeout": 1800,
        "session.key": BEAKER_COOKIE,
    }
    wrapped: Callable[..., Iterable[bytes]] = BeakerMiddleware(app, options)
    return wrapped


def run_wsgi_peers(n: int) -> list[PeerRow]:
    try:
        beaker = _beaker()
    except ImportError:
        return []
    bare = serving.wsgi_app("read-modify-write")
    ours = WSGIMiddleware(bare, SessionManager(MemoryStore()))
    serving.wsgi_call(beaker, serving.wsgi_environ(None))
    beaker_ticket = serving.cookie_from(serving.last_headers, BEAKER_COOKIE)
    ticket = serving.wsgi_ticket(ours)
    environs = {
        "bare": [serving.wsgi_environ(None) for _ in range(WARMUP + n)],
        "coatcheck": [serving.wsgi_environ(ticket) for _ in range(WARMUP + n)],
        "beaker": [serving.wsgi_environ(beaker_ticket, BEAKER_COOKIE) for _ in range(WARMUP + n)],
    }
    apps: dict[str, Callable[..., Iterable[bytes]]] = {
        "bare": bare,
        "coatcheck": ours,
        "beaker": beaker,
    }

    def op(name: str) -> Callable[[int], None]:
        app, envs = apps[name], environs[name]
        return lambda i: serving.wsgi_call(app, envs[i])

    ops = [op("bare"), op("coatcheck"), op("beaker")]
    t_bare, t_ours, t_beaker = SYNC.run(time_turns(SYNC, ops, n, PEER_BLOCK))
    return [
        ("WSGI", "coatcheck, memory store", t_ours - t_bare),
        ("WSGI", "Beaker 'memory'", t_beaker - t_bare),
    ]


async def run_asgi_peers(n: int) -> list[PeerRow]:
    try:
        from starlette.middleware.sessions import SessionMiddleware as SignedCookieMiddleware
        from starsessions import InMemoryStore, SessionAutoloadMiddleware
        from starsessions import SessionMiddleware as StarsessionsMiddleware
    except ImportError:
        return []
    bare = serving.asgi_app("read-modify-write")
    contenders: dict[str, Any] = {
        "coatcheck": ASGIMiddleware(bare, AsyncSessionManager(AsyncMemoryStore())),
        "starsessions": StarsessionsMiddleware(
            SessionAutoloadMiddleware(bare), store=InMemoryStore(), lifetime=1800
        ),
        # A signed cookie, not a server-side session: for reference only.
        "starlette": SignedCookieMiddleware(bare, secret_key="overhead-benchmark-" * 2),
    }
    scopes: dict[str, list[dict[str, Any]]] = {
        "bare": [serving.asgi_scope(None) for _ in range(WARMUP + n)]
    }
    for name, app in contenders.items():
        ticket = await serving.asgi_ticket(app)
        scopes[name] = [serving.asgi_scope(ticket) for _ in range(WARMUP + n)]
    apps = {"bare": bare, **contenders}

    def op(name: str) -> Callable[[int], Awaitable[None]]:
        app, their_scopes = apps[name], scopes[name]
        return lambda i: app(their_scopes[i], serving.receive, serving.send)

    names = ["bare", *contenders]
    timed = await time_turns(ASYNC, [op(name) for name in names], n, PEER_BLOCK)
    times = dict(zip(names, timed, strict=True))
    return [
        ("ASGI", "coatcheck, memory store", times["coatcheck"] - times["bare"]),
        ("ASGI", "starsessions, InMemoryStore", times["starsessions"] - times["bare"]),
        ("ASGI", "Starlette's signed cookie (client-side)", times["starlette"] - times["bare"]),
    ]


def print_peers(rows: list[PeerRow]) -> None:
    if not rows:
        print("\npeers: not installed (pip install -e '.[bench]'); none measured")
        return
    print(f"\npeers, read-modify-write on an in-process store, in turns of {PEER_BLOCK} requests:")
    header = f"{'':4} {'library':42} {'added µs':>9} {'x coatcheck':>12}"
    print(header)
    print("-" * len(header))
    ours = {proto: added for proto, library, added in rows if library.startswith("coatcheck")}
    for proto, library, added in rows:
        print(f"{proto:4} {library:42} {added:9.2f} {added / ours[proto]:11.1f}x")
