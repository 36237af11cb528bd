"""An in-process store: a dict under a lock, with an expiry heap so cleanup costs O(expired)."""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass

from ..._flavours import AsyncBell
from ..._sansio.line import Next, decide
from ..._sansio.tuples import build
from ..base import (
    LOCKED,
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    Record,
    Sleep,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["AsyncMemoryStore"]

# Expired records are also evicted a few at a time on every create, so a process that never
# calls cleanup() still returns to its baseline memory (abandoned sessions are the common case).
_EVICT_ON_WRITE = 8


@dataclass(slots=True)
class _Entry:
    payload: bytes
    version: int
    accessed_at: float
    expires_at: float
    lock_token: str | None = None
    lock_expires: float = 0.0
    next: Next | None = None  # the longest waiter for the lock (coatcheck._sansio.line)


class AsyncMemoryStore:
    """Sessions in this process's memory: for tests, the demo and single-process apps.

    Thread-safe; the async flavour never awaits while holding its lock, so it is safe on an event
    loop too. Nothing survives a restart and nothing is shared between processes.
    """

    unavailable_errors: tuple[type[BaseException], ...] = ()
    slides_on_load = True
    orders_waiters = True

    def __init__(self) -> None:
        self.name = "memory://"
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        # (time, key) pairs, where every live record has a pair no later than its deadline.
        # Extending a deadline (what nearly every update and touch does) pushes nothing: the
        # old pair is re-pushed with the new deadline only when it comes due.
        self._heap: list[tuple[float, str]] = []
        # The doorbells of waiters in wait_released, by token: a release rings the next one's.
        self._bells: dict[str, AsyncBell] = {}

    @classmethod
    def from_url(cls, url: str) -> AsyncMemoryStore:
        """``memory://``: the URL carries no options."""
        return cls()

    def _push(self, expires_at: float, key: str) -> None:
        heapq.heappush(self._heap, (expires_at, key))
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._heap = [(e.expires_at, k) for k, e in self._entries.items()]
            heapq.heapify(self._heap)

    def _evict(self, now: float, limit: int | None) -> int:
        removed = 0
        heap, entries = self._heap, self._entries
        while heap and heap[0][0] <= now and (limit is None or removed < limit):
            _, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is None:
                continue  # deleted already
            if entry.expires_at <= now:
                del entries[key]
                removed += 1
            else:
                heapq.heappush(heap, (entry.expires_at, key))  # it was extended since
        return removed

    async def load(self, op: Load) -> LoadResult:
        key, now, lock, slide = op.key, op.now, op.lock, op.slide
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if lock is not None:
                holder = entry.lock_token if entry.lock_expires > now else None
                took, entry.next = decide(holder, entry.next, lock, now)
                if not took:
                    return LOCKED
                entry.lock_token, entry.lock_expires = lock.token, now + lock.ttl
            if (
                slide is not None
                and entry.expires_at > now
                and slide.alive_after < entry.accessed_at <= slide.stale_before
            ):
                # What touch() does, under the same lock as the read.
                entry.accessed_at = slide.accessed_at
                if slide.expires_at < entry.expires_at:
                    self._push(slide.expires_at, key)
                entry.expires_at = slide.expires_at
            return build(
                Record, (entry.payload, entry.version, entry.accessed_at, entry.expires_at, None)
            )

    async def create(self, op: Create) -> bool:
        key = op.key
        with self._lock:
            self._evict(op.now, _EVICT_ON_WRITE)
            if key in self._entries:
                return False
            self._entries[key] = _Entry(op.payload, 1, op.accessed_at, op.expires_at)
            self._push(op.expires_at, key)
            return True

    async def update(self, op: Update) -> int | None:
        key, expires_at, expected_version = op.key, op.expires_at, op.expected_version
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (
                expected_version is not None and entry.version != expected_version
            ):
                return None
            entry.payload, entry.accessed_at = op.payload, op.accessed_at
            entry.version += 1
            if expires_at < entry.expires_at:
                self._push(expires_at, key)
            entry.expires_at = expires_at
            if op.unlock is not None and entry.lock_token == op.unlock:
                self._release(entry)
            return entry.version

    async def touch(self, op: Touch) -> bool:
        key, expires_at = op.key, op.expires_at
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            entry.accessed_at = op.accessed_at
            if expires_at < entry.expires_at:
                self._push(expires_at, key)
            entry.expires_at = expires_at
            if op.unlock is not None and entry.lock_token == op.unlock:
                self._release(entry)
            return True

    async def unlock(self, op: Unlock) -> None:
        with self._lock:
            entry = self._entries.get(op.key)
            if entry is None:
                return
            if entry.lock_token == op.token:
                self._release(entry)
            elif entry.next is not None and entry.next.token == op.token:
                entry.next = None  # a waiter that gives up its place

    def _release(self, entry: _Entry) -> None:
        # Under self._lock: the lock is free; the waiter whose turn it is hears it at once.
        entry.lock_token = None
        if entry.next is not None:
            bell = self._bells.pop(entry.next.token, None)
            if bell is not None:
                bell.ring()

    async def wait_released(self, op: Sleep) -> None:
        """Wait at most ``op.seconds`` for the lock on ``op.key`` to be released while
        ``op.token`` is next in line (or for it to be free already)."""
        token = op.token
        if token is None or op.key is None:
            return
        bell = AsyncBell()
        bell.arm()
        with self._lock:
            entry = self._entries.get(op.key)
            if entry is None or entry.lock_token is None:
                return
            self._bells[token] = bell
        try:
            await bell.wait(op.seconds)
        finally:
            with self._lock:
                if self._bells.get(token) is bell:
                    del self._bells[token]

    async def delete(self, op: Delete) -> bool:
        key, expected_version = op.key, op.expected_version
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (
                expected_version is not None and entry.version != expected_version
            ):
                return False
            del self._entries[key]
            if entry.next is not None:
                self._release(entry)  # the waiter loads at once, and finds no record
            return True

    async def clear_expired(self, op: ClearExpired) -> int:
        with self._lock:
            return self._evict(op.now, None)

    async def count(self, now: float) -> int | None:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.expires_at > now)

    async def stats(self, now: float) -> StoreStats:
        with self._lock:
            live = sum(1 for e in self._entries.values() if e.expires_at > now)
            size = sum(len(e.payload) for e in self._entries.values())
            return StoreStats(live, len(self._entries) - live, size)

    async def aclose(self) -> None:
        """Nothing to release; the data stays until the object is dropped."""
