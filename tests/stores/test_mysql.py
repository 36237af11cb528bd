"""MySQLStore (MySQL and MariaDB) beyond the contract: schema, round trips, cleanup, outages."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiomysql
import pymysql
import pytest
from pymysql.constants import CLIENT

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
from coatcheck.stores._async.mysql import AsyncMySQLStore
from coatcheck.stores._sync.mysql import MySQLStore
from tests.support.servers import require_server

from ._proxy import TCPProxy
from ._workers import run_cas_processes

pytestmark = pytest.mark.server("mysql")

NOW = float(int(time.time()))
HOUR = 3600.0


def key(n: int | str) -> str:
    return hashlib.sha256(f"mysql-{n}".encode()).hexdigest()


@pytest.fixture
def server() -> tuple[str, int]:
    return require_server("mysql")


@pytest.fixture
def table() -> str:
    return f"cc_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def url(server: tuple[str, int], table: str) -> str:
    return f"mysql://root@{server[0]}:{server[1]}/test?table={table}"


def connect_raw(server: tuple[str, int], **kwargs: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=server[0], port=server[1], user="root", database="test", autocommit=True, **kwargs
    )


@pytest.fixture
def raw(server: tuple[str, int], table: str) -> Iterator[pymysql.Connection[Any]]:
    """A plain connection for looking behind the store; drops the test's table at the end."""
    conn = connect_raw(server)
    yield conn
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    conn.close()


def query(conn: pymysql.Connection[Any], statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement, args or None)
        return list(cur.fetchall())


@pytest.fixture
def store(url: str, raw: pymysql.Connection[Any]) -> Iterator[MySQLStore]:
    s = MySQLStore.from_url(url)
    s.create_tables()
    yield s
    s.close()


class Questions:
    """Statements the server received on one connection (its session's ``Questions``)."""

    def __init__(self, conn: pymysql.Connection[Any]) -> None:
        self.conn = conn
        first = self._read()
        self._own = self._read() - first  # what reading the counter costs itself

    def _read(self) -> int:
        return int(query(self.conn, "SHOW SESSION STATUS LIKE 'Questions'")[0][1])

    def since(self, before: int) -> int:
        return self._read() - before - self._own

    def now(self) -> int:
        return self._read()


@pytest.fixture
def counted(
    server: tuple[str, int], table: str, raw: Any
) -> Iterator[tuple[MySQLStore, Questions]]:
    """A store on one connection whose statements the server counts."""
    made: list[pymysql.Connection[Any]] = []

    def connect() -> pymysql.Connection[Any]:
        made.append(connect_raw(server, client_flag=CLIENT.FOUND_ROWS))
        return made[-1]

    s = MySQLStore(connect, table=table, pool_size=1)
    s.create_tables()
    yield s, Questions(made[0])
    s.close()
    assert len(made) == 1
    assert not made[0].open  # the store closes the connections it made


def operations(store: Any) -> dict[str, tuple[int, Callable[[], Any]]]:
    """name -> (statements it may send, the call); sync or async store alike."""
    fresh = iter(range(1_000_000))
    lock_a, lock_b = LockRequest("a", 30.0), LockRequest("b", 30.0)
    return {
        "load": (1, lambda: store.load(Load(key("k"), NOW))),
        "load missing": (1, lambda: store.load(Load(key("missing"), NOW))),
        # MySQL's UPDATE returns no rows: taking the lock and reading are two statements.
        "load + lock": (2, lambda: store.load(Load(key("k"), NOW, lock_a))),
        "load + lock, LOCKED": (2, lambda: store.load(Load(key("k"), NOW, lock_b))),
        "create": (1, lambda: store.create(Create(key(next(fresh)), b"p", NOW, NOW + HOUR, NOW))),
        "create, collision": (
            1,
            lambda: store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW)),
        ),
        "update": (
            1,
            lambda: store.update(Update(key("k"), b"q", NOW, NOW + HOUR, NOW, None, "x")),
        ),
        "update, stale": (
            1,
            lambda: store.update(Update(key("k"), b"q", NOW, NOW + HOUR, NOW, 10**9)),
        ),
        "touch": (1, lambda: store.touch(Touch(key("k"), NOW, NOW + HOUR, NOW, unlock="x"))),
        "unlock": (1, lambda: store.unlock(Unlock(key("k"), "x"))),
        "delete": (1, lambda: store.delete(Delete(key("missing")))),
        "count": (1, lambda: store.count(NOW)),
        "stats": (1, lambda: store.stats(NOW)),
        "create_tables (exists)": (1, lambda: store.create_tables()),
    }


