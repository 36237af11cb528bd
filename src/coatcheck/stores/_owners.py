"""Connections per owner: a process, and in the asyncio flavour an event loop of that process.

A store that keeps connections keeps them in a :class:`PerOwner`: each owner
(:data:`coatcheck._flavours.Owner`) gets its own set on first use, so a child forked from a
process that had connections open, or a second ``asyncio.run``, opens connections of its own
instead of reading replies meant for someone else. The sets of owners that are gone (the
parent, seen from the child; a closed event loop) are *abandoned*: their sockets are closed in
this process only, without a word to the server, since the parent may still be using the very
same connection (a goodbye such as PostgreSQL's Terminate or MySQL's COM_QUIT would end it for
the parent too), and a closed event loop cannot run a goodbye anyway. Closing a descriptor
that another process also holds sends nothing on the wire; only the last one to close it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Generic, TypeVar

from .._flavours import Owner, owner_gone

__all__ = ["PerOwner", "forget_fd", "forget_transport"]

T = TypeVar("T")


class PerOwner(Generic[T]):
    """One ``T`` per owner, made by ``make()`` on the owner's first :meth:`get`.

    When a new owner appears, the ``T`` of every owner that is gone is handed to
    ``abandon`` (which must not wait on the network) and forgotten. The last owner's ``T`` is
    cached, so :meth:`get` for the same owner again is one comparison.
    """

    def __init__(self, make: Callable[[], T], abandon: Callable[[T], None]) -> None:
        self._make = make
        self._abandon = abandon
        self._all: dict[Owner, T] = {}
        self._last: tuple[Owner, T] | None = None  # one tuple: threads read it whole

    def get(self, owner: Owner) -> T:
        """The ``T`` of ``owner``."""
        last = self._last
        if last is not None and last[0] == owner:
            return last[1]
        found = self._all.get(owner)
        if found is None:
            self.abandon_gone()
            made = self._make()
            # setdefault, not a lock: two threads of a new owner may both get here, and the
            # one that loses drops its fresh T (no connections yet). A lock would deadlock a
            # child forked while another thread held it.
            found = self._all.setdefault(owner, made)
            if found is not made:
                self._abandon(made)
        self._last = (owner, found)
        return found

    def abandon_gone(self) -> None:
        """Abandon the ``T`` of every owner that is gone."""
        for owner, thing in list(self._all.items()):
            if owner_gone(owner) and self._all.pop(owner, None) is not None:
                self._abandon(thing)

    def take_all(self, owner: Owner) -> tuple[T | None, list[T]]:
        """Forget every ``T``: ``owner``'s (or None) and the others', for a close."""
        everything, self._all, self._last = self._all, {}, None
        mine = everything.pop(owner, None)
        return mine, list(everything.values())


def forget_fd(fd: int) -> None:
    """Point this process's descriptor ``fd`` at ``/dev/null``, for a driver that keeps it.

    The socket it was loses this process's reference at once (no data is sent; the server
    sees the connection end only when no process holds it any more), and whatever the driver
    later writes there (a goodbye from its finaliser) goes nowhere. The driver still closes
    ``fd`` itself, so the number is never reused behind its back.
    """
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def forget_transport(transport: asyncio.BaseTransport | None) -> None:
    """Close this process's descriptor of an asyncio transport's socket without its loop.

    The transport's own ``close()`` needs its event loop, which is closed (or another
    process's); closing the socket object sends nothing (no ``shutdown()``). The transport
    is emptied first, so its finaliser neither warns nor closes the descriptor a second time.
    """
    if transport is None:
        return
    # asyncio's private attributes, so that its finalisers (the transport's, the stream
    # writer's) see a closed transport: a selector transport holds the socket in ``_sock`` and
    # answers is_closing() from ``_closing``; an SSL transport wraps one and uses ``_closed``.
    raw: object = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if raw is None:
        raw = transport
    else:
        setattr(transport, "_closed", True)  # noqa: B010
    sock = getattr(raw, "_sock", None)
    if isinstance(sock, socket.socket):
        setattr(raw, "_sock", None)  # noqa: B010
        setattr(raw, "_closing", True)  # noqa: B010
        with contextlib.suppress(OSError):
            sock.close()
