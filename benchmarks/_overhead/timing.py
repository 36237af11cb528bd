"""Timing several things in turns, in either flavour.

The machines this runs on are shared and noisy, so the things compared in one row (the bare
app, the app behind the middleware, the store calls alone) are timed interleaved, one of each
per iteration: a burst of load from elsewhere then hits all of them alike.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
from collections.abc import Callable, Iterator, Sequence

from _flavours import Flavour

from coatcheck._sansio.ids import new_session_id, storage_key

__all__ = ["WARMUP", "Row", "fresh_keys", "time_turns"]

WARMUP = 200
# One line of the table: protocol, store, request, bare app µs, with middleware µs, store µs.
Row = tuple[str, str, str, float, float, float]


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic GC off while timing, as ``timeit`` does: ops timed interleaved would otherwise
    pay for collections another op's garbage set off (a heavy peer doubled coatcheck's median)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def time_turns(
    flavour: Flavour, ops: Sequence[Callable[[int], object]], n: int, block: int = 1
) -> list[float]:
    """Median µs of each op over ``n`` calls after a warm-up, the ops taking turns every
    ``block`` calls (1: call by call; see ``peers.PEER_BLOCK`` for why the peers use more)."""
    for i in range(WARMUP):
        for op in ops:
            await flavour.call(op, i)
    samples: list[list[int]] = [[] for _ in ops]
    with _no_gc():
        for first in range(WARMUP, WARMUP + n, block):
            for op, out in zip(ops, samples, strict=True):
                for i in range(first, min(first + block, WARMUP + n)):
                    out.append(await flavour.sample(op, i))
    return [statistics.median(s) / 1000 for s in samples]


def fresh_keys(n: int) -> list[str]:
    """Storage keys for the direct creates, made before timing (making them is core work)."""
    return [storage_key(new_session_id()) for _ in range(WARMUP + n)]
