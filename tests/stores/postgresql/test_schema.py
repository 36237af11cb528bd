"""PostgreSQLStore's schema, keys and URLs."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, Load, Record, store_from_url
from coatcheck.stores._sync.postgresql import PostgreSQLStore

from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("postgresql")


def test_schema_has_exact_columns_and_an_expiry_index(
    store: PostgreSQLStore, raw: psycopg.Connection[Any], table: str
) -> None:
    store.create_tables()  # idempotent
    columns = raw.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = %s",
        (table,),
    ).fetchall()
    assert sorted(columns) == [
        ("accessed_at", "double precision", "NO"),
        ("expires_at", "double precision", "NO"),
        ("key", "text", "NO"),
        ("lock_expires", "double precision", "YES"),
        ("lock_token", "text", "YES"),
        ("payload", "bytea", "NO"),
        ("version", "bigint", "NO"),
    ]
    indexes = [
        d for (d,) in raw.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))
    ]
    assert any(d.startswith("CREATE UNIQUE INDEX") and d.endswith("(key)") for d in indexes)
    assert any(d.endswith("USING btree (expires_at)") for d in indexes)
    store.drop_tables()
    store.drop_tables()  # idempotent
    assert raw.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)


def test_a_schema_qualified_table_works(conninfo: str, table: str, raw: Any) -> None:
    store = PostgreSQLStore.from_url(f"{conninfo}?table=public.{table}")
    try:
        store.create_tables()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        assert isinstance(store.load(Load(key(1), NOW)), Record)
    finally:
        store.close()


def test_keys_the_column_cannot_hold_are_refused(store: PostgreSQLStore) -> None:
    for bad in ["", "\x00", "x" * 65, "ключ"]:
        with pytest.raises(ValueError, match="printable ASCII"):
            store.load(Load(bad, NOW))
    # Case and trailing spaces matter: keys compare byte for byte.
    assert store.create(Create("k", b"lower", NOW, NOW + HOUR, NOW))
    assert store.create(Create("K", b"upper", NOW, NOW + HOUR, NOW))
    assert store.load(Load("k ", NOW)) is None


def test_urls_are_checked_and_names_carry_no_password() -> None:
    store = PostgreSQLStore.from_url("postgresql://app:s3cret@db.example:6543/main?table=web")
    assert store.name == "postgresql://app@db.example:6543/main?table=web"
    assert store.table == "web"
    store.close()
    for bad in ("pool_size=0", "pool_size=ten", "pool_timeout=-1", "table=a;b", "nosuch=1"):
        with pytest.raises(ConfigurationError) as info:
            PostgreSQLStore.from_url(f"postgresql://app:s3cret@db.example/main?{bad}")
        assert "s3cret" not in str(info.value)
    with pytest.raises(ConfigurationError):
        PostgreSQLStore.from_url("mysql://app@db.example/main")
    with pytest.raises(ConfigurationError):
        PostgreSQLStore()
    built = store_from_url("postgres://app@db.example/main")
    assert isinstance(built, PostgreSQLStore)
    built.close()


def test_workers_creating_the_tables_at_once_all_succeed(
    conninfo: str, table: str, raw: psycopg.Connection[Any]
) -> None:
    # Every worker of a server creates the tables on its first request. Without the
    # advisory lock, two CREATE TABLE IF NOT EXISTS could both find no table and one failed
    # with UniqueViolation on pg_type_typname_nsp_index.
    import threading

    for attempt in range(8):
        name = f"{table}_{attempt}"
        stores = [PostgreSQLStore.from_url(f"{conninfo}?table={name}") for _ in range(8)]
        barrier = threading.Barrier(len(stores))
        errors: list[BaseException] = []

        def create(
            store: PostgreSQLStore,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                store.create_tables()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for store in stores:
            store.close()
        raw.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        assert errors == []
