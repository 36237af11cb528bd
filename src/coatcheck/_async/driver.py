"""Runs a session flow (:mod:`coatcheck._sansio.core`) against an asyncio store.

This and its generated sync twin are the only code that differs between the flavours: they hand
each operation the flow yields to the store method of the same name and send the result back.
A failing store becomes a StoreError or StoreUnavailable naming the store, thrown into the flow
so it can clean up.
"""

from __future__ import annotations

from typing import TypeVar

from .._flavours import async_sleep
from .._sansio.ops import ClearExpired, Create, Delete, Flow, Load, Touch, Unlock, Update
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


async def run_async(flow: Flow[T], store: AsyncStore) -> T:
    """Drive ``flow`` to completion against ``store`` and return its result."""
    send = flow.send
    try:
        op = send(None)
        while True:
            result: object
            try:
                # Most frequent first: every request loads, most then update or touch.
                if isinstance(op, Load):
                    result = await store.load(op)
                elif isinstance(op, Update):
                    result = await store.update(op)
                elif isinstance(op, Touch):
                    result = await store.touch(op)
                elif isinstance(op, Create):
                    result = await store.create(op)
                elif isinstance(op, Unlock):
                    await store.unlock(op)
                    result = None
                elif isinstance(op, Delete):
                    result = await store.delete(op)
                elif isinstance(op, ClearExpired):
                    result = await store.clear_expired(op)
                else:  # Sleep, the one operation that is not the store's: contention back-off
                    await async_sleep(op.seconds)
                    result = None
            except Exception as exc:
                error = store_failure(store, exc)
                if error is not exc:
                    error.__cause__ = exc
                op = flow.throw(error)
                continue
            op = send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value
