"""The store contract: what every session store does, exactly.

A store keeps opaque session payloads under a *key*. The key is the SHA-256 hex digest of the
session id (64 characters of ``[0-9a-f]``), computed and validated by the core, so a store never
sees a raw id, a cookie, a request or a response. Payloads are opaque bytes; stores never decode
them.

Every record carries:

``payload``      the encoded session (bytes, opaque to the store)
``version``      an integer the *store* assigns: 1 on create, +1 on every successful update
``accessed_at``  seconds since the epoch, written by create, update and touch
``expires_at``   seconds since the epoch; after it the record is dead

Operations (async flavour shown; the sync flavour is the same without ``async`` and with
``close`` instead of ``aclose``). ``now`` is the caller's clock, so tests can freeze time; stores
with native expiry (Redis, memcached) turn ``expires_at - now`` into a TTL of at least one second.

``load(key, now, lock=None, slide=None) -> Record | LOCKED | None``
    The record, or ``None`` if there is none. A record whose ``expires_at`` has passed may be
    returned (the core deletes it) or treated as absent (stores with native TTL). With ``lock``,
    the per-session lock is taken in the same atomic step when it is free, expired, or already
    held by ``lock.token``, and the record is returned; when another token holds an unexpired
    lock, ``LOCKED`` is returned and nothing changes. No lock is taken when there is no record.

    With ``slide`` (a :class:`Slide`), a store whose ``slides_on_load`` is true also does the
    idle timeout's touch in the same atomic step (and round trip): when the record exists, is
    alive (``expires_at > now``) and its ``accessed_at`` is in ``(slide.alive_after,
    slide.stale_before]``, its
    ``accessed_at`` and ``expires_at`` become ``slide.accessed_at`` and ``slide.expires_at``
    exactly as :meth:`touch` would move them (version and payload unchanged, a native TTL moved
    too), and the record is returned with the new times; otherwise the record is returned
    unchanged. With ``lock`` as well, nothing slides when ``LOCKED`` is returned. A store that
    cannot do this in one step has ``slides_on_load = False`` and ignores ``slide``; the core
    then touches at save time instead.

``create(key, payload, accessed_at, expires_at, now) -> bool``
    Create-if-absent. ``True``: stored with version 1. ``False``: a record already exists under
    ``key`` (dead or alive); nothing was changed and the caller must pick another id.

``update(key, payload, accessed_at, expires_at, now, expected_version, unlock=None) -> int | None``
    Update-if-present, compare-and-set. When a record exists and ``expected_version`` is
    ``None`` or equals its version, the payload and times are replaced, the version is
    incremented, and the new version is returned. Otherwise (no record: destroyed, rotated or
    expired; or another version) nothing changes and ``None`` is returned, so a late save can
    never resurrect a destroyed session. ``unlock=token`` also releases the lock held by
    ``token`` in the same atomic step, only when the update succeeds.

``touch(key, accessed_at, expires_at, now, unlock=None) -> bool``
    Moves ``accessed_at`` and ``expires_at`` without rewriting the payload or changing the
    version. ``False`` when there is no record (nothing is created). ``unlock`` as for update.

``unlock(key, token) -> None``
    Releases the lock when ``token`` holds it; otherwise does nothing.

``delete(key) -> None``
    Removes the record and its lock. Idempotent: deleting a missing key is not an error.

``clear_expired(now) -> int``
    Removes records whose ``expires_at <= now`` (and debris such as stale temp files) and returns
    how many records it removed. Stores whose backend expires records itself return 0.
    Large stores delete in bounded batches so no long lock is held.

``count(now) -> int | None``
    Live records (``expires_at > now``), or ``None`` when the backend cannot enumerate keys.

``stats(now) -> StoreStats``
    Live and expired record counts and total payload bytes, each ``None`` where unknown.

``aclose()`` / ``close()``
    Releases connections the store opened itself; a client passed in by the caller is left open.

Every store also has ``name`` (a description for error messages, never with a password),
``slides_on_load`` (a class attribute: whether ``load`` honours ``slide``) and
``unavailable_errors`` (the driver exceptions that mean "server down or timed out"): the core
wraps any other driver exception in :class:`~coatcheck.errors.StoreError`, and those in
:class:`~coatcheck.errors.StoreUnavailable`, naming the store.

The contract test suite in ``tests/contract`` checks all of this against every store.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "LOCKED",
    "AsyncStore",
    "LoadResult",
    "LockRequest",
    "Locked",
    "Record",
    "Slide",
    "Store",
    "StoreStats",
]


class Locked(enum.Enum):
    """Type of the :data:`LOCKED` marker: ``load`` found the lock held by another request."""

    LOCKED = "locked"


LOCKED = Locked.LOCKED


class Record(NamedTuple):
    """One stored session, as a store returns it.

    A NamedTuple rather than a frozen dataclass: every load builds one, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs twice as much.
    """

    payload: bytes
    version: int
    accessed_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LockRequest:
    """Ask ``load`` to take the per-session lock for ``token`` for at most ``ttl`` seconds."""

    token: str
    ttl: float


class Slide(NamedTuple):
    """Ask ``load`` to slide the idle timeout of a stale record, as a touch would.

    (A named tuple, not a dataclass: the core builds one on every request.)
    """

    accessed_at: float  #: the new ``accessed_at``
    expires_at: float  #: the new ``expires_at``
    stale_before: float  #: slide only a record whose ``accessed_at`` is at most this
    #: and only one whose ``accessed_at`` is after this: a record idle for longer than the
    #: current idle timeout stays dead even if it was stored under a longer one
    alive_after: float = -math.inf


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What ``coatcheck stats`` prints; ``None`` where the backend cannot tell."""

    live: int | None
    expired: int | None
    payload_bytes: int | None


