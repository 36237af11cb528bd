"""The seam between the session rules and the stores: each store operation as a typed object.

The rules (:mod:`coatcheck._sansio.core`) never call a store. They are generators that yield one
of the operations below and receive its result; a short driver for each flavour
(``coatcheck._async.driver`` and its generated sync twin) hands each operation to the store
method of the same name and sends the answer back. Every operation is a small immutable object
with named fields and one result type:

=================  ==================================  =======================================
operation          store method                        result
=================  ==================================  =======================================
:class:`Load`      ``load(op)``                        :data:`LoadResult`
:class:`Create`    ``create(op)``                      ``bool``: False when the key is taken
:class:`Update`    ``update(op)``                      the new version, or None
:class:`Touch`     ``touch(op)``                       ``bool``: False when there is no record
:class:`Unlock`    ``unlock(op)``                      None
:class:`Delete`    ``delete(op)``                      ``bool``: whether a record was removed
:class:`ClearExpired` ``clear_expired(op)``            how many records were removed
:class:`Sleep`     (none: the driver waits)            None
=================  ==================================  =======================================

A rule yields an operation and checks the answer's type where it receives it
(``record = yield Load(key, now)``, then ``isinstance``): what a store answers is untrusted
input too, and the check is what lets ``mypy --strict`` follow each result's type across the
seam (a wrong answer is a :class:`~coatcheck.errors.StoreError` naming the store, see
:func:`wrong_answer`). The exact semantics of each operation are the store contract, in
:mod:`coatcheck.stores.base`.

Operations and results are named tuples rather than frozen dataclasses: both are immutable,
and a frozen dataclass costs about twice as much to build. Where a request builds one on the
hot path, :func:`coatcheck._sansio.tuples.build` makes it cheaper still, typed the same.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeVar

from ..errors import StoreError

__all__ = [
    "LOCKED",
    "ClearExpired",
    "Create",
    "Damaged",
    "Delete",
    "Flow",
    "Load",
    "LoadResult",
    "LockRequest",
    "Locked",
    "Operation",
    "Record",
    "Sleep",
    "Slide",
    "StoreStats",
    "Touch",
    "Unlock",
    "Update",
    "damage",
    "wrong_answer",
]

T = TypeVar("T")


class Locked(enum.Enum):
    """Type of the :data:`LOCKED` marker: ``load`` found the lock held by another request."""

    LOCKED = "locked"


LOCKED = Locked.LOCKED


class Record(NamedTuple):
    """One stored session, as a store returns it from ``load``.

    ``handle`` is the store's own: whatever it learnt while loading and wants back when this
    record is updated or touched (memcached keeps its cas token there). The rules never look
    inside it; they pass it back on the :class:`Update` or :class:`Touch` of this record.
    """

    payload: bytes
    version: int
    accessed_at: float
    expires_at: float
    handle: object = None


class Damaged(NamedTuple):
    """What ``load`` answers for a key that holds something other than a record of this store
    (another program's value, a value of another type, a row that does not parse).

    ``reason`` is a short reason code for the security log. The core then deletes whatever the
    key holds and starts a fresh session: damage is untrusted input, not a store failure, so
    it never becomes a 503 (which would lock that cookie out for as long as the damage stays).
    """

    reason: str


#: What ``load`` answers: the record, :data:`LOCKED` (another request holds its lock),
#: :class:`Damaged`, or None.
LoadResult = Record | Literal[Locked.LOCKED] | Damaged | None


def damage(record: Record) -> str | None:
    """Why a record a store answered cannot be trusted, as a reason code; None when it can.

    Whatever a store holds is untrusted input, and its fields are not checked anywhere else:
    a version that is no positive integer breaks compare-and-set, and a time that is not a
    finite number breaks expiry (``now >= nan`` is always false: a NaN access time would
    switch the idle timeout off). Stores may hand over the values as their driver read them.
    """
    payload, version, accessed_at, expires_at, _ = record
    # Every request's load passes here: the common case first, in one expression (x - x is
    # 0.0 exactly for a finite float, NaN for NaN and infinities).
    if (
        type(payload) is bytes
        and type(version) is int
        and version > 0
        and type(accessed_at) is float
        and type(expires_at) is float
        and accessed_at - accessed_at == 0.0
        and expires_at - expires_at == 0.0
    ):
        return None
    if type(payload) is not bytes:
        return "damaged-payload"
    if type(version) is not int or version < 1:
        return "damaged-version"
    if (
        type(accessed_at) not in _NUMBERS
        or type(expires_at) not in _NUMBERS
        or not (math.isfinite(accessed_at) and math.isfinite(expires_at))
    ):
        return "damaged-times"
    return None


_NUMBERS = (float, int)


@dataclass(frozen=True, slots=True)
class LockRequest:
    """Ask ``load`` to take the per-session lock for ``token`` for at most ``ttl`` seconds.

    ``since`` is when this request began to wait for the lock, on the caller's clock (None:
    the load's ``now``): of the requests waiting, the one waiting longest is next in line
    (:mod:`coatcheck._sansio.line`).
    """

    token: str
    ttl: float
    since: float | None = None


class Slide(NamedTuple):
    """Ask ``load`` to slide the idle timeout of a stale record, as a touch would."""

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


class Load(NamedTuple):
    """Read the record under ``key``; with ``lock``, take its lock too; with ``slide``, slide it."""

    key: str
    now: float
    lock: LockRequest | None = None
    slide: Slide | None = None


class Create(NamedTuple):
    """Store a new record (version 1) under ``key``, only if there is none."""

    key: str
    payload: bytes
    accessed_at: float
    expires_at: float
    now: float


class Update(NamedTuple):
    """Replace the record's payload and times, only if it exists at ``expected_version``.

    ``expected_version`` None means any version (last writer wins). ``unlock`` releases the
    lock this token holds, in the same step; ``handle`` is the loaded record's.
    """

    key: str
    payload: bytes
    accessed_at: float
    expires_at: float
    now: float
    expected_version: int | None
    unlock: str | None = None
    handle: object = None


class Touch(NamedTuple):
    """Move the record's ``accessed_at`` and ``expires_at``; payload and version stay."""

    key: str
    accessed_at: float
    expires_at: float
    now: float
    unlock: str | None = None
    handle: object = None


class Unlock(NamedTuple):
    """Release the lock on ``key`` if ``token`` holds it."""

    key: str
    token: str


class Delete(NamedTuple):
    """Remove the record and its lock; a missing one is fine.

    With ``expected_version``, remove it only if it is stored at that version (what a rotation
    does to retire the record it copied: a compare-and-delete). ``handle`` is the loaded
    record's, as on :class:`Update`. The answer says whether a record was removed.
    """

    key: str
    expected_version: int | None = None
    handle: object = None


class ClearExpired(NamedTuple):
    """Remove every record whose ``expires_at`` is at or before ``now``."""

    now: float


class Sleep(NamedTuple):
    """Wait ``seconds`` before the next operation (contention back-off).

    With ``key`` and ``token`` (a lock waiter's), a store that can tell when that session's
    lock is released has its ``wait_released(op)`` wait instead, returning as soon as the lock
    may be ``token``'s to take, at the latest after ``seconds``; any other store is not asked.
    """

    seconds: float
    key: str | None = None
    token: str | None = None


Operation = Load | Create | Update | Touch | Unlock | Delete | ClearExpired | Sleep

#: A session flow: a generator that yields operations, receives their results (checked where
#: received) and returns a T.
Flow = Generator[Operation, object, T]


def wrong_answer(store: str, op: Operation, answer: object) -> StoreError:
    """The error for a store that answered ``op`` with something of the wrong type."""
    return StoreError(store, f"answered {type(answer).__name__} to {type(op).__name__}")
