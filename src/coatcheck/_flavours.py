"""The few primitives that differ between the asyncio and the blocking flavour, side by side.

Code under an ``_async`` folder calls the ``async_*`` names and ``Async*`` classes;
``scripts/unasync.py`` turns each into its partner when it generates the ``_sync`` twin (its
rules ``async_<name>`` -> ``sync_<name>`` and ``Async<Name>`` -> ``<Name>``). Everything else
the two flavours share is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeAlias, TypeVar

__all__ = [
    "AsyncBell",
    "AsyncSlots",
    "Bell",
    "Owner",
    "Slots",
    "WouldBlock",
    "async_owner",
    "async_run_blocking",
    "async_run_inline_first",
    "async_sleep",
    "owner_gone",
    "sync_owner",
    "sync_run_blocking",
    "sync_run_inline_first",
    "sync_sleep",
]

P = ParamSpec("P")
T = TypeVar("T")

# -- who may use a connection ------------------------------------------------------------------
#
# A connection belongs to the process that opened it and, in the asyncio flavour, to the event
# loop it was opened on: after fork() the parent and the child would read each other's replies
# from one socket, and an asyncio stream answers only on its own loop. The owner is checked on
# every checkout, so the process id is kept current by an at-fork hook (a dict lookup) instead
# of asking the kernel each time (os.getpid() is a system call, 0.2 µs here). The hook runs
# for os.fork() and multiprocessing, and for servers that fork from C and then call
# PyOS_AfterFork_Child() as the C API requires (uWSGI does).

#: The process and, in the asyncio flavour, the event loop that may use a connection.
Owner: TypeAlias = "tuple[int, asyncio.AbstractEventLoop | None]"

_process = {"pid": os.getpid()}


def _forked() -> None:
    _process["pid"] = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forked)


def async_owner() -> Owner:
    """This process and the running event loop."""
    return (_process["pid"], asyncio.get_running_loop())


def sync_owner() -> Owner:
    """This process (any of its threads)."""
    return (_process["pid"], None)


def owner_gone(owner: Owner) -> bool:
    """Whether ``owner`` is another process (the parent, seen from a forked child) or a closed
    event loop: its connections can never be used here again."""
    pid, loop = owner
    return pid != _process["pid"] or (loop is not None and loop.is_closed())


async def async_run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (file or SQLite I/O) in a worker thread, never on the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def sync_run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` directly: sync code may block."""
    return fn(*args, **kwargs)


class WouldBlock(Exception):
    """An inline attempt (:func:`async_run_inline_first`) stopped because it would have to wait.

    Raised before the attempt changed anything, so the same call can be made again in a thread.
    """


async def async_run_inline_first(
    inline: Callable[P, T], blocking: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Try ``inline`` on the event loop; if it raises :class:`WouldBlock`, run ``blocking`` in a
    worker thread (:func:`async_run_blocking`).

    ``inline`` must be known to be short: it never waits for a lock, a busy file or an
    ``fsync``, and raises :class:`WouldBlock` (having changed nothing) where it would. A worker
    thread costs about 40-60 µs per call here (two thread wake-ups), several times a small
    SQLite statement, so the common case is kept off it.
    """
    try:
        return inline(*args, **kwargs)
    except WouldBlock:
        pass  # outside the handler, so an error of the blocking call is not chained to it
    return await asyncio.to_thread(blocking, *args, **kwargs)


def sync_run_inline_first(
    inline: Callable[P, T], blocking: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Call ``blocking`` directly: sync code may block, so there is nothing to try first."""
    return blocking(*args, **kwargs)


async def async_sleep(seconds: float) -> None:
    """Wait without blocking the event loop."""
    await asyncio.sleep(seconds)


def sync_sleep(seconds: float) -> None:
    """Block for ``seconds``."""
    time.sleep(seconds)


# -- a closable counting semaphore with a timeout ---------------------------------------------
#
# The pools (stores/_async/_pool.py) check a connection out and back in around every
# operation, so this is on the hot path of each MySQL statement. threading.Semaphore costs
# about 1.5 µs per acquire and release (timeit, CPython 3.11): it takes a Condition, written in
# Python, both times. Slots takes one plain lock (about 0.2 µs) and touches its Condition only
# to wait or to wake a waiter. Closing wakes every waiter, which then gets False at once
# rather than at its timeout.


class AsyncSlots:
    """At most ``size`` holders at a time among the tasks of one event loop.

    :meth:`acquire` waits at most ``timeout`` seconds for a slot and returns False when none
    came free in time or the slots are closed; :meth:`release` gives one back.
    """

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)
        self._closed = False

    async def acquire(self, timeout: float) -> bool:
        """Take a slot (see the class docstring)."""
        # No early test for close: once closed, the semaphore is never locked (close() adds a
        # slot that each waiter hands on), so the test below answers at once.
        if self._free.locked():
            try:
                await _within(self._free.acquire(), timeout)
            except asyncio.TimeoutError:
                return False
        else:
            await self._free.acquire()  # a free slot: returns at once, with no timer to arm
        if self._closed:
            # Woken by close() or by a release after it: hand the wake-up on to the next waiter.
            self._free.release()
            return False
        return True

    def release(self) -> None:
        """Give a slot back."""
        self._free.release()

    def close(self) -> None:
        """Refuse every later :meth:`acquire` and wake those waiting."""
        self._closed = True
        # One extra release wakes the first waiter, which hands it on (acquire). The count
        # no longer matters: closed slots are never handed out.
        self._free.release()


