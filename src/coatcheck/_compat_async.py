"""The asyncio primitives that ``_async`` code may use; ``_compat_sync`` is their blocking twin.

Code under ``_async`` imports only these names for anything that differs between the flavours,
so the generated ``_sync`` code gets the blocking versions by a single rename.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["run_blocking", "sleep"]

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (file or SQLite I/O) in a worker thread, never on the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def sleep(seconds: float) -> None:
    """Wait without blocking the event loop."""
    await asyncio.sleep(seconds)
