"""The PostgreSQL store's connections in coatcheck's own pool (:mod:`._pool`), asyncio flavour.

:meth:`AsyncPostgreSQLStore.from_url` keeps its connections in an
:class:`~coatcheck.stores._async._pool.AsyncPool`, as the MySQL store does, rather than in
psycopg_pool's: a connection is opened by the request that needs one, in its own task (or
thread, in the generated sync twin), so no worker runs in the background. psycopg_pool's
worker, still opening a connection when a short event loop ended, swallowed the loop's
cancellation and hung ``asyncio.run`` (psycopg#1345; Django's async tests run a loop per call,
in a thread of its own). This module holds the pool's connection-specific steps: open one
(:func:`connect`), is it alive, close it, abandon it, was it lost.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Generator
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg

from .._owners import forget_fd

__all__ = ["NotConnected", "abandon", "alive", "close", "connect", "lost"]

_Conn = psycopg.AsyncConnection[Any]
_Y = TypeVar("_Y")
_R = TypeVar("_R")

# libpq's connect_timeout counts whole seconds, at least 2, but a request waits for a
# connection only ``pool_timeout`` (0.5 s, say). psycopg resumes its connection generator at
# least every 0.1 s (its _WAIT_INTERVAL), in either flavour, so a wrapper around the generator
# stops it at the deadline, in the caller's own task or thread. psycopg's connect() takes no
# such argument; the deadline reaches the generator through this variable.
_CONNECT_BY: ContextVar[float] = ContextVar("coatcheck_postgresql_connect_by", default=math.inf)


class NotConnected(psycopg.OperationalError):
    """No connection could be opened for the pool, so the statement was never sent."""


def _by(gen: Generator[_Y, Any, _R], deadline: float) -> Generator[_Y, Any, _R]:
    try:
        request = next(gen)
        while True:
            ready = yield request
            if time.monotonic() >= deadline:
                gen.close()  # the half-open PGconn goes with it (its finaliser frees it)
                raise psycopg.errors.ConnectionTimeout("connection timeout expired")
            request = gen.send(ready)
    except StopIteration as stop:
        done: _R = stop.value
        return done


class _BoundedConnection(psycopg.AsyncConnection[Any]):
    """A connection whose opening stops at the deadline in :data:`_CONNECT_BY`."""

    @classmethod
    def _connect_gen(cls, conninfo: str = "", **kwargs: Any) -> Any:
        # psycopg's hook for subclasses; kwargs, since psycopg 3.2 passes a timeout, 3.3 none.
        return _by(super()._connect_gen(conninfo, **kwargs), _CONNECT_BY.get())


async def connect(conninfo: str, within: float) -> _Conn:
    """A new connection in autocommit mode, opened within ``within`` seconds.

    Raises :class:`NotConnected` (its ``__cause__`` psycopg's error) when none could be.
    """
    deadline = _CONNECT_BY.set(time.monotonic() + within)
    try:
        return await _BoundedConnection.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise NotConnected(str(exc)) from exc
    finally:
        _CONNECT_BY.reset(deadline)


def alive(conn: _Conn) -> bool:
    """Whether an idle connection may be reused, told without a round trip.

    One the server closed is found by its first statement instead, and clears the idle ones
    (:func:`lost`).
    """
    return not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def close(conn: _Conn) -> None:
    """Close a connection (libpq's ``finish()``: its Terminate is sent, never waited for)."""
    with contextlib.suppress(psycopg.Error, OSError):
        await conn.close()


def abandon(conn: _Conn) -> None:
    """Forget a connection of another process or of a closed event loop, sending nothing.

    ``close()`` would send its Terminate, which ends it for the parent too. libpq owns the
    socket, so its descriptor is pointed at /dev/null first; then ``finish()`` frees the
    connection and its Terminate goes nowhere.
    """
    if conn.closed:
        return
    with contextlib.suppress(psycopg.Error):  # no socket left: nothing to forget
        forget_fd(conn.pgconn.socket)
    conn.pgconn.finish()


def lost(conn: _Conn, exc: BaseException) -> bool:
    """Whether the connection itself is gone (a dead socket, or one the watchdog cut)."""
    return conn.broken or conn.closed
