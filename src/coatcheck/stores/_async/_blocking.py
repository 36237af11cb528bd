"""The contract operations of a store whose real work is blocking code (files, sqlite3).

:class:`AsyncBlockingStore` hands every operation to its ``_backend`` through ``run_blocking``: a
worker thread in the async flavour, a plain call in the generated sync twin. The file and SQLite
stores keep only what differs (construction, URLs, table set-up) and inherit this.
"""

from __future__ import annotations

from typing import Protocol

from ..._flavours import async_run_blocking
from ..base import LoadResult, LockRequest, Slide, StoreStats

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

    async def load(
        self, key: str, now: float, lock: LockRequest | None = None, slide: Slide | None = None
    ) -> LoadResult:
        return await async_run_blocking(self._backend.load, key, now, lock)

    async def create(
        self, key: str, payload: bytes, accessed_at: float, expires_at: float, now: float
    ) -> bool:
        return await async_run_blocking(self._backend.create, key, payload, accessed_at, expires_at)

    async def update(
        self,
        key: str,
        payload: bytes,
        accessed_at: float,
        expires_at: float,
        now: float,
        expected_version: int | None,
        unlock: str | None = None,
    ) -> int | None:
        return await async_run_blocking(
            self._backend.update, key, payload, accessed_at, expires_at, expected_version, unlock
        )

    async def touch(
        self,
        key: str,
        accessed_at: float,
        expires_at: float,
        now: float,
        unlock: str | None = None,
    ) -> bool:
        return await async_run_blocking(self._backend.touch, key, accessed_at, expires_at, unlock)

    async def unlock(self, key: str, token: str) -> None:
        await async_run_blocking(self._backend.unlock, key, token)

    async def delete(self, key: str) -> None:
        await async_run_blocking(self._backend.delete, key)

    async def clear_expired(self, now: float) -> int:
        return await async_run_blocking(self._backend.clear_expired, now)

    async def count(self, now: float) -> int | None:
        return (await self.stats(now)).live

    async def stats(self, now: float) -> StoreStats:
        return await async_run_blocking(self._backend.stats, now)

    async def aclose(self) -> None:
        """Release what the backend holds open (a later call opens it again)."""
        await async_run_blocking(self._backend.close)
