"""Sync and async behind one harness: a benchmark is written once, as coroutines.

A harness awaits ``flavour.call(fn, *args)`` for an untimed call into a store, driver or app,
``flavour.timed(fn, xs)`` for a timed loop, ``flavour.sample(fn, x)`` for one timed call and
``flavour.close(thing)`` to release something. The async flavour awaits what the call
returns; the sync flavour's coroutines only call, so they never suspend and :meth:`Sync.run`
steps the harness to its end without an event loop. The clock is read inside ``timed`` and
``sample``, around plain calls (sync) or awaits (async), so neither pays for the harness's
coroutines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

__all__ = ["ASYNC", "FLAVOURS", "SYNC", "Async", "Flavour", "Sync"]

T = TypeVar("T")
perf_ns = time.perf_counter_ns
OPS = ("load", "create", "update", "touch")


class Sync:
    """Plain calls; ``close()``; run without an event loop."""

    name = "sync"
    prefix = ""  # coatcheck's class names: MemoryStore

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    async def timed(self, fn: Callable[[Any], Any], xs: Iterable[Any]) -> int:
        """Nanoseconds for ``fn(x)`` over ``xs``."""
        t0 = perf_ns()
        for x in xs:
            fn(x)
        return perf_ns() - t0

    async def sample(self, fn: Callable[[Any], Any], x: Any) -> int:
        """Nanoseconds for one ``fn(x)``."""
        t0 = perf_ns()
        fn(x)
        return perf_ns() - t0

    def chain(self, first: Callable[[Any], Any], then: Callable[[Any, Any], Any]) -> Any:
        """One call of two steps: ``then(x, first(x))``."""
        return lambda x: then(x, first(x))

    async def close(self, thing: Any) -> None:
        thing.close()

    def blocking(self, floor: T) -> T:
        """A blocking raw floor, as the blocking stores of this flavour run their work."""
        return floor

    inline = blocking  # an in-process floor, as the in-process store runs

    def run(self, harness: Coroutine[Any, Any, T]) -> T:
        try:
            harness.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        harness.close()
        raise RuntimeError("the sync flavour's harness suspended: something awaited I/O")


class Async:
    """Awaited calls; ``aclose()``; run on a fresh event loop."""

    name = "async"
    prefix = "Async"  # AsyncMemoryStore

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await fn(*args)

    async def timed(self, fn: Callable[[Any], Any], xs: Iterable[Any]) -> int:
        t0 = perf_ns()
        for x in xs:
            await fn(x)
        return perf_ns() - t0

    async def sample(self, fn: Callable[[Any], Any], x: Any) -> int:
        t0 = perf_ns()
        await fn(x)
        return perf_ns() - t0

    def chain(self, first: Callable[[Any], Any], then: Callable[[Any, Any], Any]) -> Any:
        async def both(x: Any) -> Any:
            return await then(x, await first(x))

        return both

    async def close(self, thing: Any) -> None:
        await thing.aclose()

    def blocking(self, floor: Any) -> Any:
        """Each operation through ``asyncio.to_thread``, as the async blocking stores do."""
        return _Wrapped(floor, _in_thread)

    def inline(self, floor: Any) -> Any:
        """Each operation as a coroutine that calls the floor's, as the async memory store is."""
        return _Wrapped(floor, _as_coroutine)

    def run(self, harness: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(harness)


def _in_thread(fn: Callable[[Any], T]) -> Callable[[Any], Coroutine[Any, Any, T]]:
    return lambda x: asyncio.to_thread(fn, x)


def _as_coroutine(fn: Callable[[Any], T]) -> Callable[[Any], Coroutine[Any, Any, T]]:
    async def op(x: Any) -> T:
        return fn(x)

    return op


class _Wrapped:
    """A sync raw floor's operations, each wrapped for the async flavour."""

    def __init__(self, floor: Any, wrap: Callable[[Callable[[Any], Any]], Any]) -> None:
        self.floor = floor
        self.key = floor.key
        for op in OPS:
            setattr(self, op, wrap(getattr(floor, op)))

    async def aclose(self) -> None:
        self.floor.close()


Flavour = Sync | Async
SYNC, ASYNC = Sync(), Async()
FLAVOURS: dict[str, Flavour] = {"sync": SYNC, "async": ASYNC}
