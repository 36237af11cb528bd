"""SQLiteStore beyond the contract: processes and threads on one file, statement counts, schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from coatcheck.errors import ConfigurationError
from coatcheck.stores import (
    ClearExpired,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    SQLiteStore,
    Touch,
    Update,
    store_from_url,
)
from coatcheck.stores._sqlite_backend import SQLiteUnavailable

from ._support import HOUR, NOW, key
from ._workers import counter_in_threads, run_cas_processes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "sessions.db")
    s.create_tables()
    yield s
    s.close()  # its pooled connections: unclosed, Python 3.13 warns (ResourceWarning)


def statements_of(store: SQLiteStore) -> list[str]:
    """Start recording every statement the store's (single, pooled) connection runs."""
    seen: list[str] = []
    with store._db.connection() as conn:
        conn.set_trace_callback(seen.append)
    return seen


def test_four_processes_incrementing_one_session_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteStore(path)
    store.create_tables()
    assert store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))
    store.close()

    run_cas_processes(f"sqlite:///{path}", key("counter"), processes=4, n=250, now=NOW)

    record = store.load(Load(key("counter"), NOW))
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"1000", 1001)
    store.close()
    with closing(sqlite3.connect(path)) as conn:  # (a bare `with` would leave it open)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_threads_sharing_one_store_lose_nothing(store: SQLiteStore) -> None:
    assert counter_in_threads(store, threads=8, n=100).payload == b"800"


def test_file_is_in_wal_mode_with_an_expiry_index(store: SQLiteStore) -> None:
    with closing(sqlite3.connect(store.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (store.table,)
        ).fetchall()
        assert ("coatcheck_sessions_expires_at",) in indexes
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT key FROM coatcheck_sessions WHERE expires_at <= 1 LIMIT 5"
        ).fetchall()
        assert any("coatcheck_sessions_expires_at" in str(row[-1]) for row in plan)


def test_a_read_only_load_is_one_select_and_writes_nothing(store: SQLiteStore) -> None:
    assert store.create(Create(key(1), b"data", NOW, NOW + HOUR, NOW))
    seen = statements_of(store)
    with store._db.connection() as conn:
        changes = conn.total_changes
    assert isinstance(store.load(Load(key(1), NOW)), Record)
    assert store.load(Load(key("missing"), NOW)) is None
    assert len(seen) == 2
    assert all(s.startswith("SELECT ") for s in seen), seen
    with store._db.connection() as conn:
        assert conn.total_changes == changes


def test_each_write_is_one_statement(store: SQLiteStore) -> None:
    assert store.create(Create(key(1), b"data", NOW, NOW + HOUR, NOW))
    seen = statements_of(store)
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 30))), Record)
    assert store.update(Update(key(1), b"new", NOW, NOW + HOUR, NOW, 1, unlock="a")) == 2
    assert store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
    assert store.create(Create(key(2), b"x", NOW, NOW + HOUR, NOW))
    store.delete(Delete(key(2)))
    assert [s.split()[0] for s in seen] == ["UPDATE", "UPDATE", "UPDATE", "INSERT", "DELETE"]
    # Only a lock refused tells LOCKED from missing with a second statement.
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 30))), Record)
    del seen[:]
    store.load(Load(key(1), NOW, LockRequest("b", 30)))
    assert [s.split()[0] for s in seen] == ["UPDATE", "SELECT"]


def test_create_and_drop_tables_are_idempotent(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", table="other_table")
    store.create_tables()
    store.create_tables()
    assert store.create(Create(key(1), b"kept", NOW, NOW + HOUR, NOW))
    store.create_tables()
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    assert record.payload == b"kept"
    store.drop_tables()
    store.drop_tables()
    with closing(sqlite3.connect(store.path)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    store.create_tables()
    assert store.load(Load(key(1), NOW)) is None
    store.close()


def test_clear_expired_deletes_in_batches_of_1000(store: SQLiteStore) -> None:
    for n in range(5000):
        assert store.create(Create(key(f"dead-{n}"), b"x", NOW - 100, NOW - 1, NOW - 100))
    for n in range(10):
        assert store.create(Create(key(f"live-{n}"), b"x", NOW, NOW + HOUR, NOW))
    seen = statements_of(store)
    assert store.clear_expired(ClearExpired(NOW)) == 5000
    assert [s.split()[0] for s in seen] == ["DELETE"] * 6  # 5 full batches, 1 empty
    assert store.count(NOW) == 10
    assert store.stats(NOW).expired == 0
    assert isinstance(store.load(Load(key("live-3"), NOW)), Record)


def test_a_missing_table_is_a_plain_error_not_unavailability(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "never-initialised.db")
    with pytest.raises(sqlite3.OperationalError, match="no such table") as caught:
        store.load(Load(key(1), NOW))
    assert not isinstance(caught.value, store.unavailable_errors)
    store.close()


def test_a_database_locked_past_the_timeout_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", timeout=0.05)
    store.create_tables()
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(SQLiteUnavailable, match="locked"):
            store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        assert isinstance(SQLiteUnavailable("x"), store.unavailable_errors)
    finally:
        other.rollback()
        other.close()
    # The pool is still usable once the other writer is gone.
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    store.close()


def test_from_url_paths_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = SQLiteStore.from_url("sqlite:///relative.db")
    assert relative.path == "relative.db"
    assert relative.name == "sqlite:///relative.db (table coatcheck_sessions)"
    absolute = store_from_url(f"sqlite:///{tmp_path}/abs.db?table=my_sessions&timeout=1.5")
    assert isinstance(absolute, SQLiteStore)
    assert (absolute.path, absolute.table) == (f"{tmp_path}/abs.db", "my_sessions")
    assert absolute._db.timeout == 1.5
    absolute.create_tables()
    assert absolute.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert (tmp_path / "abs.db").exists()
    absolute.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db?table=bad-name",
        "sqlite:///x.db?table=1abc",
        "sqlite:///x.db?table=" + "a" * 64,
        "sqlite:///x.db?table=t%3B%20DROP%20TABLE%20x",
        "sqlite:///x.db?tabel=x",
        "sqlite:///x.db?timeout=soon",
        "sqlite:///x.db?timeout=-1",
        "sqlite://host/x.db",
        "sqlite:///:memory:",
        "sqlite://",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteStore.from_url(url)
