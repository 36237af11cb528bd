"""The contract operations of a store whose real work is blocking code (files, sqlite3).

:class:`AsyncBlockingStore` runs each per-session operation through ``run_inline_first``: in the
async flavour it first tries the backend's ``inline`` twin of the operation on the event loop,
which either finishes without waiting for anything (no lock wait, no ``fsync``) or raises
``WouldBlock`` having changed nothing, and only then hands the operation to a worker thread. A
thread hand-off costs two thread wake-ups (about 40-60 µs here), several times a small SQLite
statement, so the common case stays on the loop. Work that can take long whatever the state of
the locks (``clear_expired``, ``stats``, closing, table creation) always goes to the thread. In the
generated sync twin every operation is a plain call of the backend. The file and SQLite stores keep
only what differs (construction, URLs, table set-up) and inherit this.
"""

from __future__ import annotations

from typing import Protocol

from ..._flavours import async_run_blocking, async_run_inline_first
from ..base import (
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    StoreOperations,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["AsyncBlockingStore", "BlockingBackend", "InlineOperations"]


class InlineOperations(Protocol):
    """The per-session operations, each short enough for an event loop or raising
    ``WouldBlock`` before it changed anything (the backend's docstring states its bound)."""

    def load(self, op: Load) -> LoadResult: ...

    def create(self, op: Create) -> bool: ...

    def update(self, op: Update) -> int | None: ...

    def touch(self, op: Touch) -> bool: ...

    def unlock(self, op: Unlock) -> None: ...

    def delete(self, op: Delete) -> bool: ...


class BlockingBackend(StoreOperations, Protocol):
    """The blocking operations behind an :class:`AsyncBlockingStore`, with their inline twins."""

    @property
    def inline(self) -> InlineOperations: ...


class AsyncBlockingStore:
    """Every contract operation on ``self._backend``: inline when short, else in a thread."""

    _backend: BlockingBackend
    # The slide would be a second statement or file write in the load's transaction: no
    # round trip to save here, and it would make every read a write.
    slides_on_load = False

    async def load(self, op: Load) -> LoadResult:
        return await async_run_inline_first(self._backend.inline.load, self._backend.load, op)

    async def create(self, op: Create) -> bool:
        return await async_run_inline_first(self._backend.inline.create, self._backend.create, op)

    async def update(self, op: Update) -> int | None:
        return await async_run_inline_first(self._backend.inline.update, self._backend.update, op)

    async def touch(self, op: Touch) -> bool:
        return await async_run_inline_first(self._backend.inline.touch, self._backend.touch, op)

    async def unlock(self, op: Unlock) -> None:
        await async_run_inline_first(self._backend.inline.unlock, self._backend.unlock, op)

    async def delete(self, op: Delete) -> bool:
        return await async_run_inline_first(self._backend.inline.delete, self._backend.delete, op)

    async def clear_expired(self, op: ClearExpired) -> int:
        return await async_run_blocking(self._backend.clear_expired, op)

    async def count(self, now: float) -> int | None:
        return (await self.stats(now)).live

    async def stats(self, now: float) -> StoreStats:
        return await async_run_blocking(self._backend.stats, now)

    async def aclose(self) -> None:
        """Release what the backend holds open (a later call opens it again)."""
        await async_run_blocking(self._backend.close)
