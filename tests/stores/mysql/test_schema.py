"""MySQLStore's schema, keys, connections and URLs."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, Load, Record, store_from_url
from coatcheck.stores._sync.mysql import MySQLStore

from .._support import HOUR, NOW, key
from ._raw import connect_raw, query

pytestmark = pytest.mark.server("mysql")


def test_schema_has_exact_columns_and_an_expiry_index(
    store: MySQLStore, raw: pymysql.Connection[Any], table: str
) -> None:
    store.create_tables()  # idempotent
    columns = query(
        raw,
        "SELECT column_name, column_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY column_name",
        table,
    )
    # MariaDB prints a display width for integers (bigint(20)); MySQL 8 does not.
    assert [(n, t.replace("bigint(20)", "bigint"), null) for n, t, null in columns] == [
        ("accessed_at", "double", "NO"),
        ("expires_at", "double", "NO"),
        ("key", "varbinary(64)", "NO"),
        ("lock_expires", "double", "YES"),
        ("lock_token", "varbinary(255)", "YES"),
        ("payload", "longblob", "NO"),
        ("version", "bigint", "NO"),
    ]
    indexes = {(row[2], row[4]) for row in query(raw, f"SHOW INDEX FROM `{table}`")}
    assert ("PRIMARY", "key") in indexes
    assert (f"{table}_expires_idx", "expires_at") in indexes
    engine = query(raw, "SELECT engine FROM information_schema.tables WHERE table_name = %s", table)
    assert engine == [("InnoDB",)]
    store.drop_tables()
    store.drop_tables()  # idempotent
    assert query(raw, "SHOW TABLES LIKE %s", table) == []


def test_keys_compare_exactly(store: MySQLStore) -> None:
    assert store.create(Create("k", b"lower", NOW, NOW + HOUR, NOW))
    assert store.create(Create("K", b"upper", NOW, NOW + HOUR, NOW))
    # A VARCHAR would find "k" for "k " (PAD SPACE collations); VARBINARY does not.
    assert store.load(Load("k ", NOW)) is None
    assert store.create(Create("k ", b"spaced", NOW, NOW + HOUR, NOW))
    record = store.load(Load("k", NOW))
    assert isinstance(record, Record)
    assert record.payload == b"lower"
    for bad in ["", "x" * 65, "ключ", "\x00"]:
        with pytest.raises(ValueError, match="printable ASCII"):
            store.load(Load(bad, NOW))


def test_connections_without_found_rows_are_refused(server: tuple[str, int], table: str) -> None:
    store = MySQLStore(lambda: connect_raw(server), table=table)
    with pytest.raises(ConfigurationError, match="FOUND_ROWS"):
        store.load(Load(key(1), NOW))
    store.close()


def test_urls_are_checked_and_names_carry_no_password() -> None:
    store = MySQLStore.from_url("mariadb://app:s3cret@db.example:3307/main?table=web")
    assert store.name == "mariadb://app@db.example:3307/main?table=web"
    store.close()
    for bad in ("pool_size=0", "read_timeout=soon", "table=a-b", "ssl=1"):
        with pytest.raises(ConfigurationError) as info:
            MySQLStore.from_url(f"mysql://app:s3cret@db.example/main?{bad}")
        assert "s3cret" not in str(info.value)
    with pytest.raises(ConfigurationError):
        MySQLStore.from_url("postgresql://app@db.example/main")
    built = store_from_url("mysql://app@db.example/main?unix_socket=/run/mysqld.sock")
    assert isinstance(built, MySQLStore)
    assert built.name == "mysql://app@/run/mysqld.sock/main?table=coatcheck_sessions"
    built.close()
