"""MySQLStore's statements and round trips: how many each operation costs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import aiomysql
import pymysql
import pytest
from pymysql.constants import CLIENT

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
)
from coatcheck.stores._async.mysql import AsyncMySQLStore
from coatcheck.stores._sync.mysql import MySQLStore

from .._proxy import TCPProxy
from .._support import HOUR, NOW, key
from ._raw import connect_raw, query

pytestmark = pytest.mark.server("mysql")


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


def test_every_operation_is_one_round_trip(
    proxied_url: str, table: str, raw: Any, proxy: TCPProxy
) -> None:
    # The store's own connections allow multi-statement requests: a locked load sends the
    # lock and the read together, one round trip like every other operation.
    store = MySQLStore.from_url(proxied_url)
    store.create_tables()
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (operation, expected) in locked_loads(store).items():
        before = proxy.turns
        check_outcome(name, operation(), expected)
        assert proxy.turns - before == 1, name
    # The lock taken in that one request is the real thing: token "a", until NOW + 30.
    held = f"SELECT lock_token, lock_expires FROM `{table}` WHERE `key` = %s"  # noqa: S608 - the test's own table name
    assert query(raw, held, key("k")) == [(b"a", NOW + 30.0)]
    for name, (_, operation) in operations(store).items():
        before = proxy.turns
        operation()
        assert proxy.turns - before == 1, name
    store.close()


@pytest.mark.asyncio
async def test_every_operation_is_one_round_trip_async(
    proxied_url: str, raw: Any, proxy: TCPProxy
) -> None:
    store = AsyncMySQLStore.from_url(proxied_url)
    await store.create_tables()
    assert await store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (operation, expected) in locked_loads(store).items():
        before = proxy.turns
        check_outcome(name, await operation(), expected)
        assert proxy.turns - before == 1, name
    for name, (_, operation) in operations(store).items():
        before = proxy.turns
        await operation()
        assert proxy.turns - before == 1, name
    await store.aclose()


def test_without_multi_statements_a_locked_load_is_two_round_trips(
    table: str, raw: Any, proxy: TCPProxy
) -> None:
    # A connection factory whose connections refuse multi-statement requests still works,
    # with the lock and the read sent one after the other.
    store = MySQLStore(
        lambda: connect_raw(("127.0.0.1", proxy.port), client_flag=CLIENT.FOUND_ROWS),
        table=table,
    )
    store.create_tables()
    assert store.create(Create(key("k"), b"p", NOW, NOW + HOUR, NOW))
    for name, (operation, expected) in locked_loads(store).items():
        before = proxy.turns
        check_outcome(name, operation(), expected)
        assert proxy.turns - before == 2, name
    store.close()


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
