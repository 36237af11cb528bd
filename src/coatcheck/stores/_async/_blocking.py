"""The contract operations of a store whose real work is blocking code (files, sqlite3).

:class:`AsyncBlockingStore` hands every operation to its ``_backend`` through ``run_blocking``: a
worker thread in the async flavour, a plain call in the generated sync twin. The file and SQLite
stores keep only what differs (construction, URLs, table set-up) and inherit this.
"""

from __future__ import annotations

from typing import Protocol

from ..._flavours import async_run_blocking
from ..base import (
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    LockRequest,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["AsyncBlockingStore", "BlockingBackend"]


class BlockingBackend(Protocol):
    """The blocking operations behind an :class:`AsyncBlockingStore` (``now`` only where used)."""

    def load(self, key: str, now: float, lock: LockRequest | None) -> LoadResult: ...

    def create(self, key: str, payload: bytes, accessed_at: float, expires_at: float) -> bool: ...

    def update(
        self,
        key: str,
        payload: bytes,
        accessed_at: float,
        expires_at: float,
        expected_version: int | None,
        unlock: str | None,
    ) -> int | None: ...

    def touch(
        self, key: str, accessed_at: float, expires_at: float, unlock: str | None
    ) -> bool: ...

    def unlock(self, key: str, token: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear_expired(self, now: float) -> int: ...

    def stats(self, now: float) -> StoreStats: ...

    def close(self) -> None: ...


class AsyncBlockingStore:
    """Every contract operation, run on ``self._backend`` off the event loop."""

    _backend: BlockingBackend
    # The slide would be a second statement or file write in the load's transaction: no
    # round trip to save here, and it would make every read a write.
    slides_on_load = False

    async def load(self, op: Load) -> LoadResult:
        return await async_run_blocking(self._backend.load, op.key, op.now, op.lock)

    async def create(self, op: Create) -> bool:
        backend = self._backend
        return await async_run_blocking(
            backend.create, op.key, op.payload, op.accessed_at, op.expires_at
        )

    async def update(self, op: Update) -> int | None:
        return await async_run_blocking(
            self._backend.update,
            op.key,
            op.payload,
            op.accessed_at,
            op.expires_at,
            op.expected_version,
            op.unlock,
        )

    async def touch(self, op: Touch) -> bool:
        backend = self._backend
        return await async_run_blocking(
            backend.touch, op.key, op.accessed_at, op.expires_at, op.unlock
        )

    async def unlock(self, op: Unlock) -> None:
        await async_run_blocking(self._backend.unlock, op.key, op.token)

    async def delete(self, op: Delete) -> None:
        await async_run_blocking(self._backend.delete, op.key)

    async def clear_expired(self, op: ClearExpired) -> int:
        return await async_run_blocking(self._backend.clear_expired, op.now)

    async def count(self, now: float) -> int | None:
        return (await self.stats(now)).live

    async def stats(self, now: float) -> StoreStats:
        return await async_run_blocking(self._backend.stats, now)

    async def aclose(self) -> None:
        """Release what the backend holds open (a later call opens it again)."""
        await async_run_blocking(self._backend.close)
