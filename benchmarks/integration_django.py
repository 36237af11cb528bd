#!/usr/bin/env python3
"""What a Django request costs with coatcheck's session engine, against the engines it replaces.

Run: ``.venv/bin/python benchmarks/integration_django.py [--iterations N] [--no-redis]
[--no-postgresql] [--profile]``

One view, a read-modify-write of a counter in ``request.session`` (the client presents its
session cookie; the view adds one), called through Django's ``SessionMiddleware`` with a
prepared ``WSGIRequest`` (no sockets, no test client, no URL resolving), on:

- ``django db``: ``django.contrib.sessions.backends.db`` on the same database as coatcheck's
  store: an SQLite file (coatcheck's table in that file; ``sqlite`` with Django's connection
  as Django configures it, ``synchronous = FULL``, ``sqlite NORMAL`` with the
  ``synchronous = NORMAL`` coatcheck's store uses) and PostgreSQL (coatcheck's table in the
  same schema), Django's database routed to it;
- ``django cache``: ``django.contrib.sessions.backends.cache`` with Django's ``RedisCache``,
  against coatcheck on ``redis://``, the same Redis server;
- ``coatcheck``: ``SESSION_ENGINE = "coatcheck.contrib.django"`` under Django's own
  ``SessionMiddleware``, and ``coatcheck mw`` under coatcheck's (which also settles a
  session the request did not save).

Each figure is the median µs of ``--iterations`` requests after a warm-up, the variants of a
group taking turns in blocks of 200 requests (``_overhead.timing.time_turns``), so load from
elsewhere hits them alike. The ratio printed per group is coatcheck / the Django engine
(target < 1).
``--profile`` adds a cProfile of coatcheck's requests per group (the 25 costliest functions).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _flavours import SYNC
from _overhead.serving import wsgi_environ
from _overhead.timing import time_turns

SECRET = "bench-secret-key-" * 2
REDIS = ("127.0.0.1", 6379)
POSTGRESQL = ("127.0.0.1", 5432)
COATCHECK_ENGINE = "coatcheck.contrib.django"
Op = Callable[[int], object]
# The variants take turns in blocks of this many requests, not request by request: a request
# timed right after Django's db engine's pays for the fsync its commit left behind (it cost
# whichever coatcheck variant came next 60 % of its median); see _overhead.peers.PEER_BLOCK.
BLOCK = 200


class Router:
    """Sends Django's session model to the database of the group being timed."""

    alias = "default"

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self.alias

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return True


def _up(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def _configure(tmp: Path, tag: str, postgresql: bool, redis: bool) -> None:
    import django
    from django.conf import settings

    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "bench.sqlite3")}
    databases: dict[str, Any] = {
        "default": sqlite,
        # The same file, with the durability coatcheck's SQLite store runs at: in WAL mode,
        # synchronous = NORMAL syncs at checkpoints only (Django's default, FULL, on every
        # commit), to show the engines apart from the fsync.
        "normal": {**sqlite, "OPTIONS": {"init_command": "PRAGMA synchronous = NORMAL"}},
    }
    if postgresql:
        databases["pg"] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": POSTGRESQL[0],
            "PORT": POSTGRESQL[1],
            "OPTIONS": {"options": f"-c search_path=bench_{tag}"},
        }
    caches: dict[str, Any] = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    if redis:
        caches["redis"] = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "KEY_PREFIX": f"bench-django-{tag}",
        }
    settings.configure(
        SECRET_KEY=SECRET,
        INSTALLED_APPS=["django.contrib.sessions", "coatcheck.contrib.django"],
        DATABASES=databases,
        DATABASE_ROUTERS=[f"{__name__}.Router"],
        CACHES=caches,
        SESSION_CACHE_ALIAS="redis",
        SESSION_ENGINE=COATCHECK_ENGINE,
        COATCHECK={"STORE": "memory://"},
        USE_TZ=True,
    )
    django.setup()
    if postgresql:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
            c.execute(f"CREATE SCHEMA bench_{tag}")


def _view(request: Any) -> Any:
    from django.http import HttpResponse

    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse("ok")


def _middleware(engine: str, coatcheck_own: bool = False) -> Any:
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.test.utils import override_settings

    from coatcheck.contrib.django import SessionMiddleware as CoatcheckMiddleware

    with override_settings(SESSION_ENGINE=engine):  # read once, by __init__
        return (CoatcheckMiddleware if coatcheck_own else SessionMiddleware)(_view)


