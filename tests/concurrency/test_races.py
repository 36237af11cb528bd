"""No lost updates: real threads and real processes hammer one session on every store.

The deterministic interleavings (two requests, one saving after the other) live in
``tests/rules/_async/test_concurrency.py``; here the scheduler and the backends choose the
interleavings. Thread tests switch threads every microsecond (CPython's default is 5 ms) so that
a request is very likely to be interrupted between its load and its save. Process tests give
each worker process its own store built from a URL on the same records, as separate server
processes would have.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from coatcheck import (
    SessionConflict,
    SessionInterrupted,
    SessionLocked,
    SessionManager,
)
from coatcheck._sansio.ids import storage_key
from coatcheck.stores import Load, Record, Store

from ..support._sync.backends import BACKENDS, shared_url, sync_store_for
from ..support.threads import run_threads
from ._workers import Job, Outcome, distinct_writes, increments, init_worker, run_job

THREADS = 8
PROCESSES = 4
PER_WORKER = 25
# Long enough that a queue of waiting lock-mode requests never gives up on a slow disk.
LOCK_WAIT = 10.0

SHARED_BACKENDS = [param for param in BACKENDS if param.values[0] != "memory"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def store(backend: str, tmp_path: Path, unique: str) -> Iterator[Store]:
    with sync_store_for(backend, tmp_path, unique) as built:
        yield built


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, so races that exist are very likely to happen."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture(scope="module")
def start_line() -> Any:
    # A barrier can only reach pool workers at their creation (initargs), so one serves the
    # whole module; it is reset before each use in case an earlier test broke it.
    return multiprocessing.get_context("spawn").Barrier(PROCESSES)


@pytest.fixture(scope="module")
def pool(start_line: Any) -> Iterator[ProcessPoolExecutor]:
    # spawn, not fork: a forked child would inherit the parent's connections and locks.
    with ProcessPoolExecutor(
        PROCESSES,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(start_line,),
    ) as executor:
        yield executor


def new_session(store: Store, **data: Any) -> str:
    """Save a session holding ``data``; returns its ticket."""
    manager = SessionManager(store)
    session = manager.open(None)
    session.update(data)
    ticket = manager.save(session).ticket
    assert ticket is not None
    return ticket


def stored(store: Store, ticket: str) -> Record | None:
    """The raw record behind ``ticket``, read without any lock."""
    manager = SessionManager(store)
    record = store.load(Load(storage_key(ticket), manager.core.now()))
    assert record is None or isinstance(record, Record)
    return record


def read(store: Store, ticket: str) -> dict[str, Any]:
    session = SessionManager(store).open(ticket, read_only=True)
    assert not session.is_new, "the session is gone"
    return dict(session)


RunJobs = Callable[[str, str, dict[str, Any]], list[Outcome]]


@pytest.fixture
def in_processes(
    backend: str, tmp_path: Path, unique: str, pool: ProcessPoolExecutor, start_line: Any
) -> RunJobs:
    """``run(ticket, kind, settings)``: one :class:`Job` of ``kind`` in each worker process, all
    on the test's records through a URL of their own; returns their outcomes."""
    url = shared_url(backend, tmp_path, unique)

    def run(ticket: str, kind: str, settings: dict[str, Any]) -> list[Outcome]:
        jobs = [Job(url, ticket, kind, i, PER_WORKER, settings) for i in range(PROCESSES)]
        start_line.reset()  # every worker takes one job, so the barrier opens
        futures = [pool.submit(run_job, job) for job in jobs]
        return [future.result(timeout=120) for future in futures]

    return run


# -- lock: a counter is exact ----------------------------------------------------------------


@pytest.mark.usefixtures("fast_switching")
def test_lock_mode_counter_is_exact_with_threads(store: Store) -> None:
    ticket = new_session(store, n=0)
    manager = SessionManager(store, concurrency="lock", lock_wait=LOCK_WAIT)
    outcomes = run_threads(increments, [(manager, ticket, PER_WORKER)] * THREADS)
    total = THREADS * PER_WORKER
    assert sum(o.saves for o in outcomes) == total
    assert read(store, ticket)["n"] == total
    record = stored(store, ticket)
    assert record is not None and record.version == 1 + total  # one write per request


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_lock_mode_counter_is_exact_with_processes(store: Store, in_processes: RunJobs) -> None:
    ticket = new_session(store, n=0)
    outcomes = in_processes(ticket, "increments", {"concurrency": "lock", "lock_wait": LOCK_WAIT})
    total = PROCESSES * PER_WORKER
    assert sum(o.saves for o in outcomes) == total
    assert read(store, ticket)["n"] == total
    record = stored(store, ticket)
    assert record is not None and record.version == 1 + total


# -- merge: writers of distinct keys all survive ----------------------------------------------


def expected_keys(writers: int) -> dict[str, Any]:
    return {f"w{i}-{j}": j for i in range(writers) for j in range(PER_WORKER)}


@pytest.mark.usefixtures("fast_switching")
def test_merge_mode_keeps_every_distinct_key_with_threads(store: Store) -> None:
    ticket = new_session(store, n=0)
    manager = SessionManager(store, concurrency="merge")
    run_threads(distinct_writes, [(manager, ticket, i, PER_WORKER) for i in range(THREADS)])
    assert read(store, ticket) == {"n": 0, **expected_keys(THREADS)}
    record = stored(store, ticket)
    assert record is not None and record.version == 1 + THREADS * PER_WORKER


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_merge_mode_keeps_every_distinct_key_with_processes(
    store: Store, in_processes: RunJobs
) -> None:
    ticket = new_session(store, n=0)
    in_processes(ticket, "distinct", {"concurrency": "merge"})
    assert read(store, ticket) == {"n": 0, **expected_keys(PROCESSES)}


