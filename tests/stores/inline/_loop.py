"""What the inline tests watch on the event loop: the thread hand-offs and the loop's liveness.

:class:`HandOffs` is installed as the running loop's default executor, the one
``asyncio.to_thread`` hands work to, and counts what it is given. :class:`Ticker` is another
coroutine on the same loop that wakes every few milliseconds and keeps the longest gap between
its wake-ups: a store call that blocked the loop shows up as a gap as long as the block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any

__all__ = ["TICK", "HandOffs", "Ticker", "counting_hand_offs", "ticking"]

TICK = 0.005  # the ticker's period, seconds


class HandOffs(ThreadPoolExecutor):
    """A thread pool that counts the calls submitted to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="inline-test")
        self.count = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.count += 1  # asyncio submits from the loop's thread only
        return super().submit(fn, *args, **kwargs)


@asynccontextmanager
async def counting_hand_offs() -> AsyncIterator[HandOffs]:
    """The running loop's work for threads goes to a :class:`HandOffs` for the block."""
    executor = HandOffs()
    asyncio.get_running_loop().set_default_executor(executor)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True)


class Ticker:
    """How late a coroutine that sleeps :data:`TICK` at a time was woken, at worst."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0
        self._last = time.monotonic()

    async def run(self) -> None:
        self._last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.longest = max(self.longest, now - self._last)
            self._last = now
            self.ticks += 1


@asynccontextmanager
async def ticking() -> AsyncIterator[Ticker]:
    """A :class:`Ticker` running on this loop for the block."""
    ticker = Ticker()
    task = asyncio.get_running_loop().create_task(ticker.run())
    await asyncio.sleep(0)  # let it start: its first gap is measured from there
    try:
        yield ticker
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
