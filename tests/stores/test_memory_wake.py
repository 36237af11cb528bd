"""The memory store wakes the waiter whose turn is next as soon as the lock is released."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from coatcheck.stores import AsyncMemoryStore, MemoryStore
from coatcheck.stores.base import LOCKED, Create, Load, LockRequest, Record, Sleep, Unlock

NOW = 1_700_000_000.0
KEY = "a" * 64


def _ask(token: str) -> LockRequest:
    return LockRequest(token, 30.0, NOW)


@pytest.mark.asyncio
async def test_a_release_wakes_the_next_waiter_on_its_event_loop() -> None:
    store = AsyncMemoryStore()
    assert await store.create(Create(KEY, b"x", NOW, NOW + 60, NOW))
    assert isinstance(await store.load(Load(KEY, NOW, _ask("a"))), Record)
    assert await store.load(Load(KEY, NOW, _ask("b"))) is LOCKED
    waiting = asyncio.ensure_future(store.wait_released(Sleep(5.0, KEY, "b")))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    started = time.monotonic()
    await store.unlock(Unlock(KEY, "a"))
    await asyncio.wait_for(waiting, 2.0)
    assert time.monotonic() - started < 0.5
    assert isinstance(await store.load(Load(KEY, NOW, _ask("b"))), Record)


def test_a_release_from_another_thread_wakes_a_waiting_thread() -> None:
    store = MemoryStore()
    assert store.create(Create(KEY, b"x", NOW, NOW + 60, NOW))
    assert isinstance(store.load(Load(KEY, NOW, _ask("a"))), Record)
    assert store.load(Load(KEY, NOW, _ask("b"))) is LOCKED
    woke: list[float] = []

    def waiter() -> None:
        store.wait_released(Sleep(5.0, KEY, "b"))
        woke.append(time.monotonic())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    released = time.monotonic()
    store.unlock(Unlock(KEY, "a"))
    thread.join(2.0)
    assert woke and woke[0] - released < 0.5
