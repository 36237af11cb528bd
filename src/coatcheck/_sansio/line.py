"""Who takes a session's lock next, across processes: the request that has waited longest.

A lock taken by polling alone is unfair: whoever polls just after a release wins, so under load
a request that came early can lose to later ones until its ``lock_wait`` runs out. (Within one
process, :mod:`coatcheck._gates` already queues requests; this is the order among processes.)

Each lock has one more slot beside its holder: *next*, the waiter that has waited longest, with
when it began to wait (``since``) and when it last asked (``seen``). A ``load`` that takes the
lock (see :func:`decide`) claims the slot when it finds the lock taken and the slot empty,
stale, its own, or held by a waiter that began later; and it takes a free lock only when the
slot is empty, stale or its own. So once the longest waiter has asked once, no later request
can take the lock before it: nobody starves. The slot is one record's worth of state, not a
queue, so every store can keep it in the same atomic step as the lock itself; the cost is a gap:
right after the next waiter takes the lock, the slot is empty until another waiter asks again
(within one back-off pause, at most 50 ms), and a newcomer that asks in that gap and finds the
lock free takes it.

A waiter that stops asking (its process died, its request gave up without the
:class:`~coatcheck._sansio.ops.Unlock` that clears its claim) goes stale after
:data:`STALE_AFTER` seconds without asking and is skipped.
"""

from __future__ import annotations

from typing import NamedTuple

from .ops import LockRequest

__all__ = ["STALE_AFTER", "Next", "decide"]

#: Seconds after its last ask when a claim on the next turn no longer counts. Waiters ask at
#: least every 50 ms (``contention.LAST_PAUSE``), so this is 20 missed asks.
STALE_AFTER = 1.0


class Next(NamedTuple):
    """The waiter whose turn is next: its token, when it began waiting, when it last asked."""

    token: str
    since: float
    seen: float


def decide(
    holder: str | None, waiting: Next | None, lock: LockRequest, now: float
) -> tuple[bool, Next | None]:
    """For a load that asks for ``lock`` at ``now``: whether it takes the lock, and what the
    *next* slot holds afterwards.

    ``holder``: the token holding the lock, None when it is free or its holder's time is up.
    ``waiting``: the slot as stored (None when empty).
    """
    if holder == lock.token:
        return True, waiting  # the holder asking again (it may load twice): nothing moves
    since = now if lock.since is None else lock.since
    ours = (
        waiting is None
        or waiting.token == lock.token
        or waiting.seen <= now - STALE_AFTER
        or since < waiting.since
    )
    if not ours:
        return False, waiting  # a longer waiter is next: wait behind it, change nothing
    if holder is None:
        return True, None  # taken: the slot is free for whoever asks next
    return False, Next(lock.token, since, now)
