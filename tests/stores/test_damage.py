"""A damaged record on every store, sync and async: whatever a store holds under a session key
is untrusted input. Each case plants the damage behind the store's back (with the backend's
own driver, as another program or a botched migration would), then opens the session through
the manager: a fresh session, one ``coatcheck.security`` line with the reason, the key
deleted, and the next request an ordinary unknown id. Never a StoreError (a 503 for as long as
the damage stays), never a record that outlives its timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from coatcheck import AsyncSessionManager, SessionManager
from coatcheck._sansio.ids import storage_key
from coatcheck.stores import Create, Delete, Load
from coatcheck.stores._packed import pack
from tests.support._async.backends import SERVER_STORES, async_store_for
from tests.support._sync.backends import sync_store_for
from tests.support.servers import require_server

HOUR = 3600.0

#: (store, damage, the reason the security log must give)
CASES = [
    ("memory", "nan-access-time", "damaged-times"),
    ("file", "garbage-file", "damaged-file"),
    ("sqlite", "text-version", "damaged-version"),
    ("sqlite", "text-payload", "damaged-payload"),
    ("sqlite", "text-time", "damaged-times"),
    ("redis", "foreign-string", "foreign-record"),
    ("redis", "list-key", "wrong-type"),
    ("redis", "hash-key", "wrong-type"),
    ("redis", "nan-access-time", "damaged-times"),
    ("redis", "no-ttl", "no-ttl"),
    ("memcached", "foreign-string", "foreign-record"),
    ("memcached", "nan-access-time", "damaged-times"),
    ("postgresql", "nan-access-time", "damaged-times"),
    ("postgresql", "infinite-expiry", "damaged-times"),
    ("postgresql", "negative-version", "damaged-version"),
    ("postgresql", "text-payload-column", "damaged-payload"),
    ("mysql", "zero-version", "damaged-version"),
    ("mysql", "text-payload-column", "damaged-payload"),
]


def _params() -> list[Any]:
    return [
        pytest.param(
            store,
            damage,
            reason,
            id=f"{store}-{damage}",
            marks=[pytest.mark.server(SERVER_STORES[store])] if store in SERVER_STORES else [],
        )
        for store, damage, reason in CASES
    ]


def plant(store: str, damage: str, key: str, tmp_path: Path, unique: str) -> None:
    """Damage the record under ``key`` with the backend's own driver."""
    table, prefix = f"cc_test_{unique}", f"cc-test-{unique}:"
    if store == "file":
        path = tmp_path / f"sessions-{unique}"
        (record,) = [p for p in path.rglob(key) if p.is_file()]
        record.write_bytes(b"not a record at all")
    elif store == "sqlite":
        import sqlite3

        sets = {
            "text-version": "version = 'three'",
            "text-payload": "payload = 'plain text'",
            "text-time": "accessed_at = 'soon'",
        }[damage]
        # sqlite3's own "with" only ends a transaction: closing() closes the connection.
        with closing(sqlite3.connect(tmp_path / f"sessions-{unique}.db")) as conn, conn:
            conn.execute(f"UPDATE coatcheck_sessions SET {sets} WHERE key = ?", (key,))  # noqa: S608
    elif store == "redis":
        import redis

        client = redis.Redis(*require_server("redis"))
        prefixed = f"{prefix}{{{key}}}"  # the store's key: the id in a Cluster hash tag
        if damage == "foreign-string":
            client.set(prefixed, b"somebody else's value", px=60_000)
        elif damage == "nan-access-time":
            client.set(prefixed, pack(b"cc2:json:{}", 1, math.nan, 4e9), px=60_000)
        elif damage == "no-ttl":
            client.persist(prefixed)  # a record that would never expire in Redis
        else:
            client.delete(prefixed)
            if damage == "list-key":
                client.rpush(prefixed, b"x")
            else:
                client.hset(prefixed, b"field", b"x")
        client.close()
    elif store == "memcached":
        from pymemcache.client.base import Client

        client = Client(require_server("memcached"))
        prefixed = prefix + key
        value = b"somebody else's value"
        if damage == "nan-access-time":
            value = pack(b"cc2:json:{}", 1, math.nan, 4e9)
        assert client.set(
            prefixed.encode(), value, expire=60, noreply=False
        )  # applied before we go on
        client.close()
    elif store == "postgresql":
        import psycopg

        sets = {
            "nan-access-time": "accessed_at = 'NaN'",
            "infinite-expiry": "expires_at = 'Infinity'",
            "negative-version": "version = -1",
            "text-payload-column": None,
        }[damage]
        host, port = require_server("postgresql")
        with psycopg.connect(f"postgresql://postgres@{host}:{port}/test", autocommit=True) as conn:
            if sets is None:
                conn.execute(
                    f"ALTER TABLE {table} ALTER COLUMN payload TYPE text"
                    " USING encode(payload, 'escape')"
                )
            else:
                conn.execute(f"UPDATE {table} SET {sets} WHERE key = %s", (key,))  # noqa: S608
    elif store == "mysql":
        import pymysql

        host, port = require_server("mysql")
        conn = pymysql.connect(host=host, port=port, user="root", database="test", autocommit=True)
        with conn.cursor() as cur:
            if damage == "zero-version":
                cur.execute(f"UPDATE {table} SET version = 0 WHERE `key` = %s", (key,))  # noqa: S608
            else:
                cur.execute(f"ALTER TABLE {table} MODIFY payload LONGTEXT")
        conn.close()
    else:
        raise ValueError(f"no way to damage {store}/{damage}")