def test_statements_per_operation(counted: tuple[MySQLStore, Questions]) -> None:
    store, questions = counted
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (expected, operation) in operations(store).items():
        before = questions.now()
        operation()
        assert questions.since(before) == expected, name


@pytest.mark.asyncio
async def test_statements_per_operation_async(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    made: list[Any] = []

    async def connect() -> Any:
        conn = await aiomysql.connect(
            host=server[0],
            port=server[1],
            user="root",
            db="test",
            autocommit=True,
            client_flag=CLIENT.FOUND_ROWS,
        )
        made.append(conn)
        return conn

    async def questions() -> int:
        async with made[0].cursor() as cur:
            await cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
            return int((await cur.fetchone())[1])

    store = AsyncMySQLStore(connect, table=table, pool_size=1)
    await store.create_tables()
    assert await store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    own = -(await questions()) + await questions()
    # aiomysql would add a SHOW WARNINGS after any statement the server warned about (such as
    # CREATE TABLE IF NOT EXISTS on an existing table); these counts show the store's do not.
    for name, (expected, operation) in operations(store).items():
        before = await questions()
        await operation()
        assert await questions() - before - own == expected, name
    await store.aclose()
    assert made[0].closed


def locked_loads(store: Any) -> dict[str, tuple[Callable[[], Any], object]]:
    """name -> (a locked load, what it returns), in this order; sync or async store alike."""
    return {
        "taken": (lambda: store.load(Load(key("k"), NOW, LockRequest("a", 30.0))), Record),
        "taken again, same token": (
            lambda: store.load(Load(key("k"), NOW, LockRequest("a", 30.0))),
            Record,
        ),
        "LOCKED": (lambda: store.load(Load(key("k"), NOW, LockRequest("b", 30.0))), LOCKED),
        "missing": (lambda: store.load(Load(key("missing"), NOW, LockRequest("a", 30.0))), None),
    }


def check_outcome(name: str, result: object, expected: object) -> None:
    if expected is Record:
        assert isinstance(result, Record), name
        assert result.payload == b"p", name
    else:
        assert result is expected, name


@pytest.fixture
def relay(server: tuple[str, int]) -> Iterator[TCPProxy]:
    with TCPProxy(server) as counter:
        yield counter


def test_every_operation_is_one_round_trip(table: str, raw: Any, relay: TCPProxy) -> None:
    # The store's own connections allow multi-statement requests: a locked load sends the
    # lock and the read together, one round trip like every other operation.
    store = MySQLStore.from_url(f"mysql://root@127.0.0.1:{relay.port}/test?table={table}")
    store.create_tables()
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (operation, expected) in locked_loads(store).items():
        before = relay.turns
        check_outcome(name, operation(), expected)
        assert relay.turns - before == 1, name
    # The lock taken in that one request is the real thing: token "a", until NOW + 30.
    held = f"SELECT lock_token, lock_expires FROM `{table}` WHERE `key` = %s"  # noqa: S608 - the test's own table name
    assert query(raw, held, key("k")) == [(b"a", NOW + 30.0)]
    for name, (_, operation) in operations(store).items():
        before = relay.turns
        operation()
        assert relay.turns - before == 1, name
    store.close()


@pytest.mark.asyncio
async def test_every_operation_is_one_round_trip_async(
    table: str, raw: Any, relay: TCPProxy
) -> None:
    store = AsyncMySQLStore.from_url(f"mysql://root@127.0.0.1:{relay.port}/test?table={table}")
    await store.create_tables()
    assert await store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (operation, expected) in locked_loads(store).items():
        before = relay.turns
        check_outcome(name, await operation(), expected)
        assert relay.turns - before == 1, name
    for name, (_, operation) in operations(store).items():
        before = relay.turns
        await operation()
        assert relay.turns - before == 1, name
    await store.aclose()


def test_without_multi_statements_a_locked_load_is_two_round_trips(
    table: str, raw: Any, relay: TCPProxy
) -> None:
    # A connection factory whose connections refuse multi-statement requests still works,
    # with the lock and the read sent one after the other.
    store = MySQLStore(
        lambda: connect_raw(("127.0.0.1", relay.port), client_flag=CLIENT.FOUND_ROWS),
        table=table,
    )
    store.create_tables()
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (operation, expected) in locked_loads(store).items():
        before = relay.turns
        check_outcome(name, operation(), expected)
        assert relay.turns - before == 2, name
    store.close()


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


def test_clear_expired_deletes_in_batches(
    counted: tuple[MySQLStore, Questions], raw: pymysql.Connection[Any], table: str
) -> None:
    store, questions = counted
    with raw.cursor() as cur:
        cur.executemany(
            f"INSERT INTO `{table}` (`key`, payload, version, accessed_at, expires_at) "  # noqa: S608 - the test's own table name
            "VALUES (%s, %s, 1, %s, %s)",
            [(key(f"dead-{n}"), b"\x00", NOW - HOUR, NOW - 1) for n in range(5000)],
        )
    for n in range(10):
        assert store.create(Create(key(n), b"live", NOW, NOW + HOUR, NOW))
    before = questions.now()
    assert store.clear_expired(ClearExpired(NOW)) == 5000
    # Five full batches of 1000, then one that finds nothing left: six short statements.
    assert questions.since(before) == 6
    assert store.count(NOW) == 10
    assert store.stats(NOW).expired == 0
    assert all(isinstance(store.load(Load(key(n), NOW)), Record) for n in range(10))


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


def test_threads_racing_for_the_lock_let_exactly_one_in(store: MySQLStore) -> None:
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


def test_eight_threads_incrementing_one_session_lose_nothing(url: str, raw: Any) -> None:
    # Fewer connections than threads, so the pool's waiting is exercised too.
    store = MySQLStore.from_url(f"{url}&pool_size=4")
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


def test_four_processes_incrementing_one_session_lose_nothing(url: str, raw: Any) -> None:
    shared = f"{url}&pool_size=2"
    store = store_from_url(shared)
    assert isinstance(store, MySQLStore)
    store.create_tables()
    assert store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))
    run_cas_processes(shared, key("counter"), processes=4, n=100, now=NOW)
    record = store.load(Load(key("counter"), NOW))
    store.close()
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"400", 401)


