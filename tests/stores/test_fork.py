"""Every store across ``fork()`` and across event loops: a process only ever sees its own data.

A store made and used before a fork (gunicorn ``--preload``, uWSGI without lazy-apps, the
README's ``create_tables()`` at import time) is used again in the parent and in several
children at once. Each process creates, reads and rewrites records of its own and checks every
answer; a connection shared across processes shows up as wrong answers (one process reading the
other's reply), errors, or a child that hangs, which the deadline turns into a failure. The async
flavour runs each process's work in a fresh ``asyncio.run``, so it also crosses event loops.
``pytest -s`` prints each store's figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from coatcheck.stores import (
    AsyncStore,
    Create,
    Load,
    Record,
    Store,
    Update,
    async_store_from_url,
    store_from_url,
)
from tests.support.servers import require_server

from ._support import key, unique

CHILDREN = 4
# Round trips per process (each is four operations); the file store fsyncs every write.
ROUNDS = {"files": 100, "sqlite": 250}
DEFAULT_ROUNDS = 400
# However slow the machine, no store needs this long: past it a child counts as hung.
DEADLINE = 30.0
TTL = 120.0  # Redis and memcached drop the records by themselves

STORES = [
    "memory",
    "sqlite",
    "files",
    pytest.param("postgresql", marks=pytest.mark.server("postgresql")),
    pytest.param("mysql", marks=pytest.mark.server("mysql")),
    pytest.param("redis", marks=pytest.mark.server("redis")),
    pytest.param("memcached", marks=pytest.mark.server("memcached")),
]
# The memory store is one process's own: there is nothing to share across a fork.
ASYNC_STORES = [name for name in STORES if name != "memory"]


class Tally(NamedTuple):
    """What one process saw: operations, answers that were not its own data, exceptions."""

    ops: int = 0
    wrong: int = 0
    errors: int = 0
    first_error: str = ""

    def __add__(self, other: object) -> Tally:
        assert isinstance(other, Tally)
        return Tally(
            self.ops + other.ops,
            self.wrong + other.wrong,
            self.errors + other.errors,
            self.first_error or other.first_error,
        )


def _url(name: str, tmp_path: Path) -> str:
    if name in ("memory", "sqlite", "files"):
        return {
            "memory": "memory://",
            "sqlite": f"sqlite:///{tmp_path}/sessions.db",
            "files": f"file://{tmp_path}/sessions",
        }[name]
    host, port = require_server(name)
    table, prefix = unique("cc_fork_"), unique("cc-fork-") + ":"
    return {
        "postgresql": f"postgresql://postgres@{host}:{port}/test?table={table}",
        "mysql": f"mysql://root@{host}:{port}/test?table={table}",
        "redis": f"redis://{host}:{port}/0?prefix={prefix}",
        "memcached": f"memcached://{host}:{port}?prefix={prefix}",
    }[name]


def _payload(tag: str, i: int, step: int) -> bytes:
    return f"{tag}:{i}:{step}".encode() * 8


class _Checks:
    """One round trip's operations and what each must answer, flavour-free."""

    def __init__(self, tag: str, i: int) -> None:
        now = time.time()
        self.key = key(f"{tag}-{i}")
        self.first, self.second = _payload(tag, i, 0), _payload(tag, i, 1)
        self.create = Create(self.key, self.first, now, now + TTL, now)
        self.load = Load(self.key, now)
        self._now = now

    def update(self, record: object) -> Update | None:
        if not (isinstance(record, Record) and record.payload == self.first):
            return None
        now = self._now
        return Update(
            self.key, self.second, now, now + TTL, now, record.version, None, record.handle
        )

    def final(self, version: object, record: object) -> bool:
        return (
            version == 2
            and isinstance(record, Record)
            and record.payload == self.second
            and record.version == 2
        )


def round_trips(store: Store, tag: str, rounds: int) -> Tally:
    """Create, load, update and load again ``rounds`` records of ``tag``'s own; check each."""
    tally = Tally()
    for i in range(rounds):
        checks = _Checks(tag, i)
        try:
            created = store.create(checks.create)
            update = checks.update(store.load(checks.load))
            version = None if update is None else store.update(update)
            ok = created and checks.final(version, store.load(checks.load))
            tally += Tally(4, 0 if ok else 1)
        except Exception as exc:
            tally += Tally(4, 0, 1, f"{type(exc).__name__}: {exc}")
    return tally


async def async_round_trips(store: AsyncStore, tag: str, rounds: int, tasks: int = 2) -> Tally:
    """:func:`round_trips` on an async store, by ``tasks`` concurrent tasks."""

    async def one(part: int) -> Tally:
        tally = Tally()
        for i in range(part, rounds, tasks):
            checks = _Checks(tag, i)
            try:
                created = await store.create(checks.create)
                update = checks.update(await store.load(checks.load))
                version = None if update is None else await store.update(update)
                ok = created and checks.final(version, await store.load(checks.load))
                tally += Tally(4, 0 if ok else 1)
            except Exception as exc:
                tally += Tally(4, 0, 1, f"{type(exc).__name__}: {exc}")
        return tally

    parts = await asyncio.gather(*(one(part) for part in range(tasks)))
    return sum(parts, Tally())


