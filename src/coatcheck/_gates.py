"""Turns at one session's lock among the requests of one process, in arrival order.

In ``lock`` mode a request that finds the session locked polls the store until the lock is free,
with growing pauses. Polling alone is unfair: whoever polls just after a release wins, so under
load a request that arrived early can keep losing to later ones until its ``lock_wait`` runs out
(64 clients holding a session for 50 ms each: a few percent answered ``SessionLocked`` after
10 s, although the queued work was 3.2 s). A gate queues a process's requests for one session
key first: only the one whose turn it is asks the store for the lock, and when it is done (its
save or abandon released the lock) the next one in line goes at once, woken rather than
polling. Across processes the store's lock still decides, so each process's head of the line
competes with the other processes' heads: a few requests, not all of them.

A turn is held until :meth:`AsyncGate.leave` (the manager's save or abandon). A request that
never gets there (its task was dropped) does not block the line forever: after ``hold``
seconds (the lock's own timeout) the next in line takes over, as the store lets it take over
the lock itself.

:class:`AsyncGate` serves coroutines on any number of event loops and threads; :class:`Gate`
serves threads. Both start empty in a forked child (the parent's waiters are not there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from .errors import SessionLocked

__all__ = ["AsyncGate", "Gate", "Turn"]


class Turn:
    """One request's place at one session key's gate."""

    __slots__ = ("deadline", "key", "wake")

    def __init__(self, key: str, wake: Any) -> None:
        self.key = key
        self.wake = wake  # how to wake its waiter: an Event, or (loop, future)
        self.deadline = 0.0  # while it holds the turn: when the next may take over


class _Line:
    __slots__ = ("holder", "waiting")

    def __init__(self) -> None:
        self.holder: Turn | None = None
        self.waiting: deque[Turn] = deque()


_gates: weakref.WeakSet[_Base] = weakref.WeakSet()


class _Base:
    """The queue of turns by key, under one threading lock (cheap: a dict operation or two)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        # Holders' deadlines are on the clock the store's lock expiry is on (the manager's:
        # tests freeze it); how long a waiter has waited is on the monotonic clock.
        self._clock = clock
        self._mutex = threading.Lock()
        self._lines: dict[str, _Line] = {}
        _gates.add(self)

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._lines = {}

    def _join(self, turn: Turn, hold: float) -> bool:
        """Queue ``turn``; True when it holds the turn at once."""
        with self._mutex:
            line = self._lines.get(turn.key)
            if line is None:
                line = self._lines[turn.key] = _Line()
            holder = line.holder
            if holder is None or (not line.waiting and holder.deadline <= self._clock()):
                line.holder = turn
                turn.deadline = self._clock() + hold
                return True
            line.waiting.append(turn)
            return False

    def _promote(self, key: str, line: _Line, hold: float) -> Turn | None:
        # Under the mutex: the next waiter holds the turn now; the caller wakes it.
        nxt = line.waiting.popleft() if line.waiting else None
        line.holder = nxt
        if nxt is None:
            del self._lines[key]
        else:
            nxt.deadline = self._clock() + hold
        return nxt

    def _leave(self, turn: Turn, hold: float) -> Turn | None:
        """Give up ``turn`` (held or still waiting); the turn that holds the line next."""
        with self._mutex:
            line = self._lines.get(turn.key)
            if line is None:
                return None
            if line.holder is turn:
                return self._promote(turn.key, line, hold)
            if turn in line.waiting:
                line.waiting.remove(turn)
            return None

    def _overdue(self, turn: Turn, hold: float) -> Turn | None:
        """A waiter's wait ran into its holder's deadline: that holder is dropped, the next
        (usually ``turn``) holds the line; None when the holder is not overdue after all."""
        with self._mutex:
            line = self._lines.get(turn.key)
            if line is None or line.holder is None or line.holder.deadline > self._clock():
                return None
            return self._promote(turn.key, line, hold)

    def _pause(self, key: str, give_up: float, wait: float) -> float:
        """How long a waiter for ``key`` may sleep: until it gives up (monotonic) or its
        holder's deadline (clock), whichever comes first; SessionLocked once it gave up."""
        left = give_up - time.monotonic()
        if left <= 0:
            raise SessionLocked(f"another request held the session lock for over {wait} s")
        with self._mutex:
            line = self._lines.get(key)
            holder = line.holder if line is not None else None
            if holder is not None:
                left = min(left, holder.deadline - self._clock())
        return max(left, 0.001)

    def holds(self, turn: Turn) -> bool:
        with self._mutex:
            line = self._lines.get(turn.key)
            return line is not None and line.holder is turn


class AsyncGate(_Base):
    """Turns for coroutines (see the module docstring)."""

    async def enter(self, key: str, wait: float, hold: float) -> Turn:
        """Wait for ``key``'s turn, at most ``wait`` seconds (then SessionLocked)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        turn = Turn(key, (loop, future))
        if self._join(turn, hold):
            return turn
        give_up = time.monotonic() + wait
        try:
            while not self.holds(turn):
                pause = self._pause(key, give_up, wait)
                try:
                    await asyncio.wait_for(asyncio.shield(future), pause)
                except asyncio.TimeoutError:  # not the builtin one on Python 3.10
                    self._wake(self._overdue(turn, hold))
        except BaseException:
            self._wake(self._leave(turn, hold))
            raise
        return turn

    def leave(self, turn: Turn, hold: float) -> None:
        """Give the turn up (the lock is released, or was never taken)."""
        self._wake(self._leave(turn, hold))

    @staticmethod
    def _wake(turn: Turn | None) -> None:
        if turn is None:
            return
        loop, future = turn.wake

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        with contextlib.suppress(RuntimeError):  # its loop is closed: that request is gone
            loop.call_soon_threadsafe(settle)


class Gate(_Base):
    """Turns for threads (see the module docstring)."""

    def enter(self, key: str, wait: float, hold: float) -> Turn:
        """Wait for ``key``'s turn, at most ``wait`` seconds (then SessionLocked)."""
        turn = Turn(key, threading.Event())
        if self._join(turn, hold):
            return turn
        give_up = time.monotonic() + wait
        try:
            while not self.holds(turn):
                if not turn.wake.wait(self._pause(key, give_up, wait)):
                    self._wake(self._overdue(turn, hold))
        except BaseException:
            self._wake(self._leave(turn, hold))
            raise
        return turn

    def leave(self, turn: Turn, hold: float) -> None:
        """Give the turn up (the lock is released, or was never taken)."""
        self._wake(self._leave(turn, hold))

    @staticmethod
    def _wake(turn: Turn | None) -> None:
        if turn is not None:
            turn.wake.set()


def _after_fork() -> None:
    for gate in list(_gates):
        gate._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
