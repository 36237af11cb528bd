"""Runs a session flow (:mod:`coatcheck._sansio.core`) against an asyncio store.

This and its generated sync twin are the only code that differs between the flavours: they hand
each operation the flow yields to the store method of the same name and send the result back.
A failing store becomes a StoreError or StoreUnavailable naming the store, thrown into the flow
so it can clean up. The error says whether the flow may have changed the stored session
(``outcome_unknown``): a write went through earlier, or the failed one was sent and not
confirmed, which only a failure known to come before sending (a refused connection, no free
pooled connection: the store's ``unavailable_errors``' subset ``unsent_errors``) rules out.
"""

from __future__ import annotations

from typing import TypeVar

from .._flavours import async_sleep
from .._sansio.ops import ClearExpired, Create, Delete, Flow, Load, Touch, Unlock, Update
from ..errors import CoatcheckError, StoreError, StoreUnavailable
from ..stores.base import AsyncStore

__all__ = ["run_async", "store_failure"]

T = TypeVar("T")

# The operations that change a session's data or id (a touch or an unlock changes neither).
_WRITES = (Create, Update, Delete)


def store_failure(store: AsyncStore, exc: Exception, wrote: bool = False) -> CoatcheckError:
    """The coatcheck error that stands for ``exc`` raised by ``store``; ``wrote``: the flow
    may have changed the stored session (the error's ``outcome_unknown``)."""
    if isinstance(exc, CoatcheckError):
        if wrote and isinstance(exc, StoreError):
            exc.outcome_unknown = True
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (*store.unavailable_errors, OSError, TimeoutError)):
        return StoreUnavailable(store.name, detail, outcome_unknown=wrote)
    return StoreError(store.name, detail, outcome_unknown=wrote)


def _unsent(store: AsyncStore, exc: Exception) -> bool:
    """Whether ``exc`` means that the failed operation never reached the server."""
    # Optional on a store: without it, every failed write counts as possibly applied.
    unsent: tuple[type[BaseException], ...] = getattr(store, "unsent_errors", ())
    return isinstance(exc, (ConnectionRefusedError, *unsent))


async def run_async(flow: Flow[T], store: AsyncStore) -> T:
    """Drive ``flow`` to completion against ``store`` and return its result."""
    send = flow.send
    wrote = False  # whether a write of this flow went through, or may have
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
                    wrote = True
                elif isinstance(op, Touch):
                    result = await store.touch(op)
                elif isinstance(op, Create):
                    result = await store.create(op)
                    wrote = True
                elif isinstance(op, Unlock):
                    await store.unlock(op)
                    result = None
                elif isinstance(op, Delete):
                    result = await store.delete(op)
                    wrote = True
                elif isinstance(op, ClearExpired):
                    result = await store.clear_expired(op)
                else:  # Sleep: contention back-off, woken early where the store can tell
                    wait = getattr(store, "wait_released", None) if op.token else None
                    if wait is None:
                        await async_sleep(op.seconds)
                    else:
                        await wait(op)
                    result = None
            except Exception as exc:
                if not wrote and isinstance(op, _WRITES) and not _unsent(store, exc):
                    wrote = True  # sent, and not confirmed: it may apply yet
                error = store_failure(store, exc, wrote)
                if error is not exc:
                    error.__cause__ = exc
                op = flow.throw(error)
                continue
            op = send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value
    except StoreError as exc:  # raised by the flow itself, on an answer it cannot use
        if wrote:
            exc.outcome_unknown = True
        raise
