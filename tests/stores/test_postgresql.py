"""PostgreSQLStore beyond the contract: schema, round trips, batched cleanup, pools, outages."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import psycopg
import psycopg_pool
import pytest
from psycopg import pq, sql

from coatcheck.errors import ConfigurationError
from coatcheck.stores import (
    LOCKED,
    ClearExpired,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    Touch,
    Unlock,
    Update,
    store_from_url,
)
from coatcheck.stores._async.postgresql import AsyncPostgreSQLStore
from coatcheck.stores._sync.postgresql import PostgreSQLStore
from tests.support.servers import require_server

from ._proxy import TCPProxy
from ._workers import run_cas_processes

pytestmark = pytest.mark.server("postgresql")

NOW = float(int(time.time()))
HOUR = 3600.0


def key(n: int | str) -> str:
    return hashlib.sha256(f"postgresql-{n}".encode()).hexdigest()


@pytest.fixture
def server() -> tuple[str, int]:
    return require_server("postgresql")


@pytest.fixture
def table() -> str:
    return f"cc_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def conninfo(server: tuple[str, int]) -> str:
    return f"postgresql://postgres@{server[0]}:{server[1]}/test"


@pytest.fixture
def raw(conninfo: str, table: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain connection for looking behind the store; drops the test's table at the end."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


@pytest.fixture
def store(conninfo: str, table: str, raw: psycopg.Connection[Any]) -> Iterator[PostgreSQLStore]:
    s = PostgreSQLStore.from_url(f"{conninfo}?table={table}")
    s.create_tables()
    yield s
    s.close()


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
    server: tuple[str, int], table: str, raw: Any
) -> None:
    # Through the store's psycopg_pool: a checkout costs no round trip, and nothing is sent
    # around a statement (no BEGIN, COMMIT or reset).
    with TCPProxy(server) as relay:
        store = PostgreSQLStore.from_url(
            f"postgresql://postgres@127.0.0.1:{relay.port}/test?table={table}"
        )
        store.create_tables()
        assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
        operations: dict[str, Callable[[], object]] = {
            "load": lambda: store.load(Load(key("k"), NOW)),
            "load + lock": lambda: store.load(Load(key("k"), NOW, LockRequest("a", 30.0))),
            "create": lambda: store.create(
                Create(key(uuid.uuid4().hex), b"p", NOW, NOW + HOUR, NOW)
            ),
            "update": lambda: store.update(Update(key("k"), b"q", NOW, NOW + HOUR, NOW, None)),
            "touch": lambda: store.touch(Touch(key("k"), NOW, NOW + HOUR, NOW)),
        }
        pool = store._source
        assert isinstance(pool, psycopg_pool.ConnectionPool)
        for name, operation in operations.items():
            # psycopg prepares a statement (a Parse of its own) on its sixth run on each
            # connection, and the pool hands its connections out in turn.
            for _ in range(6 * 5):
                operation()
            connections = pool.get_stats()["pool_size"]
            assert connections <= 5
            before = relay.turns
            for _ in range(10):
                operation()
            assert relay.turns - before == 10, name
            assert pool.get_stats()["pool_size"] == connections
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


def test_a_pool_passed_in_stays_open(conninfo: str, table: str, raw: Any) -> None:
    with psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=2, open=True) as pool:
        store = PostgreSQLStore(pool, table=table)
        store.create_tables()
        assert store.create(Create(key(1), b"kept", NOW, NOW + HOUR, NOW))
        store.close()
        assert not pool.closed
        again = PostgreSQLStore(pool, table=table)
        record = again.load(Load(key(1), NOW))
        assert isinstance(record, Record)
        assert record.payload == b"kept"
        # That pool's connections are not in autocommit mode: the store switched each one
        # for its statement and back, and its writes were committed.
        with pool.connection() as conn:
            assert conn.autocommit is False
        count = raw.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        assert count.fetchone() == (1,)


@pytest.mark.asyncio
async def test_an_async_pool_passed_in_stays_open(conninfo: str, table: str, raw: Any) -> None:
    async with psycopg_pool.AsyncConnectionPool(
        conninfo, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    ) as pool:
        store = AsyncPostgreSQLStore(pool, table=table)
        await store.create_tables()
        assert await store.create(Create(key(1), b"kept", NOW, NOW + HOUR, NOW))
        await store.aclose()
        assert not pool.closed
        record = await AsyncPostgreSQLStore(pool, table=table).load(Load(key(1), NOW))
        assert isinstance(record, Record)


def test_a_store_built_from_a_url_closes_its_own_pool(store: PostgreSQLStore) -> None:
    assert store.load(Load(key(1), NOW)) is None
    store.close()
    with pytest.raises(psycopg_pool.PoolClosed):
        store.load(Load(key(1), NOW))


def test_a_connection_factory_gets_one_connection_per_operation(
    conninfo: str, table: str, raw: psycopg.Connection[Any]
) -> None:
    made: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        made.append(psycopg.connect(conninfo))  # not in autocommit mode
        return made[-1]

    store = PostgreSQLStore(connect=connect, table=table)
    assert table in store.name
    store.create_tables()
    assert store.create(Create(key(1), b"one", NOW, NOW + HOUR, NOW))
    assert store.update(Update(key(1), b"two", NOW, NOW + HOUR, NOW, 1)) == 2
    store.close()
    assert len(made) == 3
    assert all(conn.closed for conn in made)
    row = raw.execute(sql.SQL("SELECT payload FROM {}").format(sql.Identifier(table))).fetchone()
    assert row == (b"two",)


def test_a_schema_qualified_table_works(conninfo: str, table: str, raw: Any) -> None:
    store = PostgreSQLStore.from_url(f"{conninfo}?table=public.{table}")
    try:
        store.create_tables()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        assert isinstance(store.load(Load(key(1), NOW)), Record)
    finally:
        store.close()


def test_threads_racing_for_the_lock_let_exactly_one_in(store: PostgreSQLStore) -> None:
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    start = threading.Barrier(8, timeout=30)
    results: list[object] = []

    def take(n: int) -> None:
        start.wait()
        results.append(store.load(Load(key(1), NOW, LockRequest(f"token-{n}", 30.0))))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, Record) for r in results) == 1
    assert results.count(LOCKED) == 7


def test_eight_threads_incrementing_one_session_lose_nothing(
    conninfo: str, table: str, raw: Any
) -> None:
    # Fewer connections than threads, so the pool's waiting is exercised too.
    store = PostgreSQLStore.from_url(f"{conninfo}?table={table}&pool_size=4")
    store.create_tables()
    assert store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))
    start = threading.Barrier(8, timeout=30)
    errors: list[BaseException] = []

    def increment(n: int) -> None:
        try:
            start.wait()
            done = 0
            while done < n:
                record = store.load(Load(key("counter"), NOW))
                assert isinstance(record, Record)
                value = str(int(record.payload) + 1).encode()
                if store.update(
                    Update(key("counter"), value, NOW, NOW + HOUR, NOW, record.version)
                ):
                    done += 1
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=increment, args=(50,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    record = store.load(Load(key("counter"), NOW))
    store.close()
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"400", 401)


def test_four_processes_incrementing_one_session_lose_nothing(
    conninfo: str, table: str, raw: Any
) -> None:
    url = f"{conninfo}?table={table}&pool_size=2"
    store = store_from_url(url)
    assert isinstance(store, PostgreSQLStore)
    store.create_tables()
    assert store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))
    run_cas_processes(url, key("counter"), processes=4, n=100, now=NOW)
    record = store.load(Load(key("counter"), NOW))
    store.close()
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"400", 401)


def test_a_closed_port_is_unavailable_within_the_pool_timeout() -> None:
    store = PostgreSQLStore.from_url(
        "postgresql://postgres@127.0.0.1:1/test?pool_timeout=1&connect_timeout=2"
    )
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        store.load(Load(key(1), NOW))
    assert time.monotonic() - started < 3
    store.close()


@pytest.mark.asyncio
async def test_a_closed_port_is_unavailable_within_the_pool_timeout_async() -> None:
    store = AsyncPostgreSQLStore.from_url(
        "postgresql://postgres@127.0.0.1:1/test?pool_timeout=1&connect_timeout=2"
    )
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert time.monotonic() - started < 3
    await store.aclose()


def test_a_factory_on_a_closed_port_is_unavailable() -> None:
    store = PostgreSQLStore(
        connect=lambda: psycopg.connect("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    )
    with pytest.raises(store.unavailable_errors):
        store.load(Load(key(1), NOW))


def test_the_first_request_after_an_outage_works(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    with TCPProxy(server) as proxy:
        # One connection: after an outage the pool must not wait out a reconnection backoff
        # (psycopg_pool's default), but connect again as soon as a request asks.
        store = PostgreSQLStore.from_url(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
            f"?table={table}&pool_size=1&pool_timeout=1&connect_timeout=2"
        )
        store.create_tables()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        proxy.stop()
        # The pooled connection is dead, then no new one can be made; four failures, a second
        # apart, outlast the first steps of psycopg_pool's default reconnection backoff.
        for _ in range(4):
            started = time.monotonic()
            with pytest.raises(store.unavailable_errors):
                store.load(Load(key(1), NOW))
            assert time.monotonic() - started < 3
        proxy.start()
        assert isinstance(store.load(Load(key(1), NOW)), Record)
        store.close()


@pytest.mark.asyncio
async def test_one_dead_connection_clears_the_other_idle_ones(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    with TCPProxy(server) as proxy:
        store = AsyncPostgreSQLStore.from_url(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
            f"?table={table}&pool_timeout=1&connect_timeout=2&pool_size=4"
        )
        await store.create_tables()
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        pool = store._source
        assert isinstance(pool, psycopg_pool.AsyncConnectionPool)
        while pool.get_stats().get("pool_available", 0) < 3:
            await asyncio.gather(*(store.load(Load(key(1), NOW)) for _ in range(8)))
        proxy.stop()  # a server restart: every pooled connection dies
        with pytest.raises(store.unavailable_errors):
            await store.load(Load(key(1), NOW))
        proxy.start()
        assert isinstance(await store.load(Load(key(1), NOW)), Record)
        await store.aclose()


def test_a_statement_timeout_bounds_a_blocked_statement(
    conninfo: str, table: str, raw: psycopg.Connection[Any]
) -> None:
    store = PostgreSQLStore.from_url(f"{conninfo}?table={table}&statement_timeout=0.5")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    holder = psycopg.connect(conninfo)
    try:
        holder.execute(
            sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(sql.Identifier(table))
        ).fetchall()
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))
        assert time.monotonic() - started < 2
    finally:
        holder.rollback()
        holder.close()
    assert store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None)) == 2
    store.close()


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


def test_keys_the_column_cannot_hold_are_refused(store: PostgreSQLStore) -> None:
    for bad in ["", "\x00", "x" * 65, "ключ"]:
        with pytest.raises(ValueError, match="printable ASCII"):
            store.load(Load(bad, NOW))
    # Case and trailing spaces matter: keys compare byte for byte.
    assert store.create(Create("k", b"lower", NOW, NOW + HOUR, NOW))
    assert store.create(Create("K", b"upper", NOW, NOW + HOUR, NOW))
    assert store.load(Load("k ", NOW)) is None
