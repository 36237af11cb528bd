"""The few primitives that differ between the asyncio and the blocking flavour, side by side.

Code under an ``_async`` folder calls the ``async_*`` names; ``scripts/unasync.py`` turns each
into its ``sync_*`` partner when it generates the ``_sync`` twin (its rule
``async_<name>`` -> ``sync_<name>``). Everything else the two flavours share is written once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["async_run_blocking", "async_sleep", "sync_run_blocking", "sync_sleep"]

P = ParamSpec("P")
T = TypeVar("T")


async def async_run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (file or SQLite I/O) in a worker thread, never on the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def sync_run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` directly: sync code may block."""
    return fn(*args, **kwargs)


async def async_sleep(seconds: float) -> None:
    """Wait without blocking the event loop."""
    await asyncio.sleep(seconds)


def sync_sleep(seconds: float) -> None:
    """Block for ``seconds``."""
    time.sleep(seconds)