def test_a_closed_port_is_unavailable_at_once() -> None:
    store = MySQLStore.from_url("mysql://root@127.0.0.1:1/test?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        store.load(Load(key(1), NOW))
    assert time.monotonic() - started < 3
    store.close()


@pytest.mark.asyncio
async def test_a_closed_port_is_unavailable_at_once_async() -> None:
    store = AsyncMySQLStore.from_url("mariadb://root@127.0.0.1:1/test?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert time.monotonic() - started < 3
    await store.aclose()


def test_a_full_pool_times_out_as_unavailable(url: str, raw: Any) -> None:
    store = MySQLStore.from_url(f"{url}&pool_size=1&pool_timeout=0.3")
    store.create_tables()
    with store._pool.connection():  # the only connection is busy elsewhere
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            store.load(Load(key(1), NOW))
        assert 0.25 < time.monotonic() - started < 2
    assert store.load(Load(key(1), NOW)) is None
    store.close()


@pytest.mark.asyncio
async def test_a_full_pool_times_out_as_unavailable_async(url: str, raw: Any) -> None:
    store = AsyncMySQLStore.from_url(f"{url}&pool_size=1&pool_timeout=0.3")
    await store.create_tables()
    async with store._pool.connection():  # the only connection is busy elsewhere
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            await store.load(Load(key(1), NOW))
        assert 0.25 < time.monotonic() - started < 2
    assert await store.load(Load(key(1), NOW)) is None  # and the slot was not lost to the timeout
    await store.aclose()


def lock_the_table(raw_conn: pymysql.Connection[Any], table: str) -> None:
    with raw_conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"SELECT * FROM `{table}` FOR UPDATE")  # noqa: S608 - the test's own table


def test_a_blocked_statement_times_out_as_unavailable(
    url: str, server: tuple[str, int], table: str, raw: Any
) -> None:
    store = MySQLStore.from_url(f"{url}&read_timeout=0.5")
    store.create_tables()
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    holder = connect_raw(server)
    try:
        lock_the_table(holder, table)
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
        assert time.monotonic() - started < 2
    finally:
        holder.rollback()
        holder.close()
    assert store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is True
    store.close()


@pytest.mark.asyncio
async def test_a_blocked_statement_times_out_as_unavailable_async(
    url: str, server: tuple[str, int], table: str, raw: Any
) -> None:
    store = AsyncMySQLStore.from_url(f"{url}&read_timeout=0.5")
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    holder = connect_raw(server)
    try:
        lock_the_table(holder, table)
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
        assert time.monotonic() - started < 2
    finally:
        holder.rollback()
        holder.close()
    assert await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is True
    await store.aclose()


@pytest.mark.asyncio
async def test_each_statement_gets_its_own_whole_timeout_async(
    url: str, server: tuple[str, int], table: str, raw: Any
) -> None:
    # A connection keeps one timer for all its statements: the one an earlier statement set
    # must neither cut a later statement short nor let it run past its own deadline, and a
    # cancellation from outside must stay a cancellation.
    store = AsyncMySQLStore.from_url(f"{url}&read_timeout=1&pool_size=1")
    await store.create_tables()
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))  # sets the timer: 1 s
    holder = connect_raw(server)
    try:
        lock_the_table(holder, table)
        await asyncio.sleep(0.6)
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError, match="timed out after 1 s"):
            await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))
        assert 0.95 < time.monotonic() - started < 2  # not cut at the first deadline, 0.4 s in
        blocked = asyncio.create_task(store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)))
        await asyncio.sleep(0.2)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    finally:
        holder.rollback()
        holder.close()
    assert await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is True
    await store.aclose()


