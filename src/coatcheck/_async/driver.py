"""Runs a session flow (coatcheck.flow) against an asyncio store.

This and its generated sync twin are the only code that differs between the flavours: they send
each operation the flow yields to the store and send the result back. A failing store becomes a
StoreError or StoreUnavailable naming the store, thrown into the flow so it can clean up.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from .._flavours import async_sleep
from .._sansio.flow import Op
from ..errors import CoatcheckError, StoreError, StoreUnavailable
from ..stores.base import AsyncStore

__all__ = ["run_async", "store_failure"]

T = TypeVar("T")


def store_failure(store: AsyncStore, exc: Exception) -> CoatcheckError:
    """The coatcheck error that stands for ``exc`` raised by ``store``."""
    if isinstance(exc, CoatcheckError):
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (*store.unavailable_errors, OSError, TimeoutError)):
        return StoreUnavailable(store.name, detail)
    return StoreError(store.name, detail)


async def run_async(flow: Generator[Op, Any, T], store: AsyncStore) -> T:
    """Drive ``flow`` to completion against ``store`` and return its result."""
    send = flow.send
    try:
        method, args = send(None)
        while True:
            if method == "sleep":
                # The one operation that is not the store's: waiting on contention.
                await async_sleep(*args)
                method, args = send(None)
                continue
            try:
                result = await getattr(store, method)(*args)
            except Exception as exc:
                error = store_failure(store, exc)
                if error is not exc:
                    error.__cause__ = exc
                method, args = flow.throw(error)
                continue
            method, args = send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value
