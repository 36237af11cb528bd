"""What the SQL stores share: names, URL options, every statement PostgreSQL and MySQL run,
and the parameters of those statements (SQLite's too).

The statement text for both dialects lives here, next to each other, so the two schemas and
their one-round-trip tricks can be read and compared in one place. Statements are templates:
``{table}`` (and ``{index}``) are filled in once per store with a quoted, validated identifier;
values always travel as driver parameters (``%(name)s``, which psycopg and PyMySQL both use).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import unquote, urlsplit

from ..errors import ConfigurationError
from .base import Create, Load, LockRequest, Touch, Update

__all__ = [
    "CLEAR_BATCH",
    "DEFAULT_TABLE",
    "MYSQL",
    "POSTGRESQL",
    "Option",
    "PoolTimeout",
    "Statements",
    "check_key",
    "create_params",
    "describe",
    "lock_params",
    "split_table",
    "touch_params",
    "update_params",
    "url_options",
]

DEFAULT_TABLE = "coatcheck_sessions"

# Rows deleted per statement by clear_expired: each batch is its own short transaction, so a
# table with millions of expired rows never holds its locks for long.
CLEAR_BATCH = 1000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


def split_table(table: str) -> tuple[str, ...]:
    """Validate ``table`` or ``schema.table`` and return its parts.

    Parts are letters, digits and underscores, at most 48 characters each (PostgreSQL names
    the expiry index after the table, within its 63-character limit).
    """
    parts = tuple(table.split("."))
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ConfigurationError(
            f"table name {table!r} must be 'name' or 'schema.name', each part of letters, "
            "digits and underscores (at most 48), not starting with a digit"
        )
    return parts


def check_key(key: str) -> None:
    """Refuse keys no SQL column here can hold exactly (the core always sends 64 hex digits)."""
    if not (0 < len(key) <= 64 and key.isascii() and key.isprintable()):
        raise ValueError("store keys are 1 to 64 printable ASCII characters")


# The parameters of the statements below (and of SQLite's, which name them alike), from the
# operation each statement carries out.


def _written(op: Create | Update | Touch) -> dict[str, object]:
    check_key(op.key)
    return {"key": op.key, "accessed_at": op.accessed_at, "expires_at": op.expires_at}


def create_params(op: Create) -> dict[str, object]:
    """The parameters of ``Statements.create``."""
    return {**_written(op), "payload": op.payload}


def update_params(op: Update) -> dict[str, object]:
    """The parameters of ``Statements.update``."""
    return {
        **_written(op),
        "payload": op.payload,
        "expected": op.expected_version,
        "unlock": op.unlock,
    }


def touch_params(op: Touch) -> dict[str, object]:
    """The parameters of ``Statements.touch``."""
    return {**_written(op), "unlock": op.unlock}


def lock_params(op: Load, lock: LockRequest) -> dict[str, object]:
    """The parameters of ``Statements.lock`` (and ``load``) for a load that takes ``lock``."""
    check_key(op.key)
    return {"key": op.key, "token": lock.token, "until": op.now + lock.ttl, "now": op.now}


class PoolTimeout(TimeoutError):
    """No pooled connection became free within the pool's timeout."""


Option = int | float | str


def url_options(
    url: str, schemes: tuple[str, ...], known: Mapping[str, type[Option]]
) -> tuple[dict[str, Option], list[tuple[str, str]]]:
    """Split a store URL's query string into coatcheck's options and the rest.

    ``known`` maps option names to ``int``, ``float`` or ``str``; numbers must be positive. A
    bad value raises :class:`~coatcheck.errors.ConfigurationError` naming the option (never the
    URL, which may hold a password). The rest come back as ``(name, value)`` with the value
    still percent-encoded, so a driver that decodes them itself sees them exactly as given.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        raise ConfigurationError(f"expected a {' or '.join(schemes)} URL, got {parts.scheme!r}")
    ours: dict[str, Option] = {}
    rest: list[tuple[str, str]] = []
    for pair in filter(None, parts.query.split("&")):
        raw_name, _, raw_value = pair.partition("=")
        name, value = unquote(raw_name), unquote(raw_value)
        kind = known.get(name)
        if kind is None:
            rest.append((name, raw_value))
        elif kind is str:
            ours[name] = value
        else:
            try:
                number = kind(value)
            except ValueError:
                raise ConfigurationError(
                    f"store URL option {name}={value!r} is not {kind.__name__}"
                ) from None
            if not (isinstance(number, (int, float)) and number > 0):
                raise ConfigurationError(f"store URL option {name} must be positive")
            ours[name] = number
    return ours, rest


def describe(
    scheme: str,
    user: str | None,
    host: str | None,
    port: int | str | None,
    database: str | None,
    table: str,
) -> str:
    """A store ``name`` like ``postgresql://app@db:5432/main?table=sessions``, never a password."""
    where = f"{user}@" if user else ""
    where += host or ""
    where += f":{port}" if port else ""
    return f"{scheme}://{where}/{database or ''}?table={table}"