def _request(middleware: Any) -> Op:
    """One timed request through ``middleware``: its session made first, then the cookie
    presented on every request."""
    from django.core.handlers.wsgi import WSGIRequest

    environ = wsgi_environ(None)
    environ.update({"wsgi.input": io.BytesIO(b""), "SCRIPT_NAME": ""})
    response = middleware(WSGIRequest(dict(environ)))
    environ["HTTP_COOKIE"] = f"sessionid={response.cookies['sessionid'].value}"

    def op(_: int) -> object:
        return middleware(WSGIRequest(dict(environ)))

    return op


@contextmanager
def _group(store: str, alias: str) -> Iterator[None]:
    """The coatcheck store and the Django database of one group, while it is timed."""
    from django.core.management import call_command
    from django.test.utils import override_settings

    from coatcheck.contrib.django.apps import create_tables

    Router.alias = alias
    with override_settings(COATCHECK={"STORE": store}):
        call_command("migrate", database=alias, verbosity=0)
        create_tables()
        yield


def _profile(op: Op, n: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    for i in range(n):
        op(i)
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-redis", action="store_true", help="leave out the Redis group")
    parser.add_argument("--no-postgresql", action="store_true", help="leave out PostgreSQL")
    parser.add_argument("--profile", action="store_true", help="profile coatcheck per group")
    args = parser.parse_args(argv)
    tag = uuid.uuid4().hex[:12]
    redis = not args.no_redis and _up(REDIS)
    postgresql = not args.no_postgresql and _up(POSTGRESQL)
    with tempfile.TemporaryDirectory() as tmp:
        _configure(Path(tmp), tag, postgresql, redis)
        # (backend, coatcheck store URL, Django database alias, Django engine and its name)
        sqlite = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        groups = [("sqlite", sqlite, "default", "db"), ("sqlite NORMAL", sqlite, "normal", "db")]
        if postgresql:
            pg = f"postgresql://postgres@127.0.0.1:5432/test?table=bench_{tag}.coatcheck_sessions"
            groups.append(("postgresql", pg, "pg", "db"))
        if redis:
            url = f"redis://{REDIS[0]}:{REDIS[1]}/0?prefix=bench-coatcheck-{tag}:"
            groups.append(("redis", url, "default", "cache"))
        print(f"median µs per read-modify-write request, {args.iterations} requests each")
        print(f"{'backend':<13} {'variant':<14} {'µs':>8}")
        try:
            for backend, store, alias, kind in groups:
                with _group(store, alias):
                    variants = {
                        f"django {kind}": _middleware(f"django.contrib.sessions.backends.{kind}"),
                        "coatcheck": _middleware(COATCHECK_ENGINE),
                        "coatcheck mw": _middleware(COATCHECK_ENGINE, coatcheck_own=True),
                    }
                    ops = [_request(middleware) for middleware in variants.values()]
                    medians = SYNC.run(time_turns(SYNC, ops, args.iterations, BLOCK))
                    figures = dict(zip(variants, medians, strict=True))
                    for name, value in figures.items():
                        print(f"{backend:<13} {name:<14} {value:>8.1f}")
                    ratio = figures["coatcheck"] / figures[f"django {kind}"]
                    print(f"{backend:<13} coatcheck / django {kind} = {ratio:.2f} (target < 1)")
                    if args.profile:
                        print(_profile(ops[1], min(args.iterations, 2000)))
        finally:
            _forget(tag, postgresql, redis)
    return 0


def _forget(tag: str, postgresql: bool, redis: bool) -> None:
    """Drop this run's schema and keys (unique names: nothing else is touched)."""
    from django.db import connections

    from coatcheck.contrib.django._config import close_stores

    close_stores()
    connections.close_all()
    if postgresql:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS bench_{tag} CASCADE")
    if redis:
        import redis as redis_py

        client = redis_py.Redis(*REDIS)
        for pattern in (f"bench-coatcheck-{tag}:*", f"bench-django-{tag}:*"):
            keys = list(client.scan_iter(pattern))
            if keys:
                client.delete(*keys)
        client.close()


if __name__ == "__main__":
    sys.exit(main())
