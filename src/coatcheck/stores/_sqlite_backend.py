"""The blocking SQLite work behind ``SQLiteStore`` and ``AsyncSQLiteStore``: SQL and connections.

Every contract operation is one statement in autocommit mode (SQLite 3.35+ ``RETURNING``), so
there is no read-then-write window and no explicit transaction that could hit
``SQLITE_BUSY_SNAPSHOT``; waiting for another writer is SQLite's busy handler (``timeout``). The
file is put in WAL mode, so readers never block the one writer and several processes can share it.

Connections come from a small pool: sqlite3 connections are not meant to be used by two threads at
once, and a pool (unlike ``threading.local``) stays bounded when a server starts a thread per
request. A pool inherited through ``fork()`` is abandoned in the child, never used or closed there
(https://www.sqlite.org/howtocorrupt.html#_carrying_an_open_database_connection_across_a_fork_).

The async store first runs each per-session operation on the event loop through :attr:`inline`
(``stores/_async/_blocking.py``), on a second pool of connections made never to wait: busy
timeout 0, so a write lock held elsewhere raises ``SQLITE_BUSY`` at once and the operation is
made again in a worker thread with the normal ``timeout``; automatic checkpoints off, so a commit
on the loop never copies the WAL back or calls ``fsync`` (in WAL mode ``synchronous = NORMAL``
syncs only at checkpoints, https://www.sqlite.org/pragma.html#pragma_synchronous). The bound:
**an inline operation waits on no lock and calls no fsync**; it runs one statement (a locking
load: two, the second a read) through the page cache. The rest runs in the thread: opening a
connection (which may set WAL mode or recover the WAL), every 100th write (on a normal
connection, which checkpoints once the WAL has passed 1000 pages), ``clear_expired``, ``stats``,
the schema, closing. A file that is not in WAL mode gets no inline operations.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from .._flavours import WouldBlock
from ..errors import ConfigurationError
from . import _sql
from .base import (
    LOCKED,
    ClearExpired,
    Create,
    Delete,
    Load,
    LoadResult,
    Record,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["DEFAULT_TABLE", "SQLiteDatabase", "SQLiteUnavailable", "check_identifier"]

DEFAULT_TABLE = "coatcheck_sessions"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# Rows deleted per statement by clear_expired: each batch is its own short write transaction,
# so writers of live sessions wait for one batch at most, never for the whole purge.
_BATCH = 1000

# Idle connections kept per store; more are opened under load and closed when returned.
_MAX_IDLE = 16
# Idle inline connections: one per event loop using the store at the same instant.
_MAX_INLINE = 4
# Every this many inline writes, one goes to the thread, whose connection checkpoints when the
# WAL has passed wal_autocheckpoint (1000 pages): at a few pages a write, it stays under ~1400.
_CHECKPOINT_EVERY = 100

# Primary result codes (https://www.sqlite.org/rescode.html) that describe the environment, not
# the SQL: BUSY, LOCKED (another connection holds the lock), NOMEM, READONLY, IOERR, FULL,
# CANTOPEN, PROTOCOL. Python 3.10 has no ``sqlite_errorcode``: there, the codes' messages.
_UNAVAILABLE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
_MESSAGE_CODES = {
    "database is locked": 5,
    "database table is locked": 6,
    "out of memory": 7,
    "attempt to write a readonly database": 8,
    "disk i/o error": 10,
    "database or disk is full": 13,
    "unable to open database file": 14,
    "locking protocol": 15,
}

# Connections inherited through fork(): kept referenced so they are never finalised (closed) in
# the child, which could disturb the parent's locks on the same file.
_INHERITED: list[sqlite3.Connection] = []


class SQLiteUnavailable(sqlite3.OperationalError):
    """The database file is busy past the timeout, unreadable, read-only, full or failing I/O.

    Raised in place of the ``sqlite3.OperationalError`` that describes such a condition (the
    original is the ``__cause__``), so a store can list it in ``unavailable_errors`` while SQL
    errors such as "no such table" (``create_tables()`` never ran) stay plain store errors.
    """


def _code(exc: sqlite3.Error) -> int:
    # The primary code: the extended ones (BUSY_RECOVERY, IOERR_FSYNC...) keep it in the low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    message = str(exc).lower()
    return next((c for m, c in _MESSAGE_CODES.items() if message.startswith(m)), 1)


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe SQL identifier, else raise ConfigurationError."""
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise ConfigurationError(f"table name {name!r} must match [A-Za-z_][A-Za-z0-9_]{{0,62}}")
    return name