def _security(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.__dict__["reason"] for r in caplog.records if r.name == "coatcheck.security"]


@pytest.mark.parametrize(("store_name", "damage", "reason"), _params())
def test_a_damaged_record_gives_a_fresh_session_and_is_deleted_sync(
    store_name: str, damage: str, reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unique = uuid.uuid4().hex[:12]
    with sync_store_for(store_name, tmp_path, unique) as store:
        manager = SessionManager(store, idle_timeout=HOUR)
        session = manager.open(None)
        session["n"] = 1
        ticket = manager.save(session).ticket or ""
        key = storage_key(ticket)
        if store_name == "memory":
            # In-process: the one way in is the API, which takes a NaN access time as given.
            store.delete(Delete(key))
            store.create(Create(key, b"cc2:json:{}", math.nan, time.time() + HOUR, time.time()))
        else:
            plant(store_name, damage, key, tmp_path, unique)
        caplog.set_level(logging.INFO, "coatcheck")
        caplog.clear()
        assert manager.open(ticket).is_new
        assert _security(caplog) == [reason]
        assert store.load(Load(key, time.time())) is None
        caplog.clear()
        assert manager.open(ticket).is_new  # no lasting lock-out: an unknown id now
        assert _security(caplog) == ["unknown-id"]


@pytest.mark.parametrize(("store_name", "damage", "reason"), _params())
def test_a_damaged_record_gives_a_fresh_session_and_is_deleted_async(
    store_name: str, damage: str, reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        unique = uuid.uuid4().hex[:12]
        async with async_store_for(store_name, tmp_path, unique) as store:
            manager = AsyncSessionManager(store, idle_timeout=HOUR)
            session = await manager.open(None)
            session["n"] = 1
            ticket = (await manager.save(session)).ticket or ""
            key = storage_key(ticket)
            if store_name == "memory":
                await store.delete(Delete(key))
                now = time.time()
                await store.create(Create(key, b"cc2:json:{}", math.nan, now + HOUR, now))
            else:
                plant(store_name, damage, key, tmp_path, unique)
            caplog.set_level(logging.INFO, "coatcheck")
            caplog.clear()
            assert (await manager.open(ticket)).is_new
            assert _security(caplog) == [reason]
            assert await store.load(Load(key, time.time())) is None
            caplog.clear()
            assert (await manager.open(ticket)).is_new
            assert _security(caplog) == ["unknown-id"]

    asyncio.run(scenario())
