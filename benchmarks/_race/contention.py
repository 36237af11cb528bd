"""The lock contention scenario: N processes x M requests on one session, each holding the lock.

Every request opens the session in ``lock`` mode, holds it for ``hold`` seconds, increments a
counter and saves. What a fair lock must show: no ``SessionLocked`` while the queued hold time
(N x hold) stays under ``lock_wait``, and every increment kept. Reported per store: p50/p99 of
the wait for the lock (the open), the ``SessionLocked`` count and the increments kept.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

from .clients import coatcheck_place
from .common import LIFETIME

__all__ = ["contention"]


def _worker(url: str, ticket: str, requests: int, hold: float, wait: float, out: Any) -> None:
    from coatcheck import SessionManager
    from coatcheck.errors import SessionLocked
    from coatcheck.stores import store_from_url

    store = store_from_url(url)
    manager = SessionManager(store, concurrency="lock", lock_wait=wait, idle_timeout=LIFETIME)
    waits: list[float] = []
    locked = 0
    try:
        for _ in range(requests):
            started = time.monotonic()
            try:
                session = manager.open(ticket)
            except SessionLocked:
                locked += 1
                continue
            waits.append(time.monotonic() - started)
            time.sleep(hold)
            session["counter"] = session["counter"] + 1
            manager.save(session)
    finally:
        store.close()
    out.put((waits, locked))


def contention(
    stores: list[str], workdir: Path, clients: int, requests: int, hold: float, wait: float
) -> None:
    """Print one line per store (see the module docstring)."""
    from coatcheck import SessionManager
    from coatcheck.stores import store_from_url

    print(
        f"lock contention: {clients} processes x {requests} requests, hold {hold * 1000:g} ms,"
        f" lock_wait {wait:g} s (queued hold per round {clients * hold:g} s)"
    )
    context = multiprocessing.get_context("spawn")
    for name in stores:
        with coatcheck_place(name, workdir) as url:
            store = store_from_url(url)
            manager = SessionManager(store, idle_timeout=LIFETIME)
            session = manager.open(None)
            session["counter"] = 0
            ticket = manager.save(session).ticket
            assert ticket is not None
            out = context.Queue()
            procs = [
                context.Process(target=_worker, args=(url, ticket, requests, hold, wait, out))
                for _ in range(clients)
            ]
            for proc in procs:
                proc.start()
            results = [out.get(timeout=600) for _ in procs]
            for proc in procs:
                proc.join()
            waits = sorted(w for ws, _ in results for w in ws)
            locked = sum(n for _, n in results)
            kept = manager.open(ticket)["counter"]
            store.close()
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else float("nan")
        p50 = statistics.median(waits) if waits else float("nan")
        order = "longest first" if getattr(store, "orders_waiters", False) else "polling"
        print(
            f"  {name:10} ({order}): SessionLocked {locked}/{clients * requests},"
            f" wait p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms,"
            f" increments kept {kept}/{clients * requests - locked}"
        )
