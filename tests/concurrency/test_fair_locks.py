"""Lock waiters across managers (as across processes): none starves while the queued work stays
under ``lock_wait`` on a store that orders waiters, and no store loses an increment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from coatcheck import SessionLocked, SessionManager
from coatcheck.stores import Store

from ..support._sync.backends import BACKENDS, sync_store_for
from ..support.threads import run_threads

WORKERS = 8
REQUESTS = 6
HOLD = 0.02  # queued hold per round: 0.16 s, well under LOCK_WAIT
LOCK_WAIT = 1.5


def _worker(store: Store, ticket: str) -> int:
    # A manager of its own: its in-process queue does not order it against the others, the
    # store does (or not).
    manager = SessionManager(store, concurrency="lock", lock_wait=LOCK_WAIT)
    locked = 0
    for _ in range(REQUESTS):
        try:
            session = manager.open(ticket)
        except SessionLocked:
            locked += 1
            continue
        time.sleep(HOLD)
        session["n"] = session["n"] + 1
        manager.save(session)
    return locked


@pytest.mark.parametrize("backend", BACKENDS)
def test_lock_waiters_across_managers(backend: str, tmp_path: Path) -> None:
    with sync_store_for(backend, tmp_path) as store:
        manager = SessionManager(store)
        session = manager.open(None)
        session["n"] = 0
        ticket = manager.save(session).ticket
        assert ticket is not None
        locked = sum(run_threads(_worker, [(store, ticket)] * WORKERS))
        kept = manager.open(ticket)["n"]
        assert kept == WORKERS * REQUESTS - locked  # every request that got the lock counted
        if getattr(store, "orders_waiters", False):
            assert locked == 0
