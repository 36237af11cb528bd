"""Code that runs in child processes (multiprocessing "spawn" imports it by name)."""

from __future__ import annotations

import multiprocessing
from typing import Any

from coatcheck.stores import Load, Record, Update, store_from_url

__all__ = ["cas_increments", "run_cas_processes"]


def cas_increments(url: str, key: str, n: int, now: float, start: Any, results: Any) -> None:
    """Add 1 to the integer payload under ``key`` ``n`` times by load + compare-and-set.

    Puts ``(successes, lost_races)`` on ``results``; waits on the ``start`` barrier first so
    every process hammers the store at the same time.
    """
    store = store_from_url(url)
    done = lost = 0
    start.wait()
    try:
        while done < n:
            record = store.load(Load(key, now))
            assert isinstance(record, Record)
            value = int(record.payload) + 1
            version = store.update(
                Update(key, str(value).encode(), now, now + 3600, now, record.version)
            )
            if version is None:
                lost += 1
            else:
                done += 1
    finally:
        store.close()
    results.put((done, lost))


def run_cas_processes(url: str, key: str, processes: int, n: int, now: float) -> list[int]:
    """Run ``cas_increments`` in ``processes`` real processes at once; their lost-race counts.

    Fails if a process crashes or any store error escapes one of them.
    """
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes, timeout=60)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=cas_increments, args=(url, key, n, now, start, results))
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
