"""MySQLStore under contention: threads and processes on one session."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck.stores import store_from_url
from coatcheck.stores._sync.mysql import MySQLStore

from .._workers import counter_in_processes, counter_in_threads, lock_race

pytestmark = pytest.mark.server("mysql")


def test_threads_racing_for_the_lock_let_exactly_one_in(store: MySQLStore) -> None:
    assert lock_race(store, threads=8) == (1, 7)  # one holder; everyone else is told LOCKED


def test_eight_threads_incrementing_one_session_lose_nothing(url: str, raw: Any) -> None:
    # Fewer connections than threads, so the pool's waiting is exercised too.
    store = MySQLStore.from_url(f"{url}&pool_size=4")
    store.create_tables()
    record = counter_in_threads(store, threads=8, n=50)
    store.close()
    assert (record.payload, record.version) == (b"400", 401)


def test_four_processes_incrementing_one_session_lose_nothing(url: str, raw: Any) -> None:
    shared = f"{url}&pool_size=2"
    store = store_from_url(shared)
    assert isinstance(store, MySQLStore)
    store.create_tables()
    record = counter_in_processes(store, shared, processes=4, n=100)
    store.close()
    assert (record.payload, record.version) == (b"400", 401)
