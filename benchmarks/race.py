#!/usr/bin/env python3
"""Lost updates: coatcheck's concurrency modes against the peer libraries, side by side.

Run ``.venv/bin/python benchmarks/race.py [--quick]`` (peers: ``pip install -e '.[bench]'``).

One request creates a session (``counter`` = 1, plus ~100 bytes of user data); then two workers
send read-modify-write requests on that one session at the same time: read ``counter``, write
``counter + 1``, save. ``lost`` = successful increments that did not stick. The method is the one
of the peer measurements in ``shared/research/performance.md`` section 2 (two workers x 500
requests, threads and processes, plus threads at a 1 µs switch interval for the in-process
stores). Peers run through their normal integration, called in-process (WSGI environ or ASGI
scope built by hand): Beaker's ``SessionMiddleware``, Flask + Flask-Session, Django's
``WSGIHandler`` + ``SessionMiddleware``, Starlette + starsessions. coatcheck runs through its
``SessionManager`` (open, change, save), in each mode:

- ``none``: last writer wins, as documented;
- ``merge``: the default; the counter case is one hot key (the policy ``last-writer`` may lose
  increments by design); the ``keys`` case has each worker write keys of its own
  (``w<worker>-<j>``) and ``lost`` counts keys that vanished;
- ``merge raise+retry``: ``merge_conflict="raise"``, the request is replayed on
  ``SessionConflict`` (the way to count in merge mode);
- ``lock``: a per-session lock from load to save.

``err`` counts requests that raised (or answered non-200); they are not counted as lost.
Then the cost of ``merge`` and ``lock`` over ``none`` on an uncontended session, in µs per
request and, on Redis, in round trips (counted by a client that counts its commands).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REDIS = ("127.0.0.1", int(os.environ.get("BENCH_REDIS_PORT", "6379")))
MEMCACHED = ("127.0.0.1", int(os.environ.get("BENCH_MEMCACHED_PORT", "11211")))
POSTGRESQL = ("127.0.0.1", int(os.environ.get("BENCH_PG_PORT", "5432")))
MYSQL = ("127.0.0.1", int(os.environ.get("BENCH_MYSQL_PORT", "3306")))
PG_URL = os.environ.get(
    "BENCH_PG_URL", f"postgresql://postgres@{POSTGRESQL[0]}:{POSTGRESQL[1]}/test"
)
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", f"mysql://root@{MYSQL[0]}:{MYSQL[1]}/test")
SERVERS = {"redis": REDIS, "memcached": MEMCACHED, "postgresql": POSTGRESQL, "mysql": MYSQL}

LIFETIME = 3600
WORKERS = 2
# What the first visit stores besides the counter (~100 bytes, as in the peer measurements).
FIRST_VISIT = {
    "uid": 4217,
    "roles": ["user", "editor"],
    "csrf": "9f2c1e7ab04d4c55a8e1f03b6d2c7e19",
    "lang": "en",
}


# -- a client: one application on one store, driven by one or more workers -------------------


@dataclass
class Tally:
    """What one worker saw."""

    ok: int = 0
    errors: int = 0
    first_error: str = ""
    started: float = 0.0
    finished: float = 0.0

    def fail(self, what: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = what


class Client(Protocol):
    def first(self) -> str:
        """Create the session; return the Cookie header value that carries it."""

    def run(self, cookie: str, worker: int, count: int) -> Tally:
        """``count`` requests of this worker, one after another."""

    def final(self, cookie: str) -> int:
        """The counter (or, for the keys case, the number of worker keys) now stored."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Spec:
    """How to build a client, in this process or another: a module-level factory and options."""

    factory: Callable[..., Client]
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Client:
        return self.factory(**self.options)


