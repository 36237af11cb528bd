"""PostgreSQLStore's round trips: one per operation, and batched cleanup."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import psycopg
import psycopg_pool
import pytest
from psycopg import pq, sql

from coatcheck.stores import (
    ClearExpired,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    Touch,
    Unlock,
    Update,
)
from coatcheck.stores._sync.postgresql import PostgreSQLStore

from .._proxy import TCPProxy
from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("postgresql")


class RoundTrips:
    """Counts a connection's round trips in libpq's protocol trace: one per Sync or Query."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.pgconn.trace(self._file.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def count(self) -> int:
        text = os.pread(self._file.fileno(), 1 << 24, 0).decode(errors="replace")
        messages = (line.split("\t") for line in text.splitlines())
        return sum(1 for m in messages if len(m) > 2 and m[0] == "F" and m[2] in ("Sync", "Query"))


@contextmanager
def traced_store(
    conninfo: str, table: str, prepare_threshold: int | None
) -> Iterator[tuple[PostgreSQLStore, RoundTrips]]:
    """A store on a one-connection pool whose round trips are counted."""
    with tempfile.TemporaryFile() as trace:
        trips = RoundTrips(trace)
        with psycopg_pool.ConnectionPool(
            conninfo,
            min_size=1,
            max_size=1,
            configure=trips.configure,
            kwargs={"autocommit": True, "prepare_threshold": prepare_threshold},
            open=True,
        ) as pool:
            store = PostgreSQLStore(pool, table=table)
            store.create_tables()
            yield store, trips


@pytest.fixture
def traced(
    conninfo: str, table: str, raw: psycopg.Connection[Any]
) -> Iterator[tuple[PostgreSQLStore, RoundTrips]]:
    # Without automatic preparation: preparing costs one extra round trip, once per
    # statement and connection, which would blur the counts of a statement run six times.
    with traced_store(conninfo, table, None) as traced:
        yield traced


@pytest.mark.parametrize("prepare_threshold", [None, 0], ids=["unprepared", "prepared"])
def test_every_operation_is_one_round_trip(
    conninfo: str, table: str, raw: Any, prepare_threshold: int | None
) -> None:
    with traced_store(conninfo, table, prepare_threshold) as (store, trips):
        check_round_trips(store, trips)


def check_round_trips(store: PostgreSQLStore, trips: RoundTrips) -> None:
    fresh = iter(range(1_000_000))
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    operations: dict[str, Callable[[], object]] = {
        "load": lambda: store.load(Load(key("k"), NOW)),
        "load missing": lambda: store.load(Load(key("missing"), NOW)),
        "load + lock": lambda: store.load(Load(key("k"), NOW, LockRequest("a", 30.0))),
        "load + lock, LOCKED": lambda: store.load(Load(key("k"), NOW, LockRequest("b", 30.0))),
        "load + lock, missing": lambda: store.load(
            Load(key("missing"), NOW, LockRequest("a", 30.0))
        ),
        "create": lambda: store.create(Create(key(next(fresh)), b"p", NOW, NOW + HOUR, NOW)),
        "create, collision": lambda: store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW)),
        "update": lambda: store.update(
            Update(key("k"), b"q", NOW, NOW + HOUR, NOW, None, unlock="x")
        ),
        "update, stale": lambda: store.update(Update(key("k"), b"q", NOW, NOW + HOUR, NOW, 10**9)),
        "touch": lambda: store.touch(Touch(key("k"), NOW, NOW + HOUR, NOW, unlock="x")),
        "unlock": lambda: store.unlock(Unlock(key("k"), "x")),
        "delete": lambda: store.delete(Delete(key("missing"))),
        "count": lambda: store.count(NOW),
        "stats": lambda: store.stats(NOW),
    }
    for name, operation in operations.items():
        operation()  # psycopg prepares a statement (one more round trip) on its first use
        before = trips.count()
        operation()
        assert trips.count() - before == 1, name


def test_a_store_from_a_url_takes_one_round_trip_per_operation(
    proxy: TCPProxy, proxied_url: str, raw: Any
) -> None:
    # Through the store's own pool: a checkout costs no round trip, and nothing is sent
    # around a statement (no BEGIN, COMMIT or reset).
    store = PostgreSQLStore.from_url(proxied_url)
    store.create_tables()
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    operations: dict[str, Callable[[], object]] = {
        "load": lambda: store.load(Load(key("k"), NOW)),
        "load + lock": lambda: store.load(Load(key("k"), NOW, LockRequest("a", 30.0))),
        "create": lambda: store.create(Create(key(uuid.uuid4().hex), b"p", NOW, NOW + HOUR, NOW)),
        "update": lambda: store.update(Update(key("k"), b"q", NOW, NOW + HOUR, NOW, None)),
        "touch": lambda: store.touch(Touch(key("k"), NOW, NOW + HOUR, NOW)),
    }
    pool = store._pool
    assert pool is not None
    for name, operation in operations.items():
        # psycopg prepares a statement (a Parse of its own) on its sixth run on each
        # connection; one caller at a time reuses the same connection.
        for _ in range(6):
            operation()
        connections = pool.idle_connections()
        assert len(connections) == 1
        before = proxy.turns
        for _ in range(10):
            operation()
        assert proxy.turns - before == 10, name
        assert pool.idle_connections() == connections
    store.close()


def test_clear_expired_deletes_in_batches(
    traced: tuple[PostgreSQLStore, RoundTrips], raw: psycopg.Connection[Any], table: str
) -> None:
    store, trips = traced
    raw.execute(
        sql.SQL(
            "INSERT INTO {} (key, payload, version, accessed_at, expires_at) "
            "SELECT md5(i::text) || md5(i::text), '\\x00', 1, %s, %s "
            "FROM generate_series(1, 5000) AS i"
        ).format(sql.Identifier(table)),
        (NOW - HOUR, NOW - 1),
    )
    for n in range(10):
        assert store.create(Create(key(n), b"live", NOW, NOW + HOUR, NOW))
    before = trips.count()
    assert store.clear_expired(ClearExpired(NOW)) == 5000
    # Five full batches of 1000, then one that finds nothing left: six short statements.
    assert trips.count() - before == 6
    assert store.count(NOW) == 10
    assert store.stats(NOW).expired == 0
    assert all(isinstance(store.load(Load(key(n), NOW)), Record) for n in range(10))