class SQLiteDatabase:
    """One SQLite file and table, the contract's operations as blocking methods (and inline)."""

    def __init__(self, path: str | os.PathLike[str], table: str, timeout: float) -> None:
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise ConfigurationError(
                f"SQLiteStore needs SQLite 3.35 or newer (for RETURNING); this Python links "
                f"SQLite {sqlite3.sqlite_version}"
            )
        self.path = os.fspath(path)
        if self.path == "" or self.path == ":memory:" or self.path.startswith("file:"):
            raise ConfigurationError(
                "SQLiteStore needs a database file that every process can open; "
                "use MemoryStore for an in-process store"
            )
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ConfigurationError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
        self.table = check_identifier(table)
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._inline_idle: list[sqlite3.Connection] = []
        # Inline connections not taken back: closing one may checkpoint (the last connection to
        # a WAL file does), so the next thread call closes them.
        self._retired: list[sqlite3.Connection] = []
        self._inline_wanted = False  # an inline attempt found none idle: the thread opens one
        self._inline_writes = 0
        self._wal = True  # False once the file would not go into WAL mode: no inline then
        self._pid = os.getpid()
        # Bumped by close(): a connection handed out before is closed when it comes back.
        self._generation = 0
        names = {"t": f'"{self.table}"', "index": f'"{self.table}_expires_at"'}
        self._sql = {name: template.format(**names) for name, template in _SQL.items()}
        self.inline = _Inline(self)

    # -- connections -------------------------------------------------------------------------

    def _open(self, inline: bool = False) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so each statement is its own transaction and the
        # module never opens one implicitly. check_same_thread=False: the pool hands a
        # connection to one thread at a time, but not always the same thread.
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._wal = self._wal and str(mode).lower() == "wal"
            if inline:
                conn.execute("PRAGMA busy_timeout = 0")
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def connection(self, inline: bool = False, write: bool = False) -> Iterator[sqlite3.Connection]:
        """Borrow a pooled connection; environment failures become :class:`SQLiteUnavailable`.
        ``inline``: an inline one, or :class:`WouldBlock` (module docstring: when)."""
        stock, retired = False, list[sqlite3.Connection]()
        with self._lock:
            if self._pid != os.getpid():
                _INHERITED.extend(self._idle + self._inline_idle + self._retired)
                self._idle, self._inline_idle, self._retired = [], [], []
                self._pid = os.getpid()
            generation = self._generation
            if not inline:
                conn = self._idle.pop() if self._idle else None
                stock, self._inline_wanted = self._inline_wanted, False
                retired, self._retired = self._retired, []
            else:
                self._inline_writes += write
                if self._inline_writes >= _CHECKPOINT_EVERY:
                    self._inline_writes = 0
                    raise WouldBlock("this write goes to the thread, which may checkpoint")
                if not self._inline_idle or not self._wal:
                    self._inline_wanted = self._wal
                    raise WouldBlock("no inline connection is open")
                conn = self._inline_idle.pop()
        try:
            for old in retired:
                old.close()
            if conn is None:
                conn = self._open()
            if stock:
                self._release(self._open(inline=True), generation, inline=True)
            yield conn
        except sqlite3.Error as exc:
            if conn is not None and conn.in_transaction:
                conn.rollback()
            code = _code(exc) if isinstance(exc, sqlite3.OperationalError) else 1
            if inline and code in (5, 6):  # BUSY, LOCKED
                # The statement rolled back, so the thread can make it again, waiting its turn.
                raise WouldBlock(str(exc)) from exc
            if code in _UNAVAILABLE_CODES:
                raise SQLiteUnavailable(str(exc)) from exc
            raise
        finally:
            if conn is not None:
                self._release(conn, generation, inline)

    def _release(self, conn: sqlite3.Connection, generation: int, inline: bool) -> None:
        pool = self._inline_idle if inline else self._idle
        with self._lock:
            keep = generation == self._generation and self._pid == os.getpid()
            keep = keep and len(pool) < (_MAX_INLINE if inline else _MAX_IDLE)
            keep = keep and not conn.in_transaction
            if keep:
                pool.append(conn)
            elif inline:
                self._retired.append(conn)
        if not keep and not inline:
            conn.close()

    def close(self) -> None:
        """Close the idle connections; ones in use are closed when they are returned."""
        with self._lock:
            idle = self._idle + self._inline_idle + self._retired
            self._idle, self._inline_idle, self._retired = [], [], []
            self._generation += 1
            inherited = self._pid != os.getpid()
        if inherited:
            _INHERITED.extend(idle)
            return
        for conn in idle:
            conn.close()

    # -- schema ------------------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create the table and its expiry index if they do not exist."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(self._sql["create_table"])
            conn.execute(self._sql["create_index"])
            conn.execute("COMMIT")

    def drop_tables(self) -> None:
        """Drop the table (and with it the index) if it exists."""
        with self.connection() as conn:
            conn.execute(self._sql["drop_table"])

    # -- the contract (``inline``: on an inline connection, for :class:`_Inline`) -------------

    def load(self, op: Load, inline: bool = False) -> LoadResult:
        """See the store contract; without a lock this is exactly one SELECT."""
        key, now, lock = op.key, op.now, op.lock
        with self.connection(inline, lock is not None) as conn:
            if lock is None:
                row = conn.execute(self._sql["load"], (key,)).fetchone()
            else:
                row = _one(
                    conn.execute(
                        self._sql["load_locking"],
                        {"key": key, "token": lock.token, "until": now + lock.ttl, "now": now},
                    )
                )
                if row is None:
                    # Either no record or another holder: only this tells the two apart. (The
                    # UPDATE changed nothing, so a WouldBlock here can still be retried.)
                    exists = conn.execute(self._sql["exists"], (key,)).fetchone() is not None
                    return LOCKED if exists else None
        if row is None:
            return None
        # As SQLite's dynamic typing read them: the core checks each field's type and value.
        return Record(*row)

    def create(self, op: Create, inline: bool = False) -> bool:
        """Insert-if-absent; False when the key exists."""
        row = (op.key, op.payload, op.accessed_at, op.expires_at)
        with self.connection(inline, True) as conn:
            cursor = conn.execute(self._sql["create"], row)
            return cursor.rowcount == 1

    def update(self, op: Update, inline: bool = False) -> int | None:
        """Compare-and-set update; the new version, or None."""
        with self.connection(inline, True) as conn:
            row = _one(conn.execute(self._sql["update"], _sql.update_params(op)))
        return None if row is None else int(row[0])

    def touch(self, op: Touch, inline: bool = False) -> bool:
        """Move the times only; False when there is no record."""
        with self.connection(inline, True) as conn:
            return conn.execute(self._sql["touch"], _sql.touch_params(op)).rowcount > 0

    def unlock(self, op: Unlock, inline: bool = False) -> None:
        """Release the lock if ``op.token`` holds it."""
        with self.connection(inline, True) as conn:
            conn.execute(self._sql["unlock"], (op.key, op.token))

    def delete(self, op: Delete, inline: bool = False) -> bool:
        """Remove the row (and with it the lock), at ``expected_version`` when given."""
        with self.connection(inline, True) as conn:
            params = {"key": op.key, "expected": op.expected_version}
            return conn.execute(self._sql["delete"], params).rowcount > 0

    def clear_expired(self, op: ClearExpired) -> int:
        """Delete expired rows in batches of 1000; the number deleted."""
        now, removed = op.now, 0
        with self.connection() as conn:
            while True:
                n = conn.execute(self._sql["clear_batch"], (now, _BATCH)).rowcount
                removed += n
                if n < _BATCH:
                    return removed

    def stats(self, now: float) -> StoreStats:
        """Live and expired rows and payload bytes, in one scan."""
        with self.connection() as conn:
            total, live, size = conn.execute(self._sql["stats"], (now,)).fetchone()
        return StoreStats(int(live), int(total) - int(live), int(size))


