"""A session store in one SQLite file: the embedded default, safe for several processes.

The SQL and the connection handling live in :mod:`coatcheck.stores._sqlite_backend`; in the async
flavour this class runs a per-session operation on the event loop when it cannot wait for a lock
or an ``fsync`` (that module's docstring states the bound) and hands the rest to a worker thread
(``_blocking.py``).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from ..._flavours import async_run_blocking
from ...errors import ConfigurationError
from .._sqlite_backend import DEFAULT_TABLE, SQLiteDatabase, SQLiteUnavailable
from ._blocking import AsyncBlockingStore

__all__ = ["AsyncSQLiteStore"]


class AsyncSQLiteStore(AsyncBlockingStore):
    """Sessions in a table of an SQLite database file (WAL mode, one statement per operation).

    :param path: the database file; created on first use. Every process must see the same file
        on a local filesystem (SQLite's locking does not work over most network filesystems).
    :param table: the table name (letters, digits and ``_``); call :meth:`create_tables` once.
    :param timeout: seconds to wait for another writer before the store reports itself
        unavailable.

    A read without the per-session lock is exactly one ``SELECT``; every write is one statement
    (``UPDATE ... RETURNING``), so there is no transaction to retry. ``unavailable_errors`` is
    :class:`~coatcheck.stores._sqlite_backend.SQLiteUnavailable`: a file that stays locked past
    ``timeout``, cannot be opened, is read-only or full, or fails I/O. Other sqlite3 errors, such
    as a missing table, are mistakes in the setup and surface as plain store errors.
    """

    unavailable_errors: tuple[type[BaseException], ...] = (SQLiteUnavailable,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 5.0,
    ) -> None:
        self._db = self._backend = SQLiteDatabase(path, table, timeout)
        self.path = self._db.path
        self.table = self._db.table
        self.name = f"sqlite:///{self.path} (table {self.table})"

    @classmethod
    def from_url(cls, url: str) -> AsyncSQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``.

        Options: ``?table=name`` and ``?timeout=seconds``.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != "sqlite" or parts.netloc or not parts.path.startswith("/"):
            raise ConfigurationError(
                f"not an SQLite URL: {url!r}; use sqlite:///relative.db or sqlite:////abs/path.db"
            )
        path = unquote(parts.path[1:])
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        unknown = set(options) - {"table", "timeout"}
        if unknown:
            raise ConfigurationError(
                f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}; known: table, timeout"
            )
        timeout = 5.0
        if "timeout" in options:
            try:
                timeout = float(options["timeout"])
            except ValueError:
                raise ConfigurationError(
                    f"timeout must be a number of seconds, not {options['timeout']!r}"
                ) from None
        return cls(path, table=options.get("table", DEFAULT_TABLE), timeout=timeout)

    async def create_tables(self) -> None:
        """Create the table and its index on ``expires_at``; does nothing if they exist."""
        await async_run_blocking(self._db.create_tables)

    async def drop_tables(self) -> None:
        """Drop the table and its index; does nothing if they do not exist."""
        await async_run_blocking(self._db.drop_tables)
