"""One async SQLite or file store shared by event loops in several threads, and used by one
loop after another: the inline connections and descriptors belong to no loop, so every
increment by load + compare-and-set lands exactly once. (Across ``fork()``, the inline pool is
abandoned in the child like the other: ``tests/stores/test_fork.py`` runs these stores in
forked children on fresh loops.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coatcheck.stores import (
    AsyncFileStore,
    AsyncSQLiteStore,
    AsyncStore,
    Create,
    Load,
    Record,
    Update,
)
from tests.support.threads import run_threads

from .._support import HOUR, NOW, key

LOOPS = 4
ROUNDS = {"sqlite": 100, "files": 15}  # the file store fsyncs every write


async def _increment(store: AsyncStore, n: int) -> int:
    """Add 1 to the counter ``n`` times; the races lost on the way."""
    done = lost = 0
    while done < n:
        record = await store.load(Load(key("counter"), NOW))
        assert isinstance(record, Record)
        update = Update(
            key("counter"), b"%d" % (int(record.payload) + 1), NOW, NOW + HOUR, NOW, record.version
        )
        if await store.update(update) is None:
            lost += 1
        else:
            done += 1
    return lost


def _store(kind: str, tmp_path: Path) -> AsyncStore:
    if kind == "sqlite":
        return AsyncSQLiteStore(tmp_path / "s.db")
    return AsyncFileStore(tmp_path / "sessions")


@pytest.mark.parametrize("kind", ["sqlite", "files"])
def test_loops_in_threads_sharing_one_store_lose_nothing(kind: str, tmp_path: Path) -> None:
    store = _store(kind, tmp_path)

    async def setup() -> None:
        if isinstance(store, AsyncSQLiteStore):
            await store.create_tables()
        assert await store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))
        await store.load(Load(key("counter"), NOW))  # this loop's inline connection is open

    asyncio.run(setup())
    rounds = ROUNDS[kind]
    run_threads(lambda: asyncio.run(_increment(store, rounds)), [()] * LOOPS)

    async def final() -> object:
        record = await store.load(Load(key("counter"), NOW))
        await store.aclose()
        return record

    record = asyncio.run(final())  # yet another loop
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"%d" % (LOOPS * rounds), LOOPS * rounds + 1)
