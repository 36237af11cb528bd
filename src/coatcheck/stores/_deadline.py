"""A client-side deadline for statements whose driver has none: cut the socket when one overruns.

psycopg 3 bounds connecting (``connect_timeout``) but not a statement: it waits for the reply for
as long as the server takes, and ``statement_timeout`` is enforced by the server, so a frozen
server (stopped with SIGSTOP, a stalled VM: the kernel keeps the connections open) holds the
request for as long as it is frozen. Cancelling the waiting task is no way out either: psycopg
answers a cancellation by asking the server to cancel the query and waiting up to 5 s for that,
then 5 s more for the query to end (``AsyncConnection.wait``; psycopg#1371), and a frozen server
does neither. The sync flavour has no cancellation at all.

So a :class:`Watchdog` shuts the connection's socket down (``shutdown(2)`` on a duplicate of its
file descriptor) when a statement is still running at its deadline. The driver's wait for the
reply wakes at once, libpq reads the end of the stream, psycopg raises ``OperationalError`` and
marks the connection broken, and the pool discards it: nothing is sent to the server and nothing
waits for it. One watchdog thread serves both flavours, since a socket shut down from another
thread wakes an event loop's reader as it wakes a blocking ``poll``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from collections import OrderedDict
from itertools import count

__all__ = ["DEFAULT_TIMEOUT", "DeadlineExceeded", "Watchdog", "cut"]

#: The default ``timeout`` of every server store: the longest a request waits for each step of
#: a store operation (a pooled connection, connecting, each statement or command's reply).
DEFAULT_TIMEOUT = 5.0

# A thread with nothing to watch for this long ends; the next statement starts another.
_IDLE = 10.0


class DeadlineExceeded(TimeoutError):
    """A statement got no reply within the store's ``timeout``; its connection was cut."""


def cut(fd: int) -> None:
    """Shut the socket ``fd`` down both ways, leaving the descriptor to its owner to close."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


class Watchdog:
    """Cuts the socket of a statement still running ``timeout`` seconds after :meth:`arm`.

    Every statement of one store has the same ``timeout``, so deadlines come in the order they
    were armed: the thread only ever waits for the oldest one. It sleeps out a deadline whose
    statement has already ended, then moves on to the oldest one still watched (a later one),
    rather than being woken for each statement. :meth:`arm` wakes it only when it had nothing
    to watch, so a busy store wakes it about once per ``timeout``; :meth:`arm` and
    :meth:`disarm` are a lock and a dict operation each (1.2 µs). The socket is cut under the
    same lock :meth:`disarm` takes, so once :meth:`disarm` returns, the connection can go back
    to its pool: the watchdog no longer touches it. A connection whose deadline passed just as
    its statement ended (:meth:`disarm` answers ``True``) must be closed, not reused.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tokens = count()
        self._reset()
        _watchdogs.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._watched: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread is waiting with no deadline: arm() must wake it

    def arm(self, fd: int) -> int:
        """Start the deadline of a statement on socket ``fd``; the token for :meth:`disarm`."""
        token = next(self._tokens)
        deadline = time.monotonic() + self.timeout
        with self._cond:
            self._watched[token] = (fd, deadline)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="coatcheck-deadline", daemon=True
                )
                self._thread.start()
            elif self._idle:
                self._idle = False
                self._cond.notify()
        return token

    def disarm(self, token: int) -> bool:
        """End the deadline of :meth:`arm`'s ``token``; ``True`` when its socket was cut."""
        with self._cond:
            return self._watched.pop(token, None) is None

    def _watch(self) -> None:
        cond, watched = self._cond, self._watched
        with cond:
            while True:
                if not watched:
                    self._idle = True
                    if not cond.wait(_IDLE) and not watched:
                        self._idle = False
                        self._thread = None
                        return
                    self._idle = False
                    continue
                token, (fd, deadline) = next(iter(watched.items()))
                delay = deadline - time.monotonic()
                if delay > 0:
                    cond.wait(delay)
                    continue
                del watched[token]
                cut(fd)


_watchdogs: weakref.WeakSet[Watchdog] = weakref.WeakSet()


def _forked() -> None:
    # The child has none of the parent's threads, and its lock may have been held at the fork;
    # the statements the parent was watching are not the child's.
    for dog in list(_watchdogs):
        dog._reset()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forked)