LoadResult = Record | Literal[Locked.LOCKED] | None


@runtime_checkable
class Store(Protocol):
    """A synchronous session store; see the module docstring for the exact semantics."""

    name: str
    unavailable_errors: tuple[type[BaseException], ...]
    slides_on_load: bool

    def load(
        self, key: str, now: float, lock: LockRequest | None = None, slide: Slide | None = None
    ) -> LoadResult: ...

    def create(
        self, key: str, payload: bytes, accessed_at: float, expires_at: float, now: float
    ) -> bool: ...

    def update(
        self,
        key: str,
        payload: bytes,
        accessed_at: float,
        expires_at: float,
        now: float,
        expected_version: int | None,
        unlock: str | None = None,
    ) -> int | None: ...

    def touch(
        self,
        key: str,
        accessed_at: float,
        expires_at: float,
        now: float,
        unlock: str | None = None,
    ) -> bool: ...

    def unlock(self, key: str, token: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear_expired(self, now: float) -> int: ...

    def count(self, now: float) -> int | None: ...

    def stats(self, now: float) -> StoreStats: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncStore(Protocol):
    """An asyncio session store; the same contract as :class:`Store`, awaited."""

    name: str
    unavailable_errors: tuple[type[BaseException], ...]
    slides_on_load: bool

    async def load(
        self, key: str, now: float, lock: LockRequest | None = None, slide: Slide | None = None
    ) -> LoadResult: ...

    async def create(
        self, key: str, payload: bytes, accessed_at: float, expires_at: float, now: float
    ) -> bool: ...

    async def update(
        self,
        key: str,
        payload: bytes,
        accessed_at: float,
        expires_at: float,
        now: float,
        expected_version: int | None,
        unlock: str | None = None,
    ) -> int | None: ...

    async def touch(
        self,
        key: str,
        accessed_at: float,
        expires_at: float,
        now: float,
        unlock: str | None = None,
    ) -> bool: ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def clear_expired(self, now: float) -> int: ...

    async def count(self, now: float) -> int | None: ...

    async def stats(self, now: float) -> StoreStats: ...

    async def aclose(self) -> None: ...
