"""Counters incremented by load + compare-and-set from many threads or processes at once.

The process half runs in child processes: multiprocessing "spawn" imports this module by name.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from coatcheck.stores import (
    LOCKED,
    Create,
    Load,
    LockRequest,
    Record,
    Store,
    Update,
    store_from_url,
)
from tests.support.threads import run_threads

from ._support import HOUR, NOW, key

__all__ = [
    "COUNTER",
    "cas_increments",
    "counter_in_processes",
    "counter_in_threads",
    "increment",
    "lock_race",
    "run_cas_processes",
]

#: The key of the counter record the ``counter_in_*`` helpers create.
COUNTER = key("counter")


def increment(store: Store, record_key: str, n: int, now: float) -> int:
    """Add 1 to the integer payload under ``record_key`` ``n`` times by load + compare-and-set.

    Returns how many races it lost on the way (updates refused for a stale version).
    """
    done = lost = 0
    while done < n:
        record = store.load(Load(record_key, now))
        assert isinstance(record, Record)
        value = int(record.payload) + 1
        version = store.update(
            Update(record_key, str(value).encode(), now, now + 3600, now, record.version)
        )
        if version is None:
            lost += 1
        else:
            done += 1
    return lost


def counter_in_threads(store: Store, threads: int, n: int) -> Record:
    """Create :data:`COUNTER` at 0, let ``threads`` threads sharing ``store`` each
    :func:`increment` it ``n`` times at once, and return the record it ends as."""
    assert store.create(Create(COUNTER, b"0", NOW, NOW + HOUR, NOW))
    run_threads(increment, [(store, COUNTER, n, NOW)] * threads)
    record = store.load(Load(COUNTER, NOW))
    assert isinstance(record, Record)
    return record


def counter_in_processes(store: Store, url: str, processes: int, n: int) -> Record:
    """Create :data:`COUNTER` at 0 in ``store``, let ``processes`` processes, each with a store
    of its own built from ``url``, increment it ``n`` times; the record it ends as."""
    assert store.create(Create(COUNTER, b"0", NOW, NOW + HOUR, NOW))
    run_cas_processes(url, COUNTER, processes=processes, n=n, now=NOW)
    record = store.load(Load(COUNTER, NOW))
    assert isinstance(record, Record)
    return record


def lock_race(store: Store, threads: int) -> tuple[int, int]:
    """``threads`` threads ask at once for the lock on a record of ``store``, each with a token
    of its own; how many got the record, and how many were told it is ``LOCKED``."""
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))

    def take(n: int) -> object:
        return store.load(Load(key(1), NOW, LockRequest(f"token-{n}", 30.0)))

    results = run_threads(take, [(n,) for n in range(threads)])
    return sum(isinstance(r, Record) for r in results), results.count(LOCKED)


def cas_increments(url: str, record_key: str, n: int, now: float, start: Any, results: Any) -> None:
    """:func:`increment` on a store of its own built from ``url``, in a child process.

    Puts ``(successes, lost_races)`` on ``results``; waits on the ``start`` barrier first so
    every process hammers the store at the same time.
    """
    store = store_from_url(url)
    start.wait()
    try:
        lost = increment(store, record_key, n, now)
    finally:
        store.close()
    results.put((n, lost))


def run_cas_processes(url: str, record_key: str, processes: int, n: int, now: float) -> list[int]:
    """Run ``cas_increments`` in ``processes`` real processes at once; their lost-race counts.

    Fails if a process crashes or any store error escapes one of them.
    """
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes, timeout=60)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=cas_increments, args=(url, record_key, n, now, start, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    # Joining first is safe: each worker queues one small tuple, far below the pipe buffer.
    try:
        for worker in workers:
            worker.join(timeout=300)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert [w.exitcode for w in workers] == [0] * processes
    outcomes = [results.get(timeout=10) for _ in workers]
    assert [done for done, _ in outcomes] == [n] * processes
    return [lost for _, lost in outcomes]
