"""The async blocking stores (SQLite, files) against their sync twins.

The async flavour of these stores runs an operation on the event loop when it cannot wait for a
lock or an ``fsync`` and hands the rest to a worker thread (``stores/_async/_blocking.py``).
:data:`HAND_OFFS` is installed as the loop's default executor, so the hand-offs of a request can
be counted; :func:`time_in_turns` times a read-modify-write's store calls on a sync store and
on its async twin call by call in turns, on one event loop, and :func:`print_async_ratios` sets
the two against each other (target for the issue: within 1.5x). Taking turns matters most for
the file store: an ``fsync`` costs 0.15 to 10 ms here depending on what the other users of the
disk do, so flavours timed a few seconds apart (the table's WSGI and ASGI rows) can differ by
more than any cost of the flavour.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from _flavours import ASYNC

from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck.stores import Create, Load, Update

from .timing import Row, time_turns

__all__ = [
    "BLOCKING_STORES",
    "HAND_OFFS",
    "HAND_OFF_REQUESTS",
    "TARGET_ASYNC_RATIO",
    "HandOffs",
    "print_async_ratios",
    "time_in_turns",
]

TARGET_ASYNC_RATIO = 1.5  # async store calls / the sync ones, per read-modify-write
BLOCKING_STORES = ("sqlite", "files")
HAND_OFF_REQUESTS = 200  # requests whose hand-offs are counted, after the timing


class HandOffs(concurrent.futures.ThreadPoolExecutor):
    """A default executor for the event loop (``asyncio.to_thread``'s) that counts the work
    handed to it."""

    count = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.count += 1  # asyncio submits from the loop's thread only
        return super().submit(fn, *args, **kwargs)


HAND_OFFS = HandOffs()


async def time_in_turns(sync_store: Any, async_store: Any, n: int) -> tuple[float, float]:
    """Median µs of a read-modify-write's store calls (a load, then an update of its version)
    on ``sync_store`` and on ``async_store``, taking turns call by call; each on a record of
    its own."""
    now = time.time()
    payload = b'{"counter":1}'
    sync_key, async_key = (storage_key(new_session_id()) for _ in range(2))
    sync_store.create(Create(sync_key, payload, now, now + 1800, now))
    await async_store.create(Create(async_key, payload, now, now + 1800, now))

    async def sync_rmw(i: int) -> None:
        now = time.time()
        record = sync_store.load(Load(sync_key, now))
        sync_store.update(
            Update(sync_key, payload, now, now + 1800, now, None, None, record.handle)
        )

    async def async_rmw(i: int) -> None:
        now = time.time()
        record = await async_store.load(Load(async_key, now))
        update = Update(async_key, payload, now, now + 1800, now, None, None, record.handle)
        await async_store.update(update)

    t_sync, t_async = await time_turns(ASYNC, [sync_rmw, async_rmw], n)
    return t_sync, t_async


def print_async_ratios(
    rows: list[Row], in_turns: dict[str, tuple[float, float]], where: str
) -> None:
    """Each async blocking store's read-modify-write against its sync twin's: the store calls
    timed in turns (the target's figure), the table's store calls, and what the middleware adds
    in all."""
    figures = {
        (proto, name): (t_mw - t_bare, t_store)
        for proto, name, scenario, t_bare, t_mw, t_store in rows
        if scenario == "read-modify-write"
    }
    print(f"async / sync read-modify-write, µs (target: <= {TARGET_ASYNC_RATIO}x), in {where}:")
    for name in BLOCKING_STORES:
        turns_sync, turns_async = in_turns[name]
        ratio = turns_async / turns_sync
        verdict = "meets" if ratio <= TARGET_ASYNC_RATIO else "MISSES"
        sync_added, sync_store = figures["WSGI", name]
        async_added, async_store = figures["ASGI", name]
        print(
            f"  {name:6} in turns {turns_async:7.1f} / {turns_sync:7.1f} = {ratio:4.2f}x"
            f" ({verdict}); table: store {async_store / sync_store:4.2f}x,"
            f" added {async_added / sync_added:4.2f}x"
        )