def test_the_first_request_after_an_outage_works(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    with TCPProxy(server) as proxy:
        store = MySQLStore.from_url(
            f"mysql://root@127.0.0.1:{proxy.port}/test?table={table}&connect_timeout=2"
        )
        store.create_tables()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        proxy.stop()
        started = time.monotonic()
        with pytest.raises(store.unavailable_errors):
            store.load(Load(key(1), NOW))
        assert time.monotonic() - started < 3
        proxy.start()
        assert isinstance(store.load(Load(key(1), NOW)), Record)
        store.close()


@pytest.mark.asyncio
async def test_the_first_request_after_an_outage_works_async(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    with TCPProxy(server) as proxy:
        store = AsyncMySQLStore.from_url(
            f"mysql://root@127.0.0.1:{proxy.port}/test?table={table}&connect_timeout=2"
        )
        await store.create_tables()
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        proxy.stop()
        with pytest.raises(store.unavailable_errors):
            await store.load(Load(key(1), NOW))
        proxy.start()
        assert isinstance(await store.load(Load(key(1), NOW)), Record)
        await store.aclose()


def test_a_restart_does_not_cost_a_failed_request(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    with TCPProxy(server) as proxy:
        store = MySQLStore.from_url(
            f"mysql://root@127.0.0.1:{proxy.port}/test?table={table}&connect_timeout=2"
        )
        store.create_tables()
        assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        # The server goes away and comes back between two requests: the pooled connection
        # saw the close, so the next request connects afresh instead of failing on it.
        proxy.stop()
        proxy.start()
        assert isinstance(store.load(Load(key(1), NOW)), Record)
        store.close()


@pytest.mark.asyncio
async def test_a_restart_does_not_cost_a_failed_request_async(
    server: tuple[str, int], table: str, raw: Any
) -> None:
    with TCPProxy(server) as proxy:
        store = AsyncMySQLStore.from_url(
            f"mysql://root@127.0.0.1:{proxy.port}/test?table={table}&connect_timeout=2"
        )
        await store.create_tables()
        assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
        (idle,) = store._pool._idle
        proxy.stop()
        # A real restart gives the event loop ample time to see the close; here, wait for it
        # (the idle connection has nothing to read but the end of its stream).
        assert await asyncio.wait_for(idle._reader.read(), 5) == b""
        proxy.start()
        assert isinstance(await store.load(Load(key(1), NOW)), Record)
        await store.aclose()


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