@dataclass(frozen=True, slots=True)
class Statements:
    """The statement templates of one SQL dialect; each store documents how it reads results."""

    schema: tuple[str, ...]  # create_tables(), in order; idempotent
    drop: str
    load: str
    # Takes the per-session lock. PostgreSQL: and returns the record in the same statement;
    # MySQL (an UPDATE cannot return rows there): ``load`` follows, in the same request.
    lock: str
    create: str
    update: str
    touch: str
    unlock: str
    delete: str
    clear_batch: str
    count: str
    stats: str

    def render(self, **identifiers: str) -> Statements:
        """Fill in ``{table}`` and friends with already quoted, validated identifiers."""
        return Statements(
            tuple(t.format(**identifiers) for t in self.schema),
            *(getattr(self, f.name).format(**identifiers) for f in fields(self)[1:]),
        )


# Column "key" is the contract's key (64 hex digits); TEXT COLLATE "C" compares bytes, which
# is both exact and the cheapest comparison PostgreSQL has.
POSTGRESQL = Statements(
    schema=(
        """
        CREATE TABLE IF NOT EXISTS {table} (
            key TEXT COLLATE "C" PRIMARY KEY,
            payload BYTEA NOT NULL,
            version BIGINT NOT NULL,
            accessed_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            lock_token TEXT,
            lock_expires DOUBLE PRECISION
        )""",
        "CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at)",
    ),
    drop="DROP TABLE IF EXISTS {table}",
    load="SELECT payload, version, accessed_at, expires_at FROM {table} WHERE key = %(key)s",
    # One statement: take the lock when free, expired or ours; the second branch only runs
    # when nothing was taken and tells "locked by another" (a row with got = false) from
    # "missing" (no row). A LOCKED outcome writes nothing.
    lock="""
        WITH taken AS (
            UPDATE {table} SET lock_token = %(token)s, lock_expires = %(until)s
            WHERE key = %(key)s
              AND (lock_token IS NULL OR lock_token = %(token)s OR lock_expires <= %(now)s)
            RETURNING payload, version, accessed_at, expires_at
        )
        SELECT true AS got, payload, version, accessed_at, expires_at FROM taken
        UNION ALL
        SELECT false, NULL, NULL, NULL, NULL FROM {table}
        WHERE key = %(key)s AND NOT EXISTS (SELECT FROM taken)""",
    create="""
        INSERT INTO {table} (key, payload, version, accessed_at, expires_at)
        VALUES (%(key)s, %(payload)s, 1, %(accessed_at)s, %(expires_at)s)
        ON CONFLICT (key) DO NOTHING""",
    update="""
        UPDATE {table} SET payload = %(payload)s, accessed_at = %(accessed_at)s,
            expires_at = %(expires_at)s, version = version + 1,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END
        WHERE key = %(key)s
          AND (%(expected)s::bigint IS NULL OR version = %(expected)s::bigint)
        RETURNING version""",
    touch="""
        UPDATE {table} SET accessed_at = %(accessed_at)s, expires_at = %(expires_at)s,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END
        WHERE key = %(key)s""",
    unlock="""
        UPDATE {table} SET lock_token = NULL, lock_expires = NULL
        WHERE key = %(key)s AND lock_token = %(token)s""",
    delete="""
        DELETE FROM {table} WHERE key = %(key)s
          AND (%(expected)s::bigint IS NULL OR version = %(expected)s::bigint)""",
    # SKIP LOCKED: a batch never waits behind a request that is writing an expired row.
    clear_batch="""
        DELETE FROM {table} WHERE key IN (
            SELECT key FROM {table} WHERE expires_at <= %(now)s
            LIMIT %(limit)s FOR UPDATE SKIP LOCKED)""",
    count="SELECT count(*) FROM {table} WHERE expires_at > %(now)s",
    stats="""
        SELECT count(*) FILTER (WHERE expires_at > %(now)s),
               count(*) FILTER (WHERE expires_at <= %(now)s),
               coalesce(sum(octet_length(payload)), 0)
        FROM {table}""",
)