class _Inline:
    """:class:`SQLiteDatabase`'s per-session operations on its inline connections."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.load = partial(db.load, inline=True)
        self.create = partial(db.create, inline=True)
        self.update = partial(db.update, inline=True)
        self.touch = partial(db.touch, inline=True)
        self.unlock = partial(db.unlock, inline=True)
        self.delete = partial(db.delete, inline=True)


def _one(cursor: sqlite3.Cursor) -> tuple[Any, ...] | None:
    # A RETURNING statement finishes (and commits) only when its rows are exhausted.
    rows = cursor.fetchall()
    return tuple(rows[0]) if rows else None


# Statement templates: {t} and {index} are filled in once with quoted, validated identifiers;
# values always travel as parameters.
_SQL: dict[str, str] = {
    "create_table": (
        "CREATE TABLE IF NOT EXISTS {t} ( key TEXT PRIMARY KEY NOT NULL, payload BLOB NOT NULL,"
        " version INTEGER NOT NULL, accessed_at REAL NOT NULL, expires_at REAL NOT NULL,"
        " lock_token TEXT NULL, lock_expires REAL NULL)"
    ),
    "create_index": "CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at)",
    "drop_table": "DROP TABLE IF EXISTS {t}",
    "load": "SELECT payload, version, accessed_at, expires_at FROM {t} WHERE key = ?",
    "load_locking": (
        "UPDATE {t} SET lock_token = :token, lock_expires = :until WHERE key = :key"
        " AND (lock_token IS NULL OR lock_token = :token OR lock_expires <= :now)"
        " RETURNING payload, version, accessed_at, expires_at"
    ),
    "exists": "SELECT 1 FROM {t} WHERE key = ?",
    "create": (
        "INSERT INTO {t} (key, payload, version, accessed_at, expires_at)"
        " VALUES (?, ?, 1, ?, ?) ON CONFLICT (key) DO NOTHING"
    ),
    # SET expressions see the row as it was, so both CASEs test the old lock_token; the lock
    # is released only by its holder and only when the WHERE clause matched (the write
    # itself succeeded).
    "update": (
        "UPDATE {t} SET payload = :payload, accessed_at = :accessed_at,"
        " expires_at = :expires_at, version = version + 1,"
        " lock_token = CASE WHEN lock_token = :unlock THEN NULL ELSE lock_token END,"
        " lock_expires = CASE WHEN lock_token = :unlock THEN NULL ELSE lock_expires END"
        " WHERE key = :key AND (:expected IS NULL OR version = :expected) RETURNING version"
    ),
    "touch": (
        "UPDATE {t} SET accessed_at = :accessed_at, expires_at = :expires_at,"
        " lock_token = CASE WHEN lock_token = :unlock THEN NULL ELSE lock_token END,"
        " lock_expires = CASE WHEN lock_token = :unlock THEN NULL ELSE lock_expires END"
        " WHERE key = :key"
    ),
    "unlock": (
        "UPDATE {t} SET lock_token = NULL, lock_expires = NULL WHERE key = ? AND lock_token = ?"
    ),
    "delete": "DELETE FROM {t} WHERE key = :key AND (:expected IS NULL OR version = :expected)",
    "clear_batch": (
        "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= ? LIMIT ?)"
    ),
    "stats": (
        "SELECT count(*), coalesce(sum(expires_at > ?), 0),"
        " coalesce(sum(length(payload)), 0) FROM {t}"
    ),
}
