"""What the ``coatcheck`` command and its demo share: the default store, opening a store, and
turning every failure into one line that names the cause, the fix and an exit status.

Exit statuses (also in ``coatcheck --help``)::

    0    done
    1    no session with that id (show)
    2    usage or configuration: bad arguments, an unknown store URL, a port out of range
    3    the store failed: its server is down, unreachable, too old, or answered an error
    4    the store's driver is not installed (the message names the extra to install)
    5    the store is not initialised: its table does not exist (run ``coatcheck init``)
    6    the demo cannot listen on the address asked for (port in use, say)
    130  interrupted (Ctrl-C)
    141  the output was closed early (``coatcheck stats | head -1``): one line on stderr says so
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ._sync.driver import store_failure
from .errors import (
    CoatcheckError,
    ConfigurationError,
    StoreError,
    StoreIncompatible,
    StoreUnavailable,
)
from .stores import store_from_url
from .stores.base import Store

__all__ = [
    "DEFAULT_STORE",
    "EPILOG",
    "EXIT_CONFIG",
    "EXIT_DRIVER",
    "EXIT_INTERRUPTED",
    "EXIT_LISTEN",
    "EXIT_NOT_FOUND",
    "EXIT_NOT_INITIALISED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_STORE",
    "CannotListen",
    "MissingDriver",
    "NotInitialised",
    "Refused",
    "call",
    "cannot_listen",
    "closed_pipe",
    "default_store",
    "fail",
    "hint",
    "logging_to",
    "one_line",
    "open_store",
    "safe_url",
    "status",
]

DEFAULT_STORE = "sqlite:///coatcheck-sessions.db"
"""The store of ``coatcheck`` and of its demo when neither ``--store`` nor ``$COATCHECK_STORE``
names one, so that ``coatcheck stats`` after the demo counts the demo's sessions."""

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_CONFIG = 2  # also what argparse uses for a usage error
EXIT_STORE = 3
EXIT_DRIVER = 4
EXIT_NOT_INITIALISED = 5
EXIT_LISTEN = 6
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a filter its reader stopped

T = TypeVar("T")

# The extra that installs each URL scheme's driver (pyproject.toml's optional dependencies).
_EXTRAS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "memcached": "memcached",
}


def default_store() -> str:
    """``$COATCHECK_STORE``, else :data:`DEFAULT_STORE`."""
    return os.environ.get("COATCHECK_STORE") or DEFAULT_STORE


class MissingDriver(CoatcheckError):
    """The store's driver is not installed."""


class NotInitialised(CoatcheckError):
    """The store has no session table yet."""


class Refused(CoatcheckError):
    """The command will not do what was asked (say, drop tables without confirmation)."""


# -- helpers ---------------------------------------------------------------------------------


class CannotListen(CoatcheckError):
    """The demo cannot listen on the address it was given."""


def safe_url(url: str) -> str:
    """``url`` without a password, fit for an error message."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparsable store URL>"


def one_line(text: str) -> str:
    """The first line of ``text``: some drivers add the statement and a caret on more lines."""
    return text.strip().partition("\n")[0].rstrip()


@contextmanager
def open_store(url: str) -> Iterator[Store]:
    """The store for ``url``, closed afterwards; construction failures become coatcheck errors."""
    try:
        store = store_from_url(url)
    except CoatcheckError:
        raise
    except ImportError as exc:
        scheme = url.partition(":")[0].lower()
        module = (exc.name or "?").partition(".")[0]
        extra = _EXTRAS.get(scheme, scheme)
        raise MissingDriver(
            f"the store {safe_url(url)} needs a driver that is not installed "
            f"(no module named {module!r}); install it with: pip install 'coatcheck[{extra}]'"
        ) from exc
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (OSError, TimeoutError)):
            raise StoreUnavailable(safe_url(url), detail) from exc
        raise StoreError(safe_url(url), detail) from exc
    try:
        yield store
    finally:
        # A failing close must not hide the command's own result or error.
        with suppress(Exception):
            store.close()


def _no_table(exc: BaseException) -> bool:
    """Whether a driver's ``exc`` says the session table does not exist."""
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).startswith("no such table")
    if getattr(exc, "sqlstate", None) == "42P01":  # psycopg: undefined_table
        return True
    # PyMySQL and aiomysql: ER_NO_SUCH_TABLE
    args = exc.args
    return type(exc).__name__ == "ProgrammingError" and bool(args) and args[0] == 1146