def _cookie_from(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        value = value.strip()
        if key.lower() == "set-cookie" and value.startswith(name + "="):
            return value.split(";", 1)[0]
    raise RuntimeError(f"the first response set no {name} cookie: {headers}")


def _environ(path: str, cookie: str | None) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


class WSGIClient:
    """Calls a WSGI app in-process; ``/`` increments the counter, ``/peek`` only reads it."""

    def __init__(self, app: Any, cookie_name: str, cleanup: Callable[[], None] | None = None):
        self.app = app
        self.cookie_name = cookie_name
        self._cleanup = cleanup

    def call(self, path: str, cookie: str | None) -> tuple[str, list[tuple[str, str]], bytes]:
        out: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> None:
            out["status"], out["headers"] = status, headers

        chunks = self.app(_environ(path, cookie), start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return out["status"], out["headers"], body

    def first(self) -> str:
        status, headers, _ = self.call("/", None)
        if not status.startswith("200"):
            raise RuntimeError(f"first request answered {status}")
        return _cookie_from(headers, self.cookie_name)

    def run(self, cookie: str, worker: int, count: int) -> Tally:
        tally = Tally(started=time.monotonic())
        for _ in range(count):
            try:
                status, _, _ = self.call("/", cookie)
            except Exception as exc:
                tally.fail(f"{type(exc).__name__}: {exc}")
                continue
            if status.startswith("200"):
                tally.ok += 1
            else:
                tally.fail(status)
        tally.finished = time.monotonic()
        return tally

    def final(self, cookie: str) -> int:
        status, _, body = self.call("/peek", cookie)
        if not status.startswith("200"):
            raise RuntimeError(f"/peek answered {status}")
        return int(body)

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()


# -- coatcheck --------------------------------------------------------------------------------


class CoatcheckClient:
    """coatcheck's SessionManager on one store; ``kind`` is ``counter`` or ``keys``."""

    def __init__(
        self,
        url: str,
        mode: str,
        kind: str = "counter",
        policy: str = "last-writer",
        retry: bool = False,
    ) -> None:
        from coatcheck import SessionManager
        from coatcheck.stores import MemoryStore, store_from_url

        self.store = MemoryStore() if url == "memory://" else store_from_url(url)
        self.manager = SessionManager(
            self.store,
            concurrency=mode,
            merge_conflict=policy,
            lock_wait=30.0,
            idle_timeout=LIFETIME,
        )
        self.kind = kind
        self.retry = retry

    def first(self) -> str:
        session = self.manager.open(None)
        session.update(FIRST_VISIT)
        session["counter"] = 1
        ticket = self.manager.save(session).ticket
        assert ticket is not None
        return ticket

    def run(self, cookie: str, worker: int, count: int) -> Tally:
        from coatcheck import CoatcheckError, SessionConflict

        tally = Tally(started=time.monotonic())
        manager = self.manager
        for j in range(count):
            while True:
                try:
                    session = manager.open(cookie)
                    if self.kind == "keys":
                        session[f"w{worker}-{j}"] = j
                    else:
                        session["counter"] = session["counter"] + 1
                    manager.save(session)
                except SessionConflict as exc:
                    if self.retry:
                        continue
                    tally.fail(f"{type(exc).__name__}: {exc}")
                except CoatcheckError as exc:
                    tally.fail(f"{type(exc).__name__}: {exc}")
                else:
                    tally.ok += 1
                break
        tally.finished = time.monotonic()
        return tally

    def final(self, cookie: str) -> int:
        session = self.manager.open(cookie, read_only=True)
        if self.kind == "keys":
            return sum(1 for key in session if key.startswith("w"))
        return int(session["counter"])

    def close(self) -> None:
        self.store.close()


def coatcheck_client(**options: Any) -> Client:
    return CoatcheckClient(**options)


@contextmanager
def coatcheck_place(store: str, workdir: Path) -> Iterator[str]:
    """A fresh, isolated store location as a URL; removed afterwards."""
    unique = uuid.uuid4().hex[:12]
    if store == "memory":
        yield "memory://"
    elif store == "file":
        yield f"file://{workdir / f'cc-files-{unique}'}"
    elif store == "sqlite":
        from coatcheck.stores import SQLiteStore

        url = f"sqlite:///{workdir / f'cc-{unique}.db'}"
        sqlite = SQLiteStore.from_url(url)
        sqlite.create_tables()
        sqlite.close()
        yield url
    elif store in ("redis", "memcached"):
        host, port = SERVERS[store]
        prefix = f"cc-race-{unique}:"
        try:
            yield f"{store}://{host}:{port}{'/0' if store == 'redis' else ''}?prefix={prefix}"
        finally:
            # memcached cannot enumerate keys: the run's items expire with their TTL.
            if store == "redis":
                _delete_redis_keys(prefix + "*")
    elif store in ("postgresql", "mysql"):
        from coatcheck.stores import store_from_url

        base = PG_URL if store == "postgresql" else MYSQL_URL
        url = f"{base}?table=cc_race_{unique}"
        built: Any = store_from_url(url)
        built.create_tables()
        try:
            yield url
        finally:
            built.drop_tables()
            built.close()
    else:
        raise ValueError(store)


def _delete_redis_keys(pattern: str) -> None:
    import redis

    client = redis.Redis(*REDIS)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- Beaker -----------------------------------------------------------------------------------


def _beaker_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["beaker.session"]
    if environ["PATH_INFO"] != "/peek":
        if "counter" in session:
            session["counter"] += 1
        else:
            session.update(FIRST_VISIT)
            session["counter"] = 1
        session.save()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("counter", 0)).encode()]