class Slots:
    """:class:`AsyncSlots` shared by threads: :meth:`acquire` blocks."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._waiting = 0
        self._closed = False

    def acquire(self, timeout: float) -> bool:
        """Take a slot (see :class:`AsyncSlots`)."""
        with self._lock:
            if self._closed or (self._free <= 0 and not self._wait(timeout)):
                return False
            self._free -= 1
            return True

    def _wait(self, timeout: float) -> bool:
        # Called holding the lock; returns holding it, true when a slot is free to take.
        deadline = time.monotonic() + timeout
        self._waiting += 1
        try:
            while self._free <= 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._returned.wait(remaining)
                if self._closed:
                    return False
            return True
        finally:
            self._waiting -= 1

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self._free += 1
            if self._waiting:
                self._returned.notify()

    def close(self) -> None:
        """Refuse every later :meth:`acquire` and wake those waiting."""
        with self._lock:
            self._closed = True
            self._returned.notify_all()


# -- a waiter's doorbell -------------------------------------------------------------------------


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncBell:
    """One waiter's doorbell: :meth:`wait` returns at :meth:`ring` (from any thread or event
    loop) or after its timeout. A ring with nobody waiting is lost: waiters must time out."""

    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def arm(self) -> None:
        """Get ready to be rung: call before the state that a ring signals is checked."""
        self._loop = loop = asyncio.get_running_loop()
        self._future = loop.create_future()

    async def wait(self, timeout: float) -> None:
        """Wait for a ring since :meth:`arm`, at most ``timeout`` seconds."""
        loop, future = self._loop, self._future
        if loop is None or future is None:
            return
        timer = loop.call_later(timeout, _settle, future)
        try:
            await future
        finally:
            timer.cancel()

    def ring(self) -> None:
        """Wake the waiter, if one is waiting."""
        loop, future = self._loop, self._future
        if loop is not None and future is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody to wake
                loop.call_soon_threadsafe(_settle, future)


class Bell:
    """:class:`AsyncBell` for threads."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def arm(self) -> None:
        """Get ready to be rung (see :class:`AsyncBell`)."""
        self._event.clear()

    def wait(self, timeout: float) -> None:
        """Wait for a ring since :meth:`arm`, at most ``timeout`` seconds."""
        self._event.wait(timeout)

    def ring(self) -> None:
        """Wake the waiter, if one is waiting."""
        self._event.set()


if sys.version_info >= (3, 11):

    async def _within(work: Awaitable[Any], timeout: float) -> Any:
        """Await ``work`` for at most ``timeout`` seconds (``asyncio.TimeoutError`` after)."""
        async with asyncio.timeout(timeout):
            return await work

else:

    async def _within(work: Awaitable[Any], timeout: float) -> Any:
        """Await ``work`` for at most ``timeout`` seconds (``asyncio.TimeoutError`` after)."""
        return await asyncio.wait_for(work, timeout)
