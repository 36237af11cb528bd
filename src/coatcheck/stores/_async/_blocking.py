"""The contract operations of a store whose real work is blocking code (files, sqlite3).

:class:`AsyncBlockingStore` hands every operation to its ``_backend`` through ``run_blocking``: a
worker thread in the async flavour, a plain call in the generated sync twin. The file and SQLite
stores keep only what differs (construction, URLs, table set-up) and inherit this.
"""

from __future__ import annotations

from ..._flavours import async_run_blocking
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

__all__ = ["AsyncBlockingStore", "BlockingBackend"]


#: The blocking operations behind an :class:`AsyncBlockingStore`: the contract's, blocking.
BlockingBackend = StoreOperations


class AsyncBlockingStore:
    """Every contract operation, run on ``self._backend`` off the event loop."""

    _backend: BlockingBackend
    # The slide would be a second statement or file write in the load's transaction: no
    # round trip to save here, and it would make every read a write.
    slides_on_load = False

    async def load(self, op: Load) -> LoadResult:
        return await async_run_blocking(self._backend.load, op)

    async def create(self, op: Create) -> bool:
        return await async_run_blocking(self._backend.create, op)

    async def update(self, op: Update) -> int | None:
        return await async_run_blocking(self._backend.update, op)

    async def touch(self, op: Touch) -> bool:
        return await async_run_blocking(self._backend.touch, op)

    async def unlock(self, op: Unlock) -> None:
        await async_run_blocking(self._backend.unlock, op)

    async def delete(self, op: Delete) -> bool:
        return await async_run_blocking(self._backend.delete, op)

    async def clear_expired(self, op: ClearExpired) -> int:
        return await async_run_blocking(self._backend.clear_expired, op)

    async def count(self, now: float) -> int | None:
        return (await self.stats(now)).live

    async def stats(self, now: float) -> StoreStats:
        return await async_run_blocking(self._backend.stats, now)

    async def aclose(self) -> None:
        """Release what the backend holds open (a later call opens it again)."""
        await async_run_blocking(self._backend.close)