def beaker_client(kind: str, place: str) -> Client:
    from beaker.middleware import SessionMiddleware

    options: dict[str, Any] = {
        "session.type": kind,
        "session.timeout": LIFETIME,
        "session.auto": False,
        "session.key": "beaker.session.id",
    }
    if kind == "file":
        options["session.data_dir"] = place + "/data"
        options["session.lock_dir"] = place + "/lock"
    elif kind in ("ext:redis", "ext:database"):
        options["session.url"] = place
    return WSGIClient(SessionMiddleware(_beaker_app, options), "beaker.session.id")


# -- Flask-Session ----------------------------------------------------------------------------


def flask_client(kind: str, place: str) -> Client:
    from flask import Flask, session
    from flask_session import Session

    app = Flask("race")
    app.config["SECRET_KEY"] = "bench-secret-key-" * 2
    app.config["PERMANENT_SESSION_LIFETIME"] = LIFETIME
    if kind == "SimpleCache":
        from cachelib import SimpleCache

        app.config.update(
            SESSION_TYPE="cachelib",
            SESSION_CACHELIB=SimpleCache(threshold=1_000_000, default_timeout=LIFETIME),
        )
    elif kind == "FileSystemCache":
        from cachelib import FileSystemCache

        # threshold=500 is the documented example (performance.md measured the same).
        app.config.update(
            SESSION_TYPE="cachelib", SESSION_CACHELIB=FileSystemCache(place, threshold=500)
        )
    elif kind == "redis":
        import redis

        app.config.update(
            SESSION_TYPE="redis", SESSION_REDIS=redis.Redis(*REDIS), SESSION_KEY_PREFIX=place
        )
    elif kind == "sqlalchemy":
        from flask_sqlalchemy import SQLAlchemy

        app.config["SQLALCHEMY_DATABASE_URI"] = place
        app.config.update(SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=SQLAlchemy(app))
    else:
        raise ValueError(kind)
    Session(app)

    @app.route("/")
    def bump() -> str:
        if "counter" in session:
            session["counter"] += 1
        else:
            session.update(FIRST_VISIT)
            session["counter"] = 1
        return str(session["counter"])

    @app.route("/peek")
    def peek() -> str:
        return str(session.get("counter", 0))

    return WSGIClient(app, "session")


# -- Django -----------------------------------------------------------------------------------


def _django_bump(request: Any) -> Any:
    from django.http import HttpResponse

    session = request.session
    if "counter" in session:
        session["counter"] += 1
    else:
        session.update(FIRST_VISIT)
        session["counter"] = 1
    return HttpResponse(str(session["counter"]))


