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
``close`` instead of ``aclose``). Each takes one operation object from
:mod:`coatcheck._sansio.ops` (re-exported here), a named tuple whose fields are named below.
``now`` is the caller's clock, so tests can freeze time; stores with native expiry (Redis,
memcached) turn ``expires_at - now`` into a TTL of at least one second.

``load(Load(key, now, lock=None, slide=None)) -> Record | LOCKED | Damaged | None``
    The record, or ``None`` if there is none. When the key holds something that is not a
    record of this store (another program's value, a value of another type, a row whose
    columns do not parse), ``Damaged(reason)`` rather than an error: the core logs the reason
    on ``coatcheck.security``, deletes the key and starts a fresh session, where an error would
    answer 503 for as long as the damage stays. The fields of a returned record may be passed
    as the driver read them: the core checks them (a positive ``int`` version, finite times,
    ``bytes`` payload) and treats anything else as damage too.

    A record whose ``expires_at`` has passed may be returned (the core then deletes it,
    whatever its own timeouts say) or treated as absent (stores with native TTL). With
    ``lock`` (a :class:`LockRequest`), the per-session lock is taken in the same atomic step
    when it is free, expired, or already held by ``lock.token``, and the record is returned;
    when another token holds an unexpired lock, ``LOCKED`` is returned and nothing changes.
    A store whose ``orders_waiters`` is true serves waiters longest first: beside its holder,
    each lock keeps the *next* slot (token, since, seen: the waiter that has waited longest),
    and a free or expired lock is taken only when :func:`coatcheck._sansio.line.decide` says
    this request's turn has come; the slot changes only as ``decide`` answers, in the same
    atomic step (a ``LOCKED`` answer may claim it, a taken lock clears it).
    No lock is taken and no slot claimed when there is no record.

    With ``slide`` (a :class:`Slide`), a store whose ``slides_on_load`` is true also does the
    idle timeout's touch in the same atomic step (and round trip): when the record exists, is
    alive (``expires_at > now``) and its ``accessed_at`` is in ``(slide.alive_after,
    slide.stale_before]``, its ``accessed_at`` and ``expires_at`` become ``slide.accessed_at``
    and ``slide.expires_at`` exactly as a touch would move them (version and payload unchanged,
    a native TTL moved too), and the record is returned with the new times; otherwise the
    record is returned unchanged. With ``lock`` as well, nothing slides when ``LOCKED`` is
    returned. A store that cannot do this in one step has ``slides_on_load = False`` and
    ignores ``slide``; the core then touches at save time instead.

    ``Record.handle`` is the store's own: anything it wants back when this record is updated or
    touched (a cas token, say). The core passes it back untouched as ``Update.handle`` or
    ``Touch.handle``; a store must stay exact when the handle is stale or ``None`` (the record
    may have changed since, or the caller may not have loaded it).

``create(Create(key, payload, accessed_at, expires_at, now)) -> bool``
    Create-if-absent. ``True``: stored with version 1. ``False``: a record already exists under
    ``key`` (dead or alive); nothing was changed and the caller must pick another id.

``update(Update(key, payload, accessed_at, expires_at, now, expected_version, unlock=None,
handle=None)) -> int | None``
    Update-if-present, compare-and-set. When a record exists and ``expected_version`` is
    ``None`` or equals its version, the payload and times are replaced, the version is
    incremented, and the new version is returned. Otherwise (no record: destroyed, rotated or
    expired; or another version) nothing changes and ``None`` is returned, so a late save can
    never resurrect a destroyed session. ``unlock=token`` also releases the lock held by
    ``token`` in the same atomic step, only when the update succeeds.

``touch(Touch(key, accessed_at, expires_at, now, unlock=None, handle=None)) -> bool``
    Moves ``accessed_at`` and ``expires_at`` without rewriting the payload or changing the
    version. ``False`` when there is no record (nothing is created). ``unlock`` as for update.

``unlock(Unlock(key, token)) -> None``
    Releases the lock when ``token`` holds it, and (where ``orders_waiters``) empties the
    *next* slot when ``token`` holds that: a waiter that gives up. Otherwise does nothing.