@pytest.mark.usefixtures("fast_switching")
def test_merge_mode_counts_exactly_when_conflicts_raise(store: Store) -> None:
    """The documented way to count in merge mode: ``raise`` on a conflict, replay the request."""
    ticket = new_session(store, n=0)
    manager = SessionManager(store, concurrency="merge", merge_conflict="raise")
    outcomes = run_threads(
        lambda: increments(manager, ticket, PER_WORKER, on_conflict="retry"), [()] * THREADS
    )
    total = THREADS * PER_WORKER
    assert read(store, ticket)["n"] == total
    assert sum(o.saves for o in outcomes) == total


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("mode", ["merge", "none"])
def test_last_writer_modes_may_lose_increments(
    store: Store, mode: str, record_property: Any
) -> None:
    """Documented behaviour, not a guarantee: concurrent increments of one key may be lost.

    The counter can never exceed the increments that were saved. ``merge`` may also give up
    on a request after a long run of lost compare-and-sets (``SessionConflict``); ``none``
    never does, since it never compares.
    """
    ticket = new_session(store, n=0)
    manager = SessionManager(store, concurrency=mode, merge_conflict="last-writer")
    outcomes = run_threads(
        lambda: increments(manager, ticket, PER_WORKER, on_conflict="count"), [()] * THREADS
    )
    total = THREADS * PER_WORKER
    saves = sum(o.saves for o in outcomes)
    gave_up = sum(o.gave_up for o in outcomes)
    assert saves + gave_up == total
    if mode == "none":
        assert gave_up == 0
    final = read(store, ticket)["n"]
    assert 1 <= final <= saves
    record_property("lost_increments", f"{saves - final}/{saves}")
    record_property("gave_up", f"{gave_up}/{total}")


# -- destroy during concurrent writes: the session stays dead ----------------------------------


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("mode", ["none", "merge", "lock"])
def test_destroy_during_concurrent_writes_stays_destroyed(store: Store, mode: str) -> None:
    ticket = new_session(store, n=0)
    manager = SessionManager(store, concurrency=mode, lock_wait=LOCK_WAIT)
    writers = 4
    saves_before_logout = 20
    saved = threading.Semaphore(0)
    destroyed = threading.Event()
    # Each writer ends on "interrupted" (its save lost to the logout) or "fresh" (it opened
    # after the logout); running out of requests means the logout never reached it.
    endings: list[str] = []
    late_opens: list[str] = []

    def writer() -> None:
        for _ in range(100_000):
            after_logout = destroyed.is_set()
            session = manager.open(ticket)
            if session.is_new:
                manager.save(session)  # unmodified: writes nothing
                endings.append("fresh")
                return
            if after_logout:
                late_opens.append(f"opened n={session['n']} after the logout")
            session["n"] = session["n"] + 1
            try:
                manager.save(session)
            except SessionInterrupted:
                endings.append("interrupted")
                return
            except SessionConflict:
                continue  # merge gave up under contention; that request's change was dropped
            saved.release()
        endings.append("ran out of requests")

    def logout() -> None:
        for _ in range(saves_before_logout):
            assert saved.acquire(timeout=60)
        session = manager.open(ticket)
        assert not session.is_new
        session.destroy()
        manager.save(session)
        destroyed.set()

    run_threads(lambda role: role(), [(writer,)] * writers + [(logout,)])
    assert stored(store, ticket) is None
    assert SessionManager(store).open(ticket).is_new
    assert late_opens == []
    assert set(endings) <= {"fresh", "interrupted"}
    assert len(endings) == writers


# -- read-only requests in lock mode ------------------------------------------------------------


@pytest.mark.usefixtures("fast_switching")
def test_read_only_requests_are_never_blocked_by_a_lock_and_never_write(store: Store) -> None:
    ticket = new_session(store, n=0)
    writers = SessionManager(store, concurrency="lock", lock_wait=LOCK_WAIT)
    # lock_wait=0: a reader that waited for the lock would fail at once; access_resolution=0:
    # a reader that was allowed to write would touch the record on every request.
    readers = SessionManager(store, concurrency="lock", lock_wait=0, access_resolution=0)
    before = stored(store, ticket)

    holder = writers.open(ticket)
    assert holder.lock_token is not None

    def read_many(count: int) -> None:
        for _ in range(count):
            session = readers.open(ticket, read_only=True)
            assert session["n"] == 0 and session.lock_token is None
            readers.save(session)

    run_threads(read_many, [(50,)] * 4)
    assert stored(store, ticket) == before  # not a byte, version or timestamp changed
    with pytest.raises(SessionLocked):
        readers.open(ticket)  # and the holder still holds its lock
    holder["n"] = 1
    writers.save(holder)

    # Now readers run while lock-mode writers keep the lock busy.
    done = threading.Event()
    seen: list[list[int]] = []

    def write() -> None:
        increments(writers, ticket, PER_WORKER)

    def watch() -> None:
        values: list[int] = []
        seen.append(values)
        while not done.is_set():
            session = readers.open(ticket, read_only=True)
            values.append(session["n"])
            readers.save(session)

    def writers_then_done() -> None:
        try:
            run_threads(write, [()] * 4)
        finally:
            done.set()

    run_threads(lambda role: role(), [(writers_then_done,), (watch,), (watch,)])
    total = 1 + 4 * PER_WORKER
    assert read(store, ticket)["n"] == total
    for values in seen:
        assert values and values == sorted(values)
        assert values[0] >= 1 and values[-1] <= total
    record = stored(store, ticket)
    assert record is not None and before is not None
    assert record.version == before.version + total  # the writers' saves, nothing else