def _django_peek(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(str(request.session.get("counter", 0)))


def _django_setup(db_path: str, redis_prefix: str) -> None:
    """Django settings are per process: configure once, with every backend the rows use."""
    from django.conf import settings

    if settings.configured:
        return
    from django.urls import path

    urls = types.ModuleType("race_urls")
    urls.urlpatterns = [path("", _django_bump), path("peek", _django_peek)]  # type: ignore[attr-defined]
    sys.modules["race_urls"] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-secret-key-" * 3,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="race_urls",
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": db_path,
                "CONN_MAX_AGE": None,
            }
        },
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "OPTIONS": {"MAX_ENTRIES": 1_000_000},
            },
            "redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://{REDIS[0]}:{REDIS[1]}/0",
                "KEY_PREFIX": redis_prefix,
            },
        },
        SESSION_COOKIE_AGE=LIFETIME,
        LOGGING_CONFIG=None,
        USE_TZ=True,
    )
    import django

    django.setup()
    if not Path(db_path).exists() or Path(db_path).stat().st_size == 0:
        from django.core.management import call_command

        call_command("migrate", "sessions", verbosity=0)


def django_client(kind: str, db_path: str, redis_prefix: str) -> Client:
    _django_setup(db_path, redis_prefix)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.SESSION_ENGINE = (
        "django.contrib.sessions.backends.db"
        if kind == "db"
        else "django.contrib.sessions.backends.cache"
    )
    settings.SESSION_CACHE_ALIAS = "redis" if kind == "cache-redis" else "default"
    return WSGIClient(WSGIHandler(), "sessionid")


# -- starsessions (ASGI) ----------------------------------------------------------------------


