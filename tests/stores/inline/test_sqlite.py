"""AsyncSQLiteStore on the event loop: which calls stay inline, and the bound when one cannot.

The bound (``stores/_sqlite_backend.py``): an inline operation waits on no lock and calls no
fsync. Here another connection holds the write lock (``BEGIN IMMEDIATE``, what any writer of
the file holds while it writes): a write then goes to a worker thread after one failed inline
try, and waits there with the store's ``timeout`` while another coroutine keeps being woken on
time; a read does not wait at all (WAL). In the common case no call leaves the loop but every
100th write, which checkpoints in the thread, so the WAL stays bounded.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
import pytest_asyncio

from coatcheck.stores import (
    AsyncSQLiteStore,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    Touch,
    Unlock,
    Update,
)
from coatcheck.stores._sqlite_backend import SQLiteUnavailable

from .._support import HOUR, NOW, key
from ._loop import TICK, HandOffs, counting_hand_offs, ticking

# Time the loop may go without waking the ticker: far above a few inline statements, far below
# the store's timeout; the machine is shared, so not too tight either.
LATE = 0.1
TIMEOUT = 0.4


@pytest_asyncio.fixture
async def hand_offs() -> AsyncIterator[HandOffs]:
    async with counting_hand_offs() as executor:
        yield executor


@pytest_asyncio.fixture
async def store(tmp_path: Path, hand_offs: HandOffs) -> AsyncIterator[AsyncSQLiteStore]:
    s = AsyncSQLiteStore(tmp_path / "s.db", timeout=TIMEOUT)
    await s.create_tables()
    # The first operation finds no inline connection: it runs in the thread and opens one.
    assert await s.create(Create(key(1), b"0", NOW, NOW + HOUR, NOW))
    yield s
    await s.aclose()


def _update(n: int, payload: bytes, version: int | None = None) -> Update:
    return Update(key(n), payload, NOW, NOW + HOUR, NOW, version)


def _writer(store: AsyncSQLiteStore) -> sqlite3.Connection:
    """Another connection holding the database's write lock."""
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE coatcheck_sessions SET payload = ? WHERE key = ?", (b"other", key(1)))
    return other


@pytest.mark.asyncio
async def test_reads_and_writes_stay_on_the_loop(
    store: AsyncSQLiteStore, hand_offs: HandOffs
) -> None:
    before = hand_offs.count
    for n in range(1, 41):
        record = await store.load(Load(key(1), NOW))
        assert isinstance(record, Record) and record.payload == str(n - 1).encode()
        assert await store.update(_update(1, str(n).encode(), record.version)) == n + 1
    assert await store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    assert await store.load(Load(key(2), NOW, LockRequest("t", 30.0))) is not None
    await store.unlock(Unlock(key(2), "t"))
    assert await store.touch(Touch(key(2), NOW, NOW + 2 * HOUR, NOW))
    assert await store.delete(Delete(key(2)))
    assert hand_offs.count == before


@pytest.mark.asyncio
async def test_every_hundredth_write_goes_to_the_thread_and_the_wal_stays_bounded(
    store: AsyncSQLiteStore, hand_offs: HandOffs
) -> None:
    payload = os.urandom(3000)  # about a page per write
    before = hand_offs.count
    for _ in range(3000):
        assert await store.update(_update(1, payload)) is not None
    wal = os.path.getsize(store.path + "-wal")  # noqa: ASYNC240 - the measurement itself
    # Unchecked, 3000 writes of a page each would leave a WAL of 3000+ pages (12 MB and more);
    # checkpointed, it is reused from its start once past 1000 pages.
    assert wal < 2000 * 4120, wal
    # 1 write (the fixture's create) + 3000: the 100th, 200th, ... 3000th went to the thread.
    assert hand_offs.count - before == 30
    assert (await store.stats(NOW)).live == 1


@pytest.mark.asyncio
async def test_a_write_waits_for_the_lock_in_the_thread_not_on_the_loop(
    store: AsyncSQLiteStore, hand_offs: HandOffs
) -> None:
    other = _writer(store)
    try:
        async with ticking() as ticker:
            before = hand_offs.count
            # Released by a callback of this loop: it runs only if the loop is not blocked.
            asyncio.get_running_loop().call_later(TIMEOUT / 2, other.rollback)
            started = time.monotonic()
            assert await store.update(_update(1, b"mine")) == 2
            waited = time.monotonic() - started
        assert hand_offs.count - before == 1
        assert TIMEOUT / 2 - 0.02 < waited < TIMEOUT
        assert ticker.longest < LATE, ticker.longest
        assert ticker.ticks >= waited / TICK / 2
    finally:
        other.close()
    record = await store.load(Load(key(1), NOW))
    assert isinstance(record, Record) and record.payload == b"mine"


@pytest.mark.asyncio
async def test_a_write_locked_past_the_timeout_fails_in_the_thread(
    store: AsyncSQLiteStore, hand_offs: HandOffs
) -> None:
    with closing(_writer(store)) as other:
        async with ticking() as ticker:
            before = hand_offs.count
            started = time.monotonic()
            with pytest.raises(SQLiteUnavailable, match="locked"):
                await store.update(_update(1, b"mine"))
            waited = time.monotonic() - started
            # A read meanwhile: WAL readers never wait, so it stays on the loop, and sees the
            # last committed version, not the other connection's uncommitted write.
            record = await store.load(Load(key(1), NOW))
        assert isinstance(record, Record) and record.payload == b"0"
        assert hand_offs.count - before == 1
        assert TIMEOUT - 0.05 < waited < TIMEOUT + 1.0
        assert ticker.longest < LATE, ticker.longest
        other.rollback()
    assert await store.update(_update(1, b"after")) == 2  # inline again once it is free


@pytest.mark.asyncio
async def test_a_locking_load_and_an_unlock_under_the_write_lock(
    store: AsyncSQLiteStore, hand_offs: HandOffs
) -> None:
    with closing(_writer(store)) as other:
        loop = asyncio.get_running_loop()
        async with ticking() as ticker:
            loop.call_later(0.1, other.rollback)
            record = await store.load(Load(key(1), NOW, LockRequest("t", 30.0)))
            assert isinstance(record, Record)
            other.execute("BEGIN IMMEDIATE")
            loop.call_later(0.1, other.rollback)
            await store.unlock(Unlock(key(1), "t"))
        assert ticker.longest < LATE, ticker.longest
    assert hand_offs.count >= 2
    # Unlocked: another token takes the lock at once.
    assert isinstance(await store.load(Load(key(1), NOW, LockRequest("u", 30.0))), Record)


@pytest.mark.asyncio
async def test_inline_connections_never_wait_and_never_checkpoint(store: AsyncSQLiteStore) -> None:
    # What the bound rests on, read back from SQLite itself (the pool is private).
    await store.load(Load(key(1), NOW))
    inline = store._db._inline_idle
    assert inline
    for conn in inline:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no fsync per commit
