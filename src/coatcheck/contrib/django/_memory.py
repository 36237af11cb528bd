"""The async face of a sync in-process store, so both flavours share one ``memory://`` dict."""

from __future__ import annotations

from ...stores.base import (
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    Store,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["SharedMemoryStore"]


class SharedMemoryStore:
    """:class:`~coatcheck.stores.MemoryStore`'s operations, awaited.

    The memory store only takes a ``threading.Lock`` around dict and heap operations, never
    blocking on I/O (its async twin does the same on the event loop), so calling the sync
    methods from a coroutine is what the async flavour would do anyway.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.name = store.name
        self.unavailable_errors = store.unavailable_errors
        self.slides_on_load = store.slides_on_load

    async def load(self, op: Load) -> LoadResult:
        return self._store.load(op)

    async def create(self, op: Create) -> bool:
        return self._store.create(op)

    async def update(self, op: Update) -> int | None:
        return self._store.update(op)

    async def touch(self, op: Touch) -> bool:
        return self._store.touch(op)

    async def unlock(self, op: Unlock) -> None:
        self._store.unlock(op)

    async def delete(self, op: Delete) -> bool:
        return self._store.delete(op)

    async def clear_expired(self, op: ClearExpired) -> int:
        return self._store.clear_expired(op)

    async def count(self, now: float) -> int | None:
        return self._store.count(now)

    async def stats(self, now: float) -> StoreStats:
        return self._store.stats(now)

    async def aclose(self) -> None:
        """Nothing to close: the sync store owns the data."""