# VARBINARY rather than an ascii_bin VARCHAR: binary strings compare exactly, while every
# MySQL/MariaDB VARCHAR collation but the NO PAD ones ignores trailing spaces ('k' = 'k ').
# MySQL numbers "changed" rows, so connections need CLIENT.FOUND_ROWS for touch to see a row
# whose times did not move; LAST_INSERT_ID(expr) hands the new version back in the OK packet.
MYSQL = Statements(
    schema=(
        """
        CREATE TABLE IF NOT EXISTS {table} (
            `key` VARBINARY(64) NOT NULL,
            payload LONGBLOB NOT NULL,
            version BIGINT NOT NULL,
            accessed_at DOUBLE NOT NULL,
            expires_at DOUBLE NOT NULL,
            lock_token VARBINARY(255) NULL,
            lock_expires DOUBLE NULL,
            PRIMARY KEY (`key`),
            KEY {index} (expires_at)
        ) ENGINE=InnoDB""",
    ),
    drop="DROP TABLE IF EXISTS {table}",
    load="SELECT payload, version, accessed_at, expires_at FROM {table} WHERE `key` = %(key)s",
    # Then ``load``, sent with it as one multi-statement request: the UPDATE's row count says
    # whether the lock is ours (the row may still be missing); a LOCKED outcome writes nothing.
    lock="""
        UPDATE {table} SET lock_token = %(token)s, lock_expires = %(until)s
        WHERE `key` = %(key)s
          AND (lock_token IS NULL OR lock_token = %(token)s OR lock_expires <= %(now)s)""",
    # A plain INSERT: a duplicate key is an error (1062) the store turns into False. INSERT
    # IGNORE would also hide truncation, and ON DUPLICATE KEY UPDATE reports 1 row under
    # FOUND_ROWS whether it inserted or not.
    create="""
        INSERT INTO {table} (`key`, payload, version, accessed_at, expires_at)
        VALUES (%(key)s, %(payload)s, 1, %(accessed_at)s, %(expires_at)s)""",
    # Assignments run left to right in MySQL: lock_token reads its old value, version is last.
    update="""
        UPDATE {table} SET payload = %(payload)s, accessed_at = %(accessed_at)s,
            expires_at = %(expires_at)s,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END,
            version = LAST_INSERT_ID(version + 1)
        WHERE `key` = %(key)s AND (%(expected)s IS NULL OR version = %(expected)s)""",
    touch="""
        UPDATE {table} SET accessed_at = %(accessed_at)s, expires_at = %(expires_at)s,
            lock_token = CASE WHEN lock_token = %(unlock)s THEN NULL ELSE lock_token END
        WHERE `key` = %(key)s""",
    unlock="""
        UPDATE {table} SET lock_token = NULL, lock_expires = NULL
        WHERE `key` = %(key)s AND lock_token = %(token)s""",
    delete="""
        DELETE FROM {table} WHERE `key` = %(key)s
          AND (%(expected)s IS NULL OR version = %(expected)s)""",
    clear_batch="DELETE FROM {table} WHERE expires_at <= %(now)s LIMIT %(limit)s",
    count="SELECT COUNT(*) FROM {table} WHERE expires_at > %(now)s",
    stats="""
        SELECT COALESCE(SUM(expires_at > %(now)s), 0), COALESCE(SUM(expires_at <= %(now)s), 0),
               COALESCE(SUM(LENGTH(payload)), 0)
        FROM {table}""",
)