class ASGIClient:
    """Calls a Starlette app in-process; each worker runs its own event loop and app."""

    def __init__(self, make_app: Callable[[], Any]) -> None:
        self._make_app = make_app

    async def _call(
        self, app: Any, path: str, cookie: str | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(b"host", b"localhost")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("localhost", 80),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        decoded = [(k.decode(), v.decode()) for k, v in start["headers"]]
        return start["status"], decoded, body

    def _once(self, path: str, cookie: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        async def go() -> tuple[int, list[tuple[str, str]], bytes]:
            return await self._call(self._make_app(), path, cookie)

        return asyncio.run(go())

    def first(self) -> str:
        status, headers, _ = self._once("/", None)
        if status != 200:
            raise RuntimeError(f"first request answered {status}")
        return _cookie_from(headers, "session")

    def run(self, cookie: str, worker: int, count: int) -> Tally:
        async def go() -> Tally:
            app = self._make_app()
            tally = Tally(started=time.monotonic())
            for _ in range(count):
                try:
                    status, _, _ = await self._call(app, "/", cookie)
                except Exception as exc:
                    tally.fail(f"{type(exc).__name__}: {exc}")
                    continue
                if status == 200:
                    tally.ok += 1
                else:
                    tally.fail(str(status))
            tally.finished = time.monotonic()
            return tally

        return asyncio.run(go())

    def final(self, cookie: str) -> int:
        _, _, body = self._once("/peek", cookie)
        return int(body)

    def close(self) -> None:
        pass


def starsessions_client(kind: str, place: str) -> Client:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starsessions import InMemoryStore, SessionAutoloadMiddleware, SessionMiddleware

    async def bump(request: Request) -> PlainTextResponse:
        session = request.session
        if "counter" in session:
            session["counter"] += 1
        else:
            session.update(FIRST_VISIT)
            session["counter"] = 1
        return PlainTextResponse(str(session["counter"]))

    async def peek(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.session.get("counter", 0)))

    memory = InMemoryStore() if kind == "memory" else None

    def make_app() -> Any:
        if memory is not None:
            store: Any = memory
        else:
            from starsessions.stores.redis import RedisStore

            # redis.asyncio clients belong to one event loop: one per worker loop.
            store = RedisStore(url=f"redis://{REDIS[0]}:{REDIS[1]}/0", prefix=place)
        return Starlette(
            routes=[Route("/", bump), Route("/peek", peek)],
            middleware=[
                Middleware(SessionMiddleware, store=store, lifetime=LIFETIME),
                Middleware(SessionAutoloadMiddleware),
            ],
        )

    return ASGIClient(make_app)


# -- the rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    library: str
    variant: str
    store: str
    shared: bool  # several processes can share the store
    server: str | None  # the server it needs, if any
    kind: str  # "counter" or "keys"
    place: Callable[[Path], Any]  # context manager yielding the Spec


def _coatcheck_rows() -> list[Row]:
    rows = []
    stores = [
        ("memory", None),
        ("file", None),
        ("sqlite", None),
        ("redis", "redis"),
        ("memcached", "memcached"),
        ("postgresql", "postgresql"),
        ("mysql", "mysql"),
    ]
    modes: list[tuple[str, dict[str, Any], str]] = [
        ("none", {"mode": "none"}, "counter"),
        ("merge", {"mode": "merge"}, "counter"),
        ("merge raise+retry", {"mode": "merge", "policy": "raise", "retry": True}, "counter"),
        ("merge keys", {"mode": "merge", "kind": "keys"}, "keys"),
        ("lock", {"mode": "lock"}, "counter"),
    ]
    for label, options, kind in modes:
        for store, server in stores:

            @contextmanager
            def place(
                workdir: Path, store: str = store, options: dict[str, Any] = options
            ) -> Iterator[Spec]:
                with coatcheck_place(store, workdir) as url:
                    yield Spec(coatcheck_client, {"url": url, **options})

            rows.append(Row("coatcheck", label, store, store != "memory", server, kind, place))
    return rows


def _peer_rows() -> list[Row]:
    rows: list[Row] = []

    def add(
        library: str,
        variant: str,
        store: str,
        shared: bool,
        server: str | None,
        make: Callable[[Path], Iterator[Spec]],
    ) -> None:
        rows.append(Row(library, variant, store, shared, server, "counter", contextmanager(make)))

    def beaker(kind: str) -> Callable[[Path], Iterator[Spec]]:
        def make(workdir: Path) -> Iterator[Spec]:
            unique = uuid.uuid4().hex[:12]
            if kind == "ext:redis":
                where = f"redis://{REDIS[0]}:{REDIS[1]}/0"
            elif kind == "ext:database":
                where = f"sqlite:///{workdir / f'beaker-{unique}.db'}"
            else:
                where = str(workdir / f"beaker-{unique}")
            # Beaker's redis keys are beaker_cache:<session id>:*; Runner.trial removes them.
            yield Spec(beaker_client, {"kind": kind, "place": where})

        return make

    add("Beaker", "memory", "memory", False, None, beaker("memory"))
    add("Beaker", "file", "file", True, None, beaker("file"))
    add("Beaker", "ext:redis", "redis", True, "redis", beaker("ext:redis"))
    add("Beaker", "ext:database", "sqlite", True, None, beaker("ext:database"))

    def flask(kind: str) -> Callable[[Path], Iterator[Spec]]:
        def make(workdir: Path) -> Iterator[Spec]:
            unique = uuid.uuid4().hex[:12]
            if kind == "redis":
                where = f"fs-race-{unique}:"
            elif kind == "sqlalchemy":
                where = f"sqlite:///{workdir / f'flask-{unique}.db'}"
            else:
                where = str(workdir / f"flask-{unique}")
            try:
                yield Spec(flask_client, {"kind": kind, "place": where})
            finally:
                if kind == "redis":
                    _delete_redis_keys(where + "*")

        return make

    add("Flask-Session", "cachelib SimpleCache", "memory", False, None, flask("SimpleCache"))
    add("Flask-Session", "cachelib FileSystemCache", "file", True, None, flask("FileSystemCache"))
    add("Flask-Session", "redis", "redis", True, "redis", flask("redis"))
    add("Flask-Session", "sqlalchemy", "sqlite", True, None, flask("sqlalchemy"))

    def django(kind: str) -> Callable[[Path], Iterator[Spec]]:
        def make(workdir: Path) -> Iterator[Spec]:
            # One settings object per process: every Django row shares the database file and
            # the Redis key prefix of this benchmark run.
            yield Spec(
                django_client,
                {
                    "kind": kind,
                    "db_path": str(workdir / "django.db"),
                    "redis_prefix": f"dj-race-{workdir.name}",
                },
            )

        return make

    add("Django", "db", "sqlite", True, None, django("db"))
    add("Django", "cache (locmem)", "memory", False, None, django("cache-locmem"))
    add("Django", "cache (redis)", "redis", True, "redis", django("cache-redis"))

    def starsessions(kind: str) -> Callable[[Path], Iterator[Spec]]:
        def make(workdir: Path) -> Iterator[Spec]:
            unique = uuid.uuid4().hex[:12]
            where = f"ss-race-{unique}."
            try:
                yield Spec(starsessions_client, {"kind": kind, "place": where})
            finally:
                if kind == "redis":
                    _delete_redis_keys(where + "*")

        return make

    add("starsessions", "memory", "memory", False, None, starsessions("memory"))
    add("starsessions", "redis", "redis", True, "redis", starsessions("redis"))
    return rows


# -- running ----------------------------------------------------------------------------------


@dataclass
class Trial:
    lost: int
    total: int
    errors: int
    seconds: float
    first_error: str = ""


_start_line: Any = None


def _init_worker(barrier: Any) -> None:
    global _start_line
    _start_line = barrier


def _process_job(spec: Spec, cookie: str, worker: int, count: int) -> Tally:
    client = spec.build()
    try:
        _start_line.wait(timeout=120)  # both workers start their requests together
        return client.run(cookie, worker, count)
    finally:
        client.close()


class Runner:
    def __init__(self, workdir: Path, count: int) -> None:
        self.workdir = workdir
        self.count = count
        self._pool: Any = None
        self._barrier: Any = None

    def pool(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            self._barrier = ctx.Barrier(WORKERS)
            self._pool = ProcessPoolExecutor(
                WORKERS, mp_context=ctx, initializer=_init_worker, initargs=(self._barrier,)
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def trial(self, row: Row, how: str, switch_interval: float | None) -> Trial:
        with row.place(self.workdir) as spec:
            client = spec.build()
            cookie = ""
            try:
                cookie = client.first()
                if how == "threads":
                    tallies = self._threads(client, cookie, switch_interval)
                else:
                    self.pool()
                    self._barrier.reset()
                    futures = [
                        self._pool.submit(_process_job, spec, cookie, w, self.count)
                        for w in range(WORKERS)
                    ]
                    tallies = [f.result(timeout=600) for f in futures]
                final = client.final(cookie)
            finally:
                client.close()
                if row.library == "Beaker" and row.store == "redis" and cookie:
                    _delete_redis_keys(f"beaker_cache:{cookie.split('=', 1)[1]}:*")
        ok = sum(t.ok for t in tallies)
        errors = sum(t.errors for t in tallies)
        stuck = final if row.kind == "keys" else final - 1
        seconds = max(t.finished for t in tallies) - min(t.started for t in tallies)
        first_error = next((t.first_error for t in tallies if t.first_error), "")
        return Trial(ok - stuck, WORKERS * self.count, errors, seconds, first_error)

    def _threads(self, client: Client, cookie: str, switch_interval: float | None) -> list[Tally]:
        start = threading.Barrier(WORKERS)
        tallies: list[Tally] = [Tally() for _ in range(WORKERS)]
        crashed: list[BaseException] = []

        def body(worker: int) -> None:
            try:
                start.wait(timeout=120)
                tallies[worker] = client.run(cookie, worker, self.count)
            except BaseException as exc:
                crashed.append(exc)

        old = sys.getswitchinterval()
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        try:
            threads = [threading.Thread(target=body, args=(w,)) for w in range(WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(old)
        if crashed:
            raise crashed[0]
        return tallies


def _reachable(server: str) -> bool:
    try:
        with socket.create_connection(SERVERS[server], timeout=1.0):
            return True
    except OSError:
        return False


def _importable(library: str) -> str | None:
    module = {
        "coatcheck": "coatcheck",
        "Beaker": "beaker",
        "Flask-Session": "flask_session",
        "Django": "django",
        "starsessions": "starsessions",
    }[library]
    try:
        __import__(module)
    except ImportError as exc:
        return f"{library} is not installed ({exc}); pip install -e '.[bench]'"
    return None


def _cell(trials: list[Trial]) -> str:
    if not trials:
        return "n/a"
    lost = sorted(t.lost for t in trials)
    total = trials[0].total
    median = statistics.median(lost)
    text = f"{median:g}/{total} ({100 * median / total:.0f}%)"
    if len(trials) > 1:
        text += f" [{lost[0]}-{lost[-1]}]"
    errors = sum(t.errors for t in trials)
    if errors:
        text += f" err {errors}"
    seconds = statistics.median(t.seconds for t in trials)
    return f"{text} {seconds:.2f}s"


def race_table(args: argparse.Namespace, workdir: Path) -> None:
    rows = _coatcheck_rows() + ([] if args.no_peers else _peer_rows())
    if args.only:
        rows = [
            r for r in rows if any(s in f"{r.library} {r.variant} {r.store}" for s in args.only)
        ]
    runner = Runner(workdir, args.requests)
    notes: list[str] = []
    skipped: set[str] = set()
    columns = ["threads", "threads 1µs", "processes"]
    print(
        f"Lost updates: {WORKERS} workers x {args.requests} read-modify-write requests on one"
        f" session, {args.trials} trial(s) each; cell = lost/total (%) [min-max] err, wall time"
    )
    print(
        "threads: switch interval "
        f"{args.switch_interval if args.switch_interval else sys.getswitchinterval()} s;"
        " 'threads 1µs' only for in-process stores; 'processes' only for shared stores"
    )
    header = f"{'library':<13} {'variant':<25} {'store':<10} " + " ".join(
        f"{c:<34}" for c in columns
    )
    print(header)
    print("-" * len(header))
    try:
        for row in rows:
            missing = _importable(row.library)
            unreachable = row.server is not None and not _reachable(row.server)
            if missing or unreachable:
                reason = missing or f"{row.server} not reachable at {SERVERS[row.server or '']}"
                if reason not in skipped:
                    skipped.add(reason)
                    notes.append(f"skipped {row.library} {row.variant} ({row.store}): {reason}")
                continue
            cells = []
            for column in columns:
                if column == "processes" and not row.shared:
                    cells.append("n/a")
                    continue
                if column == "threads 1µs" and row.shared:
                    cells.append("n/a")
                    continue
                how = "processes" if column == "processes" else "threads"
                interval = 1e-6 if column == "threads 1µs" else args.switch_interval
                trials = []
                try:
                    for _ in range(args.trials):
                        trials.append(runner.trial(row, how, interval))
                except Exception as exc:
                    notes.append(
                        f"{row.library} {row.variant} ({row.store}) {column}: could not run:"
                        f" {type(exc).__name__}: {exc}"
                    )
                    cells.append("failed")
                    continue
                for t in trials:
                    if t.first_error:
                        notes.append(
                            f"{row.library} {row.variant} ({row.store}) {column}: first error:"
                            f" {t.first_error[:160]}"
                        )
                        break
                cells.append(_cell(trials))
            print(
                f"{row.library:<13} {row.variant:<25} {row.store:<10} "
                + " ".join(f"{c:<34}" for c in cells),
                flush=True,
            )
    finally:
        runner.close()
    for note in notes:
        print("note:", note)


# -- uncontended cost -------------------------------------------------------------------------


def _counting_redis() -> Any:
    import redis

    class CountingRedis(redis.Redis):
        """Counts commands sent; without pipelines each is one round trip."""

        commands = 0

        def execute_command(self, *args: Any, **options: Any) -> Any:
            type(self).commands += 1
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    return CountingRedis(*REDIS)


def overhead(args: argparse.Namespace, workdir: Path) -> None:
    from coatcheck import SessionManager
    from coatcheck.stores import MemoryStore, RedisStore, SQLiteStore

    count, rounds = args.uncontended, args.rounds
    print()
    print(
        f"Uncontended cost: one worker, rounds of {count} read-modify-write requests on one"
        " session;"
        f" µs per request, median of {rounds} rounds, modes taking turns (ratio to none)"
    )
    stores: list[tuple[str, Callable[[], Any]]] = [("memory", MemoryStore)]

    def sqlite() -> Any:
        built = SQLiteStore(workdir / f"uncontended-{uuid.uuid4().hex[:8]}.db")
        built.create_tables()
        return built

    stores.append(("sqlite", sqlite))
    redis_ok = _reachable("redis")
    prefix = f"cc-race-{uuid.uuid4().hex[:12]}:"
    if redis_ok:
        stores.append(("redis", lambda: RedisStore(client=_counting_redis(), prefix=prefix)))
    else:
        print(f"note: redis not reachable at {REDIS}: no Redis rows")
    modes = ("none", "merge", "lock")
    for name, make in stores:
        store = make()
        try:
            tickets = {}
            managers = {}
            for mode in modes:
                managers[mode] = SessionManager(store, concurrency=mode, idle_timeout=LIFETIME)
                session = managers[mode].open(None)
                session.update(FIRST_VISIT)
                session["counter"] = 1
                ticket = managers[mode].save(session).ticket
                assert ticket is not None
                tickets[mode] = ticket
            timings: dict[str, list[float]] = {mode: [] for mode in modes}
            # Modes take turns, so a drift of the machine's speed hits all of them alike;
            # the first round warms connections and caches and is not counted.
            for repeat in range(1 + rounds):
                for mode in modes:
                    manager, ticket = managers[mode], tickets[mode]
                    started = time.perf_counter()
                    for _ in range(count):
                        session = manager.open(ticket)
                        session["counter"] = session["counter"] + 1
                        manager.save(session)
                    if repeat:
                        timings[mode].append((time.perf_counter() - started) / count * 1e6)
            base = statistics.median(timings["none"])
            cells = []
            for mode in modes:
                micros = statistics.median(timings[mode])
                cells.append(f"{mode} {micros:7.1f} µs ({micros / base:4.2f}x)")
            print(f"  {name:<8} " + "   ".join(cells))
        finally:
            store.close()
            if name == "redis":
                _delete_redis_keys(prefix + "*")
    if redis_ok:
        counting = _counting_redis()
        store = RedisStore(client=counting, prefix=prefix)
        try:
            cells = []
            for mode in ("none", "merge", "lock"):
                manager = SessionManager(store, concurrency=mode, idle_timeout=LIFETIME)
                session = manager.open(None)
                session.update(FIRST_VISIT)
                session["counter"] = 1
                ticket = manager.save(session).ticket
                assert ticket is not None
                before = type(counting).commands
                requests = 100
                for _ in range(requests):
                    session = manager.open(ticket)
                    session["counter"] = session["counter"] + 1
                    manager.save(session)
                cells.append(f"{mode} {(type(counting).commands - before) / requests:g}")
            print("  Redis round trips per request (open + save): " + ", ".join(cells))
        finally:
            store.close()
            counting.close()
            _delete_redis_keys(prefix + "*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests: under a minute")
    parser.add_argument("--requests", type=int, help="requests per worker (default 500)")
    parser.add_argument("--trials", type=int, default=1, help="trials per cell (median shown)")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="thread switch interval, s"
    )
    parser.add_argument("--no-peers", action="store_true", help="coatcheck rows only")
    parser.add_argument(
        "--only", action="append", help="only rows whose 'library variant store' contains this"
    )
    parser.add_argument("--skip-table", action="store_true", help="only the uncontended costs")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 100 if args.quick else 500
    # Uncontended timing: many short rounds, modes taking turns, beat the VM's drift.
    args.uncontended, args.rounds = (100, 9) if args.quick else (200, 25)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="coatcheck-race-"))
    try:
        if not args.skip_table:
            race_table(args, workdir)
        overhead(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        with suppress(Exception):
            _delete_redis_keys(f"dj-race-{workdir.name}*")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