``delete(Delete(key, expected_version=None, handle=None)) -> bool``
    Removes the record and its lock; ``True`` when a record was removed. Idempotent: deleting
    a missing key is not an error (``False``). With ``expected_version``, a compare-and-delete:
    the record is removed only when it is stored at that version, atomically, so a rotation
    that retires the record it copied never drops a concurrent update or outlives a destroy.
    Without one, whatever the key holds goes, damaged or not. ``handle`` as for update.

``clear_expired(ClearExpired(now)) -> int``
    Removes records whose ``expires_at <= now`` (and debris such as stale temp files) and returns
    how many records it removed. Stores whose backend expires records itself return 0.
    Large stores delete in bounded batches so no long lock is held.

Two more methods serve the ``coatcheck`` command, not the session rules:

``count(now) -> int | None``
    Live records (``expires_at > now``), or ``None`` when the backend cannot enumerate keys.

``stats(now) -> StoreStats``
    Live and expired record counts and total payload bytes, each ``None`` where unknown.

``aclose()`` / ``close()``
    Releases connections the store opened itself; a client passed in by the caller is left open.

A store may also have ``wait_released(Sleep(seconds, key, token)) -> None``: wait at most
``seconds`` (plus its own deadline), returning early once the lock on ``key`` may be free for
``token`` (released, say, while ``token`` holds the *next* slot). Returning early without a
release is allowed: the caller loads again either way. Without it, the caller sleeps.

Every store also has ``name`` (a description for error messages, never with a password),
``slides_on_load`` (a class attribute: whether ``load`` honours ``slide``) and
``unavailable_errors`` (the driver exceptions that mean "server down or timed out"): the core
wraps any other driver exception in :class:`~coatcheck.errors.StoreError`, and those in
:class:`~coatcheck.errors.StoreUnavailable`, naming the store. A store may also have
``unsent_errors``, those of its errors that always come before an operation reaches the server
(no free pooled connection); a failed write that raised anything else may still be applied, so
the error says its outcome is unknown (``StoreError.outcome_unknown``).

The contract test suite, :mod:`coatcheck.testing.contract`, checks all of this; every store
in this package passes it, and a third-party store can run it too.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._sansio.ops import (
    LOCKED,
    ClearExpired,
    Create,
    Damaged,
    Delete,
    Load,
    LoadResult,
    Locked,
    LockRequest,
    Record,
    Sleep,
    Slide,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = [
    "LOCKED",
    "AsyncStore",
    "ClearExpired",
    "Create",
    "Damaged",
    "Delete",
    "Load",
    "LoadResult",
    "LockRequest",
    "Locked",
    "Record",
    "Sleep",
    "Slide",
    "Store",
    "StoreOperations",
    "StoreStats",
    "Touch",
    "Unlock",
    "Update",
]


class StoreOperations(Protocol):
    """The contract's operations, blocking; a :class:`Store` has them, and so has the blocking
    backend that the file and SQLite stores hand to a worker thread in the async flavour."""

    def load(self, op: Load) -> LoadResult: ...

    def create(self, op: Create) -> bool: ...

    def update(self, op: Update) -> int | None: ...

    def touch(self, op: Touch) -> bool: ...

    def unlock(self, op: Unlock) -> None: ...

    def delete(self, op: Delete) -> bool: ...

    def clear_expired(self, op: ClearExpired) -> int: ...

    def stats(self, now: float) -> StoreStats: ...

    def close(self) -> None: ...


@runtime_checkable
class Store(StoreOperations, Protocol):
    """A synchronous session store; see the module docstring for the exact semantics."""

    name: str
    unavailable_errors: tuple[type[BaseException], ...]
    slides_on_load: bool

    def count(self, now: float) -> int | None: ...


@runtime_checkable
class AsyncStore(Protocol):
    """An asyncio session store; the same contract as :class:`Store`, awaited."""

    name: str
    unavailable_errors: tuple[type[BaseException], ...]
    slides_on_load: bool

    async def load(self, op: Load) -> LoadResult: ...

    async def create(self, op: Create) -> bool: ...

    async def update(self, op: Update) -> int | None: ...

    async def touch(self, op: Touch) -> bool: ...

    async def unlock(self, op: Unlock) -> None: ...

    async def delete(self, op: Delete) -> bool: ...

    async def clear_expired(self, op: ClearExpired) -> int: ...

    async def count(self, now: float) -> int | None: ...

    async def stats(self, now: float) -> StoreStats: ...

    async def aclose(self) -> None: ...
