"""The clients a race drives: an application on a store, called in-process by its workers.

:class:`WSGIClient` and :class:`ASGIClient` call a WSGI or ASGI app with a hand-built environ
or scope (``/`` increments the counter, ``/peek`` reads it); :class:`CoatcheckClient` drives
coatcheck's ``SessionManager`` directly. A :class:`Spec` names a module-level factory and its
options, so a worker process can build the same client.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .common import FIRST_VISIT, LIFETIME, MYSQL_URL, PG_URL, SERVERS, delete_redis_keys

__all__ = [
    "ASGIClient",
    "Client",
    "CoatcheckClient",
    "Spec",
    "Tally",
    "WSGIClient",
    "coatcheck_client",
    "coatcheck_place",
    "cookie_from",
    "first_visit",
    "increments",
]


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


def cookie_from(headers: list[tuple[str, str]], name: str) -> str:
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
        return cookie_from(headers, self.cookie_name)

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
        return cookie_from(headers, "session")

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


# -- coatcheck --------------------------------------------------------------------------------


def first_visit(manager: Any) -> str:
    """Create, through a ``SessionManager``, the session every race starts from; its ticket."""
    session = manager.open(None)
    session.update(FIRST_VISIT)
    session["counter"] = 1
    ticket: str | None = manager.save(session).ticket
    assert ticket is not None
    return ticket


def increments(manager: Any, ticket: str, count: int) -> None:
    """``count`` read-modify-write requests on the session, one after another."""
    for _ in range(count):
        session = manager.open(ticket)
        session["counter"] = session["counter"] + 1
        manager.save(session)


class CoatcheckClient:
    """coatcheck's SessionManager on one store; ``kind`` is ``counter`` or ``keys``."""

    def __init__(
        self,
        url: str,
        mode: str,
        kind: str = "counter",
        policy: str = "last-writer",
        retry: bool = False,
        incr: bool = False,
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
        self.incr = incr  # session.incr("counter"), an operation that merges

    def first(self) -> str:
        return first_visit(self.manager)

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
                    elif self.incr:
                        session.incr("counter")
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
                delete_redis_keys(prefix + "*")
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
