"""RedisStore's round trips: one command per operation, counted on the client's connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from coatcheck.stores import (
    LOCKED,
    Create,
    Delete,
    Load,
    LockRequest,
    Record,
    Slide,
    Touch,
    Unlock,
    Update,
)
from coatcheck.stores._sync.redis import RedisStore

from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("redis")


def test_one_round_trip_per_operation(
    server: tuple[str, int], new_prefix: Callable[[], str]
) -> None:
    """Counted on the client's own connection: every request written and every reply read."""
    counts = {"sent": 0, "read": 0}
    commands: list[str] = []

    class CountingConnection(redis.connection.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            commands.append(str(args[0]))
            super().send_command(*args, **kwargs)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counts["sent"] += 1
            super().send_packed_command(command, check_health)

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            counts["read"] += 1
            return super().read_response(*args, **kwargs)

    pool = redis.ConnectionPool(host=server[0], port=server[1], connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=new_prefix())
    lock = LockRequest("t", 30.0)
    stale = Slide(NOW + 120, NOW + HOUR, NOW + 60)  # the record was accessed at NOW
    operations: list[tuple[str, str, Callable[[], object]]] = [
        ("create", "SET", lambda: store.create(Create(key(1), b"p", NOW, NOW + HOUR, NOW))),
        ("load", "GET", lambda: store.load(Load(key(1), NOW))),
        ("load+lock", "EVALSHA", lambda: store.load(Load(key(1), NOW, lock))),
        (
            "load locked",
            "EVALSHA",
            lambda: store.load(Load(key(1), NOW, LockRequest("other", 30.0))),
        ),
        ("load+slide", "EVALSHA", lambda: store.load(Load(key(1), NOW + 120, None, stale))),
        ("load+lock+slide", "EVALSHA", lambda: store.load(Load(key(1), NOW + 120, lock, stale))),
        (
            "update+unlock",
            "EVALSHA",
            lambda: store.update(Update(key(1), b"q", NOW, NOW + HOUR, NOW, None, "t")),
        ),
        (
            "update",
            "EVALSHA",
            lambda: store.update(Update(key(1), b"r", NOW, NOW + HOUR, NOW, None)),
        ),
        ("touch+unlock", "EVALSHA", lambda: store.touch(Touch(key(1), NOW, NOW + HOUR, NOW, "t"))),
        ("touch", "EVALSHA", lambda: store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))),
        ("unlock", "EVALSHA", lambda: store.unlock(Unlock(key(1), "t"))),
        # A script: DEL alone cannot say whether the record (rather than its lock) was there.
        ("delete", "EVALSHA", lambda: store.delete(Delete(key(1)))),
    ]
    for _, _, operation in operations:  # connect and load the scripts into the server first
        operation()
    store.load(Load(key(1), NOW, lock))  # hold the lock again so "load locked" is really LOCKED
    for name, command, operation in operations:
        before = dict(counts)
        commands.clear()
        result = operation()
        if name == "load locked":
            assert result is LOCKED
        if name in ("load+slide", "load+lock+slide"):
            assert isinstance(result, Record) and result.accessed_at == NOW + 120, name
        assert (counts["sent"] - before["sent"], counts["read"] - before["read"]) == (1, 1), name
        assert commands == [command], name
    client.close()


def test_a_load_with_a_slide_is_one_script_call_and_remembers_nothing(
    server: tuple[str, int], url: str, new_prefix: Callable[[], str]
) -> None:
    commands: list[str] = []

    class RecordingConnection(redis.connection.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            commands.append(str(args[0]))
            super().send_command(*args, **kwargs)

    pool = redis.ConnectionPool(
        host=server[0], port=server[1], connection_class=RecordingConnection
    )
    client = redis.Redis(connection_pool=pool)
    prefix = new_prefix()
    store = RedisStore(client, prefix=prefix)

    def load(now: float, stale_before: float) -> Record:
        commands.clear()
        record = store.load(Load(key(1), now, None, Slide(now, now + HOUR, stale_before)))
        assert isinstance(record, Record)
        return record

    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    # Within the resolution the script finds nothing to slide; past it, it slides. Either way
    # one round trip, decided by the server from what it holds, not by a client-side memory.
    assert load(NOW + 30, NOW - 60).accessed_at == NOW
    assert commands == ["EVALSHA"]
    assert load(NOW + 61, NOW + 1).accessed_at == NOW + 61
    assert commands == ["EVALSHA"]
    assert load(NOW + 90, NOW + 30).accessed_at == NOW + 61
    assert commands == ["EVALSHA"]
    # Another process (another store) slid it meanwhile: this one sees the new access time.
    other = RedisStore(url=url, prefix=prefix)
    assert isinstance(
        other.load(Load(key(1), NOW + 200, None, Slide(NOW + 200, NOW + HOUR, NOW + 140))), Record
    )
    assert load(NOW + 210, NOW + 150).accessed_at == NOW + 200
    assert commands == ["EVALSHA"]
    # Without a slide, a load is a plain GET.
    commands.clear()
    assert isinstance(store.load(Load(key(1), NOW + 220)), Record)
    assert commands == ["GET"]
    # Deleted and gone: nothing created.
    store.delete(Delete(key(1)))
    commands.clear()
    assert (
        store.load(Load(key(1), NOW + 230, None, Slide(NOW + 230, NOW + HOUR, NOW + 170))) is None
    )
    assert commands == ["EVALSHA"]
    other.close()
    client.close()