def call(store: Store, url: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, with a driver exception turned into a coatcheck error: a missing table
    into :class:`NotInitialised`, the rest into StoreError/StoreUnavailable."""
    try:
        return fn(*args)
    except CoatcheckError:
        raise
    except Exception as exc:
        if _no_table(exc):
            raise NotInitialised(
                f"the store {store.name} has no session table yet; "
                f"create it with: coatcheck init --store '{safe_url(url)}'"
            ) from exc
        error = store_failure(store, exc)
        raise error from exc


def cannot_listen(host: str, port: int, exc: OSError) -> CannotListen:
    """The error for a demo server that could not bind ``host:port``."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return CannotListen(f"cannot listen on {where}: unknown host {host!r}; pass --host")
    if exc.errno == errno.EADDRINUSE:
        fix = "stop what listens there, or pass another --port (0 picks a free one)"
        return CannotListen(f"cannot listen on {where}: the port is already in use; {fix}")
    if exc.errno == errno.EACCES:
        fix = "pass a --port above 1023 (ports below need privileges)"
        return CannotListen(f"cannot listen on {where}: permission denied; {fix}")
    if exc.errno == errno.EADDRNOTAVAIL:
        fix = "pass a --host of this machine, such as 127.0.0.1"
        return CannotListen(f"cannot listen on {where}: no such address here; {fix}")
    return CannotListen(f"cannot listen on {where}: {exc.strerror or exc}")


@contextmanager
def logging_to(stream: IO[str], level: int) -> Iterator[None]:
    """Send log records of ``level`` and above to ``stream`` while a command runs.

    Only when nothing configured logging already (an embedding program or pytest did): without
    it, Python's last-resort handler would print every driver's retry warnings (psycopg's pool
    reconnecting, say) around the one-line error this command prints.
    """
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)  # also for drivers that set their own logger's level (psycopg)
    handler.setFormatter(logging.Formatter("coatcheck: %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def status(exc: CoatcheckError) -> int:
    """The exit status for a failure (the table in ``--help``)."""
    if isinstance(exc, MissingDriver):
        return EXIT_DRIVER
    if isinstance(exc, NotInitialised):
        return EXIT_NOT_INITIALISED
    if isinstance(exc, CannotListen):
        return EXIT_LISTEN
    if isinstance(exc, StoreError):
        return EXIT_STORE
    if isinstance(exc, (ConfigurationError, Refused)):
        return EXIT_CONFIG
    return EXIT_NOT_FOUND


def hint(exc: CoatcheckError) -> str:
    """What to do about a store error whose message does not say it already."""
    if isinstance(exc, StoreIncompatible):
        return ""
    if isinstance(exc, StoreUnavailable):
        return "; is the server running at that address? start it, or pass another --store"
    return ""


def fail(err: IO[str], message: str, code: int) -> int:
    """Write ``coatcheck: message`` as one line on ``err``; return ``code``."""
    try:
        err.write(f"coatcheck: {message}\n")
        err.flush()
    except BrokenPipeError:
        return closed_pipe()
    return code


def closed_pipe(err: IO[str] | None = None) -> int:
    """The reader of stdout (or, without ``err``, of stderr) went away: say so in one line on
    ``err`` when it is still open, print nothing more, and let no flush at exit fail again
    (Python would print "Exception ignored ... BrokenPipeError")."""
    if err is not None:
        # stderr is another stream: still the terminal in `coatcheck stats | head -1`.
        with suppress(OSError, ValueError):
            err.write(
                "coatcheck: output closed early (the program reading it stopped, as head does);"
                " the rest was not written\n"
            )
            err.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        # A stream that is not a real file (a test's capture) is not flushed at exit anyway.
        with suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return EXIT_PIPE


EPILOG = f"""\
--store defaults to $COATCHECK_STORE, else {DEFAULT_STORE}, for the demo too: `coatcheck stats`
after the demo counts the demo's sessions.

exit status:
  0    done
  1    no session with that id (show)
  2    usage or configuration error (bad arguments, unknown store URL, port out of range)
  3    the store failed: its server is down, unreachable, too old, or answered an error
  4    the store's driver is not installed (the message names the extra to install)
  5    the store is not initialised: run `coatcheck init --store URL` first
  6    the demo cannot listen on that address (port in use, say)
  130  interrupted
  141  the output was closed early (`coatcheck stats | head -1`); one line on stderr says so
"""
