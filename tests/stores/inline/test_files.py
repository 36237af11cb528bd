"""AsyncFileStore on the event loop: which calls stay inline, and the bound when one cannot.

The bound (``stores/_files_backend.py``): an inline operation waits on no lock and calls no
fsync. ``load`` and ``unlock`` run inline, taking the key's guard with ``LOCK_NB``; every write
syncs, so it goes to a worker thread. Here the test holds the guard itself, through an open
file description of its own, which ``flock`` treats as it would another process: the locking
load then waits in the thread while another coroutine keeps being woken on time.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from coatcheck.stores import (
    LOCKED,
    AsyncFileStore,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    Touch,
    Unlock,
    Update,
)
from coatcheck.stores._files_format import GUARD_PREFIX

from .._support import HOUR, NOW, key
from ._loop import HandOffs, counting_hand_offs, ticking

LATE = 0.1  # the longest the loop may go without waking the ticker
HOLD = 0.2  # how long the test holds the guard


@pytest_asyncio.fixture
async def hand_offs() -> AsyncIterator[HandOffs]:
    async with counting_hand_offs() as executor:
        yield executor


@pytest_asyncio.fixture
async def store(tmp_path: Path, hand_offs: HandOffs) -> AsyncIterator[AsyncFileStore]:
    s = AsyncFileStore(tmp_path / "sessions")
    assert await s.create(Create(key(1), b"0", NOW, NOW + HOUR, NOW))
    yield s
    await s.aclose()


@contextmanager
def guard_held(store: AsyncFileStore, record_key: str) -> Iterator[int]:
    """The guard of ``record_key``, flocked through a descriptor of the test's own."""
    fd = os.open(Path(store.directory, GUARD_PREFIX + record_key[:2]), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the flock, if the test has not already


@pytest.mark.asyncio
async def test_loads_and_unlocks_stay_on_the_loop_and_writes_go_to_the_thread(
    store: AsyncFileStore, hand_offs: HandOffs
) -> None:
    before = hand_offs.count
    for _ in range(20):
        assert isinstance(await store.load(Load(key(1), NOW)), Record)
    record = await store.load(Load(key(1), NOW, LockRequest("t", 30.0)))
    assert isinstance(record, Record)
    await store.unlock(Unlock(key(1), "t"))
    assert await store.load(Load(key(9), NOW, LockRequest("t", 30.0))) is None
    assert hand_offs.count == before  # 23 operations, no hand-off
    assert await store.update(Update(key(1), b"1", NOW, NOW + HOUR, NOW, record.version)) == 2
    assert await store.touch(Touch(key(1), NOW, NOW + 2 * HOUR, NOW))
    assert await store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    assert await store.delete(Delete(key(2)))
    assert hand_offs.count - before == 4  # each write syncs: one hand-off each


@pytest.mark.asyncio
async def test_a_locking_load_waits_for_the_guard_in_the_thread(
    store: AsyncFileStore, hand_offs: HandOffs
) -> None:
    with guard_held(store, key(1)) as fd:
        async with ticking() as ticker:
            before = hand_offs.count
            # A plain load takes no guard: inline, at once.
            assert isinstance(await store.load(Load(key(1), NOW)), Record)
            assert hand_offs.count == before
            # Released by a callback of this loop: it runs only if the loop is not blocked.
            asyncio.get_running_loop().call_later(HOLD, fcntl.flock, fd, fcntl.LOCK_UN)
            started = time.monotonic()
            record = await store.load(Load(key(1), NOW, LockRequest("t", 30.0)))
            waited = time.monotonic() - started
        assert isinstance(record, Record) and record.payload == b"0"
        assert hand_offs.count - before == 1
        assert HOLD - 0.02 < waited < HOLD + 1.0
        assert ticker.longest < LATE, ticker.longest
        # The lock was taken: another token is refused (inline: the guard is free now).
        assert await store.load(Load(key(1), NOW, LockRequest("u", 30.0))) is LOCKED


@pytest.mark.asyncio
async def test_an_unlock_waits_for_the_guard_in_the_thread(
    store: AsyncFileStore, hand_offs: HandOffs
) -> None:
    assert isinstance(await store.load(Load(key(1), NOW, LockRequest("t", 30.0))), Record)
    with guard_held(store, key(1)) as fd:
        async with ticking() as ticker:
            before = hand_offs.count
            asyncio.get_running_loop().call_later(HOLD, fcntl.flock, fd, fcntl.LOCK_UN)
            await store.unlock(Unlock(key(1), "t"))
        assert hand_offs.count - before == 1
        assert ticker.longest < LATE, ticker.longest
    assert isinstance(await store.load(Load(key(1), NOW, LockRequest("u", 30.0))), Record)