def forked(work: Callable[[str], Tally]) -> tuple[Tally, int]:
    """Run ``work(tag)`` in :data:`CHILDREN` forked children and in this process at once.

    Returns the sum of every process's tally and the number of children that did not report
    within :data:`DEADLINE` (killed).
    """
    children: dict[int, int] = {}  # read end of the pipe -> pid
    for n in range(CHILDREN):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            status = 1
            try:
                os.close(read_end)
                tally = work(f"child{n}-{os.getpid()}")
                os.write(write_end, json.dumps(tally).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        children[read_end] = pid
    # The parent works in a thread, so a parent stuck on a shared connection fails the test
    # at the deadline instead of hanging it.
    mine: list[Tally] = []
    parent = threading.Thread(target=lambda: mine.append(work("parent")), daemon=True)
    parent.start()
    hung = 0
    deadline = time.monotonic() + DEADLINE
    total = Tally()
    reports = {fd: b"" for fd in children}
    while reports:
        ready, _, _ = select.select(list(reports), [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                reports[fd] += chunk
                continue
            text = reports.pop(fd)
            os.close(fd)
            total += Tally(*json.loads(text)) if text else Tally(0, 0, 1, "child died")
    for fd in reports:  # past the deadline
        hung += 1
        os.kill(children[fd], signal.SIGKILL)
        os.close(fd)
    for pid in children.values():
        os.waitpid(pid, 0)
    parent.join(max(0.0, deadline - time.monotonic()))
    if not mine:
        return total, hung + 1
    return total + mine[0], hung


def _report(name: str, flavour: str, tally: Tally, hung: int) -> None:
    print(  # the figures, for pytest -s
        f"\nfork {flavour} {name}: ops={tally.ops} wrong={tally.wrong} errors={tally.errors} "
        f"hung={hung} {tally.first_error[:200]}"
    )


@pytest.fixture
def sync_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = store_from_url(_url(request.param, tmp_path))
    create: Callable[[], object] | None = getattr(store, "create_tables", None)
    if create is not None:
        create()
    yield store
    drop: Callable[[], object] | None = getattr(store, "drop_tables", None)
    if drop is not None:
        drop()
    store.close()


@pytest.fixture
def async_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AsyncStore]:
    # Made and prepared in an event loop of its own, as an app does at import time.
    store = async_store_from_url(_url(request.param, tmp_path))
    create: Callable[[], Awaitable[object]] | None = getattr(store, "create_tables", None)
    if create is not None:
        asyncio.run(create())
    yield store

    async def drop_and_close() -> None:
        drop: Callable[[], Awaitable[object]] | None = getattr(store, "drop_tables", None)
        if drop is not None:
            await drop()
        await store.aclose()

    asyncio.run(drop_and_close())


def _name(request: pytest.FixtureRequest, fixture: str) -> str:
    return str(request.node.callspec.params[fixture])


@pytest.mark.parametrize("sync_store", STORES, indirect=True)
def test_fork_sync(sync_store: Store, request: pytest.FixtureRequest) -> None:
    """Used before the fork, then by the parent and four children at once: no crossed answers."""
    name = _name(request, "sync_store")
    rounds = ROUNDS.get(name, DEFAULT_ROUNDS)
    assert round_trips(sync_store, "before", 3) == Tally(12)
    tally, hung = forked(lambda tag: round_trips(sync_store, tag, rounds))
    _report(name, "sync", tally, hung)
    assert (tally.wrong, tally.errors, hung) == (0, 0, 0), tally.first_error
    assert tally.ops == 4 * rounds * (CHILDREN + 1)


@pytest.mark.parametrize("async_store", ASYNC_STORES, indirect=True)
def test_fork_async(async_store: AsyncStore, request: pytest.FixtureRequest) -> None:
    """As :func:`test_fork_sync`, each process in an event loop of its own."""
    name = _name(request, "async_store")
    rounds = ROUNDS.get(name, DEFAULT_ROUNDS)
    assert asyncio.run(async_round_trips(async_store, "before", 3)) == Tally(12)

    def work(tag: str) -> Tally:
        return asyncio.run(asyncio.wait_for(async_round_trips(async_store, tag, rounds), DEADLINE))

    tally, hung = forked(work)
    _report(name, "async", tally, hung)
    assert (tally.wrong, tally.errors, hung) == (0, 0, 0), tally.first_error
    assert tally.ops == 4 * rounds * (CHILDREN + 1)


@pytest.mark.parametrize("async_store", ASYNC_STORES, indirect=True)
def test_second_event_loop(async_store: AsyncStore) -> None:
    """A store used in one ``asyncio.run`` works in the next, and in the one after."""
    for run in range(3):
        tally = asyncio.run(
            asyncio.wait_for(async_round_trips(async_store, f"loop{run}", 20, tasks=3), 10.0)
        )
        assert tally == Tally(80), tally.first_error
