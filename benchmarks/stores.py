#!/usr/bin/env python3
"""Each store's cost per operation against its raw driver doing the same work (issue 3).

Run: ``.venv/bin/python benchmarks/stores.py [--quick] [--async | --both] [--stores a,b]
[--profile STORE]``

For every store (sqlite, postgresql, mysql, redis, memcached, and file and memory for
reference), in the sync flavour (``--async``: the asyncio one, ``--both``: both), the median µs
of ``load``, ``create``, ``update`` (compare-and-set on the version), ``touch`` and a
``lock cycle`` (load with the per-session lock, then update with unlock), each on its own
distinct keys with a ~300-byte payload, next to the *raw floor*: the store's own driver, on one
dedicated connection opened with the same settings the store uses, doing the least work with the
same effect and writing the same bytes (no packing, keys precomputed):

=========== ================================ ============================ ====================
store       load                             create                       update / touch
=========== ================================ ============================ ====================
sqlite      SELECT by primary key            INSERT .. ON CONFLICT DO     UPDATE .. WHERE key
            (sqlite3's statement cache)      NOTHING                      / UPDATE of 2 columns
postgresql  prepared SELECT by primary key   INSERT .. ON CONFLICT DO     UPDATE .. WHERE key
                                             NOTHING (prepared)           / 2 columns (prepared)
mysql       SELECT by primary key            INSERT IGNORE                UPDATE .. WHERE key
                                                                          / 2 columns
redis       GET                              SET NX PX                    SET XX PX / PEXPIRE
memcached   get                              add                          set / touch
file        open + read + close              temp file write + fsync + rename + fsync of the
                                             directory (the cheapest durable atomic write; the
                                             same for create, update and touch)
memory      dict.get under a threading.Lock  dict insert-if-absent, replace, under the lock
=========== ================================ ============================ ====================

The raw lock cycle is the raw load plus the raw update, so it reads where any lock must write:
read it as a bound, not as a floor a lock could reach. No raw UPDATE checks a version, and
PyMySQL has no server-side prepared statements. Raw floors hold one connection of their own (no
pool); the memcached one is a plain pymemcache ``Client``. The async raw floors use the async
drivers (psycopg async, aiomysql, redis.asyncio, aiomcache); sqlite and file go through
``asyncio.to_thread`` exactly as the async stores do, and memory is a coroutine. A store's pool
checkout, key checks, packing and Lua scripts are all store overhead by this definition.

Timing: store and raw calls alternate (which goes first flips every iteration), so a burst of
load from elsewhere on this shared machine hits both alike; each phase stops after its
iteration count or time budget, after a warm-up. The memory store, whose operations take about
a microsecond, is timed in batches of 20 calls so the clock's own cost does not dominate.

Round trips are counted on the wire, on a second store and raw client built the same way but
pointed at a counting TCP relay: a round trip is one client-to-server turn (everything the
client sends before the server answers), whatever driver, pool or script is behind it; the
relay also decodes each protocol enough to name the commands sent (GET, EVALSHA, gets, cas,
SELECT, UPDATE, ...). For sqlite the column counts SQL statements (a trace callback), for the
file store fsync calls; for memory there is nothing to count. The same pass checks that every
operation took its success path (created, found, version bumped, lock taken and released).

Servers (override the URLs with BENCH_PG_URL, BENCH_MYSQL_URL, BENCH_REDIS_URL,
BENCH_MEMCACHED_URL): PostgreSQL database ``test``, MariaDB/MySQL database ``test``, Redis db
0, memcached; each run uses a table or key prefix of its own and removes it afterwards (the
memcached keys it wrote are deleted one by one); a server that does not answer is skipped with
a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import random
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from coatcheck.stores import LOCKED, Create, Load, LockRequest, Record, Touch, Update, _packed

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED_URL = os.environ.get("BENCH_MEMCACHED_URL", "memcached://127.0.0.1:11211")

STORES = ("sqlite", "postgresql", "mysql", "redis", "memcached", "file", "memory")
# The order the phases run in: creates make the records the later phases work on.
PHASES = ("create", "load", "update", "touch", "lock cycle")
REPORT_ORDER = ("load", "create", "update", "touch", "lock cycle")
TARGET = 1.3
TTL = 1800.0
LOCK = LockRequest("bench-lock-token", 30.0)
NOW = time.time()
EXPIRES = NOW + TTL

# A realistic small session: a user, a CSRF token, a cart, a flash message, preferences.
PAYLOAD = json.dumps(
    {
        "v": 1,
        "d": {
            "uid": 48213,
            "roles": ["customer", "beta"],
            "csrf": "b3f1c9a27e6d4f0a9c8e5d2b1a7f6e34",
            "cart": [{"sku": "SHOE-4471-42", "qty": 1}, {"sku": "SOCK-0193-M", "qty": 3}],
            "flash": [["info", "Your address was saved."]],
            "prefs": {"lang": "en-GB", "tz": "Europe/London", "theme": "dark"},
            "seen": 1764612000.25,
        },
    },
    separators=(",", ":"),
).encode()
# What the key-value raw floors write: the same bytes the store writes, made once.
VALUE = _packed.pack(PAYLOAD, 1, NOW, EXPIRES)
TTL_MS = int(TTL * 1000)


@dataclass(frozen=True)
class Settings:
    iterations: int  # timed pairs per phase, at most
    budget: float  # seconds per phase, at most (after the warm-up)
    warmup: int  # untimed pairs first
    probe_reps: int  # operations per phase in the round-trip pass


FULL = Settings(iterations=5000, budget=3.5, warmup=100, probe_reps=10)
QUICK = Settings(iterations=500, budget=0.5, warmup=30, probe_reps=4)
MIN_SAMPLES = 50  # a phase's budget never cuts it below this
# Uncounted operations before the round-trip pass counts: pools open, Redis loads its scripts,
# and psycopg prepares each statement on each pooled connection after its fifth run (a Parse
# round trip of its own, once per statement and connection).
PROBE_WARMUP = 16

perf_ns = time.perf_counter_ns


# Every key handed out, so the memcached run can delete what it wrote (memcached cannot list).
ISSUED: list[str] = []


def new_keys(n: int) -> list[str]:
    """Distinct storage keys (64 hex digits, as the core makes them)."""
    keys = [secrets.token_hex(32) for _ in range(n)]
    ISSUED.extend(keys)
    return keys


def unique() -> str:
    return secrets.token_hex(5)


def with_port(url: str, port: int) -> str:
    """``url`` with its port replaced (to point a client at the counting relay)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc[-1] = host
    return urlunsplit(parts._replace(netloc="@".join(netloc)))


def address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def answers(url: str, default_port: int) -> bool:
    try:
        with socket.create_connection(address(url, default_port), timeout=1.0):
            return True
    except OSError:
        return False


# -- round-trip counting -------------------------------------------------------------------------


def _first_word(sql: bytes) -> str:
    words = sql.split(None, 1)
    return words[0].split(b"(", 1)[0].decode("ascii", "replace").upper() if words else "?"


class _Decoder:
    """Names the commands in one client turn of a protocol; ``?`` when it cannot tell."""

    def __call__(self, data: bytes) -> list[str]:
        try:
            return self.decode(data) or ["?"]
        except (ValueError, IndexError, UnicodeDecodeError):
            return ["?"]

    def decode(self, data: bytes) -> list[str]:
        raise NotImplementedError


class _RedisDecoder(_Decoder):
    def decode(self, data: bytes) -> list[str]:
        out, i = [], 0
        while i < len(data) and data[i : i + 1] == b"*":
            j = data.index(b"\r\n", i)
            count, i = int(data[i + 1 : j]), j + 2
            args = []
            for _ in range(count):
                j = data.index(b"\r\n", i)
                size, i = int(data[i + 1 : j]), j + 2
                args.append(data[i : i + size])
                i += size + 2
            out.append(args[0].decode().upper())
        return out


class _MemcachedDecoder(_Decoder):
    STORAGE = frozenset({"set", "add", "replace", "append", "prepend", "cas"})

    def decode(self, data: bytes) -> list[str]:
        out, i = [], 0
        while (j := data.find(b"\r\n", i)) >= 0:
            words, i = data[i:j].split(), j + 2
            if words:
                command = words[0].decode()
                out.append(command)
                if command in self.STORAGE:
                    i += int(words[4]) + 2  # skip the data block
                elif command == "ms":  # meta set: ms <key> <datalen> <flags>*
                    i += int(words[2]) + 2
        return out


class _MySQLDecoder(_Decoder):
    COMMANDS: ClassVar[dict[int, str]] = {
        1: "QUIT",
        14: "PING",
        22: "STMT_PREPARE",
        23: "STMT_EXECUTE",
    }

    def decode(self, data: bytes) -> list[str]:
        out, i = [], 0
        while i + 4 <= len(data):
            size = int.from_bytes(data[i : i + 3], "little")
            payload, i = data[i + 4 : i + 4 + size], i + 4 + size
            if payload:
                command = payload[0]
                out.append(
                    _first_word(payload[1:])
                    if command == 3  # COM_QUERY
                    else self.COMMANDS.get(command, f"cmd{command}")
                )
        return out


class _PostgreSQLDecoder(_Decoder):
    """Simple queries name themselves; a Bind names the statement its Parse (maybe long ago) had."""

    def __init__(self) -> None:
        self.statements: dict[bytes, str] = {}
        self.started = False

    def decode(self, data: bytes) -> list[str]:
        if not self.started:  # SSLRequest / StartupMessage have no type byte
            self.started = int.from_bytes(data[4:8], "big") == 196608
            return ["connect"]
        out, i, parsed = [], 0, ""
        while i + 5 <= len(data):
            kind, size = data[i : i + 1], int.from_bytes(data[i + 1 : i + 5], "big")
            body, i = data[i + 5 : i + 1 + size], i + 1 + size
            if kind == b"Q":
                out.append(_first_word(body))
            elif kind == b"P":
                name, rest = body.split(b"\0", 1)
                self.statements[name] = parsed = _first_word(rest.split(b"\0", 1)[0])
            elif kind == b"B":
                statement = body.split(b"\0", 2)[1]
                out.append(self.statements.get(statement, "?"))
                parsed = ""
            elif kind == b"X":
                out.append("Terminate")
        if parsed:  # a Parse on its own: psycopg preparing a statement it has run 5 times
            out.append(f"prepare {parsed}")
        return out


DECODERS: dict[str, Callable[[], _Decoder]] = {
    "redis": _RedisDecoder,
    "memcached": _MemcachedDecoder,
    "mysql": _MySQLDecoder,
    "postgresql": _PostgreSQLDecoder,
}


class Counter:
    """Counts what an operation costs: ``mark()`` before, ``since(mark)`` after."""

    unit = ""

    def mark(self) -> int:
        return 0

    def since(self, mark: int) -> list[str]:
        """One label per round trip (statement, fsync) since ``mark``."""
        return []

    def close(self) -> None:
        return None


class _Turn:
    __slots__ = ("client_turn", "decoder", "pending")

    def __init__(self, decoder: _Decoder) -> None:
        self.decoder = decoder
        self.client_turn = False
        self.pending = bytearray()


class RelayCounter(Counter):
    """A TCP relay to a server that records every client turn, named by the protocol decoder.

    A turn is what the client sends before the server answers: one round trip, however many
    commands it pipelines. It is recorded when the answer starts, which is before the client
    can have read it, so an operation's turns are all recorded when it returns.
    """

    unit = "round trips"

    def __init__(self, target: tuple[str, int], protocol: str) -> None:
        self._target = target
        self._decoder = DECODERS[protocol]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._turns: list[str] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target)
            except OSError:
                return
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            turn = _Turn(self._decoder())
            for src, dst, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, turn, from_client), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, turn: _Turn, from_client: bool) -> None:
        try:
            while chunk := src.recv(1 << 16):
                with self._lock:
                    if from_client:
                        turn.client_turn = True
                        turn.pending += chunk
                    elif turn.client_turn:
                        turn.client_turn = False
                        self._turns.append("+".join(turn.decoder(bytes(turn.pending))))
                        turn.pending.clear()
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def mark(self) -> int:
        with self._lock:
            return len(self._turns)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self._turns[mark:]

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()


class ListCounter(Counter):
    """Counts the labels appended to ``events`` (SQL statements, fsync calls)."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.events: list[str] = []

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int) -> list[str]:
        return self.events[mark:]


@contextmanager
def counting_fsyncs(counter: ListCounter) -> Iterator[None]:
    """Count ``os.fsync`` calls (the file store calls it as ``os.fsync``)."""
    real = os.fsync

    def fsync(fd: Any) -> None:
        counter.events.append("fsync")
        real(fd)

    os.fsync = fsync
    try:
        yield
    finally:
        os.fsync = real


# -- the store side ------------------------------------------------------------------------------


Prepared = tuple[Callable[[str], Any], Callable[[Any], Any]]


def store_ops(store: Any) -> dict[str, Prepared]:
    """The five measured operations on a sync store, each as ``(prepare, call)``.

    ``prepare(key)`` runs untimed and makes the call's argument (the operation object; for
    update and touch after a load of the record, passing its version and handle on as the
    session core does); ``call`` is what is timed. Each key goes through each phase once.
    """

    def update(k: str) -> Update:
        record = store.load(Load(k, NOW))
        return Update(k, PAYLOAD, NOW, EXPIRES, NOW, record.version, None, record.handle)

    def touch(k: str) -> Touch:
        return Touch(k, NOW, EXPIRES, NOW, None, store.load(Load(k, NOW)).handle)

    def lock_cycle(k: str) -> Any:
        record = store.load(Load(k, NOW, LOCK))
        return store.update(
            Update(k, PAYLOAD, NOW, EXPIRES, NOW, record.version, LOCK.token, record.handle)
        )

    return {
        "create": (lambda k: Create(k, PAYLOAD, NOW, EXPIRES, NOW), store.create),
        "load": (lambda k: Load(k, NOW), store.load),
        "update": (update, store.update),
        "touch": (touch, store.touch),
        "lock cycle": (str, lock_cycle),
    }


AsyncPrepared = tuple[Callable[[str], Awaitable[Any]], Callable[[Any], Awaitable[Any]]]


def async_store_ops(store: Any) -> dict[str, AsyncPrepared]:
    """:func:`store_ops` for an asyncio store."""

    async def create(k: str) -> Create:
        return Create(k, PAYLOAD, NOW, EXPIRES, NOW)

    async def load(k: str) -> Load:
        return Load(k, NOW)

    async def update(k: str) -> Update:
        record = await store.load(Load(k, NOW))
        return Update(k, PAYLOAD, NOW, EXPIRES, NOW, record.version, None, record.handle)

    async def touch(k: str) -> Touch:
        return Touch(k, NOW, EXPIRES, NOW, None, (await store.load(Load(k, NOW))).handle)

    async def same(k: str) -> str:
        return k

    async def lock_cycle(k: str) -> Any:
        record = await store.load(Load(k, NOW, LOCK))
        return await store.update(
            Update(k, PAYLOAD, NOW, EXPIRES, NOW, record.version, LOCK.token, record.handle)
        )

    return {
        "create": (create, store.create),
        "load": (load, store.load),
        "update": (update, store.update),
        "touch": (touch, store.touch),
        "lock cycle": (same, lock_cycle),
    }


def raw_ops(raw: Any) -> dict[str, Callable[[Any], Any]]:
    def lock_cycle(k: Any) -> Any:
        raw.load(k)
        return raw.update(k)

    return {
        "create": raw.create,
        "load": raw.load,
        "update": raw.update,
        "touch": raw.touch,
        "lock cycle": lock_cycle,
    }


def async_raw_ops(raw: Any) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    async def lock_cycle(k: Any) -> Any:
        await raw.load(k)
        return await raw.update(k)

    return {
        "create": raw.create,
        "load": raw.load,
        "update": raw.update,
        "touch": raw.touch,
        "lock cycle": lock_cycle,
    }


def check_result(name: str, phase: str, result: Any, expected_version: int) -> None:
    """The round-trip pass checks that the store took its success path in every phase."""
    ok = {
        "create": result is True,
        "load": isinstance(result, Record) and result.payload == PAYLOAD,
        "update": result == expected_version,
        "touch": result is True,
        "lock cycle": result == expected_version,
    }[phase]
    if not ok:
        raise RuntimeError(f"{name} {phase}: unexpected result {result!r}: not a success path")


EXPECTED_VERSION = {"create": 1, "load": 1, "update": 2, "touch": 2, "lock cycle": 3}


# -- raw floors: sync ----------------------------------------------------------------------------


_SQLITE_LOAD = "SELECT payload, version, accessed_at, expires_at FROM {t} WHERE key = ?"
_SQLITE_CREATE = (
    "INSERT INTO {t} (key, payload, version, accessed_at, expires_at)"
    " VALUES (?, ?, 1, ?, ?) ON CONFLICT (key) DO NOTHING"
)
_SQLITE_UPDATE = (
    "UPDATE {t} SET payload = ?, accessed_at = ?, expires_at = ?, version = version + 1"
    " WHERE key = ?"
)
_SQLITE_TOUCH = "UPDATE {t} SET accessed_at = ?, expires_at = ? WHERE key = ?"


class RawSQLite:
    """One sqlite3 connection opened as the store opens its own (WAL, synchronous=NORMAL)."""

    def __init__(self, path: str, table: str, timeout: float = 5.0) -> None:
        self.conn = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA journal_mode = WAL")
        t = f'"{table}"'
        self.q = [
            q.format(t=t) for q in (_SQLITE_LOAD, _SQLITE_CREATE, _SQLITE_UPDATE, _SQLITE_TOUCH)
        ]

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> Any:
        return self.conn.execute(self.q[0], (k,)).fetchone()

    def create(self, k: str) -> Any:
        return self.conn.execute(self.q[1], (k, PAYLOAD, NOW, EXPIRES)).rowcount

    def update(self, k: str) -> Any:
        return self.conn.execute(self.q[2], (PAYLOAD, NOW, EXPIRES, k)).rowcount

    def touch(self, k: str) -> Any:
        return self.conn.execute(self.q[3], (NOW, EXPIRES, k)).rowcount

    def close(self) -> None:
        self.conn.close()


_PG_LOAD = "SELECT payload, version, accessed_at, expires_at FROM {t} WHERE key = %s"
_PG_CREATE = (
    "INSERT INTO {t} (key, payload, version, accessed_at, expires_at)"
    " VALUES (%s, %s, 1, %s, %s) ON CONFLICT (key) DO NOTHING"
)
_PG_UPDATE = (
    "UPDATE {t} SET payload = %s, accessed_at = %s, expires_at = %s, version = version + 1"
    " WHERE key = %s"
)
_PG_TOUCH = "UPDATE {t} SET accessed_at = %s, expires_at = %s WHERE key = %s"


class RawPostgreSQL:
    """One psycopg connection (the store pool's conninfo, autocommit), one reused cursor."""

    def __init__(self, conninfo: str, table: str) -> None:
        import psycopg

        self.conn = psycopg.Connection.connect(conninfo, autocommit=True)
        self.cur = self.conn.cursor()
        t = f'"{table}"'
        self.q = [q.format(t=t) for q in (_PG_LOAD, _PG_CREATE, _PG_UPDATE, _PG_TOUCH)]

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> Any:
        self.cur.execute(self.q[0], (k,), prepare=True, binary=True)
        return self.cur.fetchone()

    def create(self, k: str) -> Any:
        return self.cur.execute(self.q[1], (k, PAYLOAD, NOW, EXPIRES), prepare=True).rowcount

    def update(self, k: str) -> Any:
        return self.cur.execute(self.q[2], (PAYLOAD, NOW, EXPIRES, k), prepare=True).rowcount

    def touch(self, k: str) -> Any:
        return self.cur.execute(self.q[3], (NOW, EXPIRES, k), prepare=True).rowcount

    def close(self) -> None:
        self.conn.close()


_MY_LOAD = "SELECT payload, version, accessed_at, expires_at FROM {t} WHERE `key` = %s"
_MY_CREATE = (
    "INSERT IGNORE INTO {t} (`key`, payload, version, accessed_at, expires_at)"
    " VALUES (%s, %s, 1, %s, %s)"
)
_MY_UPDATE = (
    "UPDATE {t} SET payload = %s, accessed_at = %s, expires_at = %s, version = version + 1"
    " WHERE `key` = %s"
)
_MY_TOUCH = "UPDATE {t} SET accessed_at = %s, expires_at = %s WHERE `key` = %s"


class RawMySQL:
    """One PyMySQL connection opened as the store opens its own (same flags and timeouts)."""

    def __init__(self, conn: Any, table: str) -> None:
        self.conn = conn
        self.cur = self.conn.cursor()
        t = f"`{table}`"
        self.q = [q.format(t=t) for q in (_MY_LOAD, _MY_CREATE, _MY_UPDATE, _MY_TOUCH)]

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> Any:
        self.cur.execute(self.q[0], (k,))
        return self.cur.fetchone()

    def create(self, k: str) -> Any:
        return self.cur.execute(self.q[1], (k, PAYLOAD, NOW, EXPIRES))

    def update(self, k: str) -> Any:
        return self.cur.execute(self.q[2], (PAYLOAD, NOW, EXPIRES, k))

    def touch(self, k: str) -> Any:
        return self.cur.execute(self.q[3], (NOW, EXPIRES, k))

    def close(self) -> None:
        self.conn.close()


def _redis_kwargs(asynchronous: bool) -> dict[str, Any]:
    """The connection settings ``RedisStore(url=...)`` uses (5 s timeouts, one quick retry)."""
    import redis.exceptions
    from redis.backoff import NoBackoff

    if asynchronous:
        from redis.asyncio.retry import Retry as AsyncRetry

        retry: Any = AsyncRetry(
            NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)
        )
    else:
        from redis.retry import Retry

        retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
    return {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, "retry": retry}


class RawRedis:
    """A redis-py client with the store's settings; keys precomputed in the store's format."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, **_redis_kwargs(False))
        self.prefix = prefix

    def key(self, k: str) -> bytes:
        return f"{self.prefix}{{{k}}}".encode()

    def load(self, k: bytes) -> Any:
        return self.client.get(k)

    def create(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, nx=True, px=TTL_MS)

    def update(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, xx=True, px=TTL_MS)

    def touch(self, k: bytes) -> Any:
        return self.client.pexpire(k, TTL_MS)

    def close(self) -> None:
        self.client.close()


class RawMemcached:
    """One pymemcache ``Client`` (no pool) with the store's socket settings."""

    def __init__(self, url: str, prefix: str) -> None:
        from pymemcache.client.base import Client

        self.client = Client(
            address(url, 11211), connect_timeout=5.0, timeout=5.0, no_delay=True,
            default_noreply=False,
        )  # fmt: skip
        self.prefix = prefix

    def key(self, k: str) -> bytes:
        return (self.prefix + k).encode()

    def load(self, k: bytes) -> Any:
        return self.client.get(k)

    def create(self, k: bytes) -> Any:
        return self.client.add(k, VALUE, expire=int(TTL), noreply=False)

    def update(self, k: bytes) -> Any:
        return self.client.set(k, VALUE, expire=int(TTL), noreply=False)

    def touch(self, k: bytes) -> Any:
        return self.client.touch(k, expire=int(TTL), noreply=False)

    def close(self) -> None:
        self.client.close()


class RawFiles:
    """os calls in a directory of its own: read a file; write one durably and atomically."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        self.data = bytes(44) + PAYLOAD  # the store's header is 44 bytes

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> bytes:
        fd = os.open(k, os.O_RDONLY, dir_fd=self.dir_fd)
        try:
            return os.read(fd, 1 << 16)
        finally:
            os.close(fd)

    def write(self, k: str) -> None:
        d, tmp = self.dir_fd, k + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=d)
        try:
            os.write(fd, self.data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, k, src_dir_fd=d, dst_dir_fd=d)
        os.fsync(d)

    create = update = touch = write

    def close(self) -> None:
        os.close(self.dir_fd)


class RawMemory:
    """A dict of tuples under a ``threading.Lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, tuple[bytes, int, float, float]] = {}

    def key(self, k: str) -> str:
        return k

    def load(self, k: str) -> Any:
        with self.lock:
            return self.data.get(k)

    def create(self, k: str) -> bool:
        with self.lock:
            if k in self.data:
                return False
            self.data[k] = (PAYLOAD, 1, NOW, EXPIRES)
            return True

    def update(self, k: str) -> Any:
        with self.lock:
            old = self.data.get(k)
            if old is None:
                return None
            self.data[k] = (PAYLOAD, old[1] + 1, NOW, EXPIRES)
            return old[1] + 1

    def touch(self, k: str) -> bool:
        with self.lock:
            old = self.data.get(k)
            if old is None:
                return False
            self.data[k] = (old[0], old[1], NOW, EXPIRES)
            return True

    def close(self) -> None:
        self.data.clear()


# -- raw floors: async ---------------------------------------------------------------------------


class AsyncInThread:
    """A blocking raw floor run through ``asyncio.to_thread``, as the async stores run theirs."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.key = raw.key

    async def load(self, k: Any) -> Any:
        return await asyncio.to_thread(self.raw.load, k)

    async def create(self, k: Any) -> Any:
        return await asyncio.to_thread(self.raw.create, k)

    async def update(self, k: Any) -> Any:
        return await asyncio.to_thread(self.raw.update, k)

    async def touch(self, k: Any) -> Any:
        return await asyncio.to_thread(self.raw.touch, k)

    async def aclose(self) -> None:
        self.raw.close()


class AsyncRawMemory:
    """:class:`RawMemory` as coroutines (the same bodies, inline)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, tuple[bytes, int, float, float]] = {}

    def key(self, k: str) -> str:
        return k

    async def load(self, k: str) -> Any:
        with self.lock:
            return self.data.get(k)

    async def create(self, k: str) -> bool:
        with self.lock:
            if k in self.data:
                return False
            self.data[k] = (PAYLOAD, 1, NOW, EXPIRES)
            return True

    async def update(self, k: str) -> Any:
        with self.lock:
            old = self.data.get(k)
            if old is None:
                return None
            self.data[k] = (PAYLOAD, old[1] + 1, NOW, EXPIRES)
            return old[1] + 1

    async def touch(self, k: str) -> bool:
        with self.lock:
            old = self.data.get(k)
            if old is None:
                return False
            self.data[k] = (old[0], old[1], NOW, EXPIRES)
            return True

    async def aclose(self) -> None:
        self.data.clear()


class AsyncRawPostgreSQL:
    """:class:`RawPostgreSQL` on ``psycopg.AsyncConnection``."""

    conn: Any
    cur: Any
    q: list[str]

    @classmethod
    async def open(cls, conninfo: str, table: str) -> AsyncRawPostgreSQL:
        import psycopg

        self = cls()
        self.conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        self.cur = self.conn.cursor()
        t = f'"{table}"'
        self.q = [q.format(t=t) for q in (_PG_LOAD, _PG_CREATE, _PG_UPDATE, _PG_TOUCH)]
        return self

    def key(self, k: str) -> str:
        return k

    async def load(self, k: str) -> Any:
        await self.cur.execute(self.q[0], (k,), prepare=True, binary=True)
        return await self.cur.fetchone()

    async def create(self, k: str) -> Any:
        return (
            await self.cur.execute(self.q[1], (k, PAYLOAD, NOW, EXPIRES), prepare=True)
        ).rowcount

    async def update(self, k: str) -> Any:
        return (
            await self.cur.execute(self.q[2], (PAYLOAD, NOW, EXPIRES, k), prepare=True)
        ).rowcount

    async def touch(self, k: str) -> Any:
        return (await self.cur.execute(self.q[3], (NOW, EXPIRES, k), prepare=True)).rowcount

    async def aclose(self) -> None:
        await self.conn.close()


class AsyncRawMySQL:
    """One aiomysql connection opened as the store opens its own.

    aiomysql 0.3 cannot escape bytes under PyMySQL 1.2 (aio-libs/aiomysql#1080), so values are
    escaped here the way the store has to, and the statement goes as text.
    """

    conn: Any
    cur: Any
    q: list[str]

    @classmethod
    async def open(cls, conn: Any, table: str) -> AsyncRawMySQL:
        self = cls()
        self.conn = conn
        self.cur = await self.conn.cursor()
        t = f"`{table}`"
        self.q = [q.format(t=t) for q in (_MY_LOAD, _MY_CREATE, _MY_UPDATE, _MY_TOUCH)]
        return self

    def key(self, k: str) -> str:
        return k

    def _sql(self, query: str, args: tuple[Any, ...]) -> str:
        escape = self.conn.escape
        return query % tuple(
            f"_binary X'{a.hex()}'" if isinstance(a, bytes) else escape(a) for a in args
        )

    async def load(self, k: str) -> Any:
        await self.cur.execute(self._sql(self.q[0], (k,)))
        return await self.cur.fetchone()

    async def create(self, k: str) -> Any:
        return await self.cur.execute(self._sql(self.q[1], (k, PAYLOAD, NOW, EXPIRES)))

    async def update(self, k: str) -> Any:
        return await self.cur.execute(self._sql(self.q[2], (PAYLOAD, NOW, EXPIRES, k)))

    async def touch(self, k: str) -> Any:
        return await self.cur.execute(self._sql(self.q[3], (NOW, EXPIRES, k)))

    async def aclose(self) -> None:
        await self.cur.close()
        await self.conn.ensure_closed()


class AsyncRawRedis:
    """:class:`RawRedis` on ``redis.asyncio``."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio

        self.client: Any = redis.asyncio.Redis.from_url(url, **_redis_kwargs(True))
        self.prefix = prefix

    def key(self, k: str) -> bytes:
        return f"{self.prefix}{{{k}}}".encode()

    async def load(self, k: bytes) -> Any:
        return await self.client.get(k)

    async def create(self, k: bytes) -> Any:
        return await self.client.set(k, VALUE, nx=True, px=TTL_MS)

    async def update(self, k: bytes) -> Any:
        return await self.client.set(k, VALUE, xx=True, px=TTL_MS)

    async def touch(self, k: bytes) -> Any:
        return await self.client.pexpire(k, TTL_MS)

    async def aclose(self) -> None:
        await self.client.aclose()


class AsyncRawMemcached:
    """An aiomcache ``Client`` with the store's pool settings (aiomcache always pools)."""

    def __init__(self, url: str, prefix: str) -> None:
        import aiomcache

        host, port = address(url, 11211)
        self.client = aiomcache.Client(host, port, pool_size=10, pool_minsize=1)
        self.prefix = prefix

    def key(self, k: str) -> bytes:
        return (self.prefix + k).encode()

    async def load(self, k: bytes) -> Any:
        return await self.client.get(k)

    async def create(self, k: bytes) -> Any:
        return await self.client.add(k, VALUE, int(TTL))

    async def update(self, k: bytes) -> Any:
        return await self.client.set(k, VALUE, int(TTL))

    async def touch(self, k: bytes) -> Any:
        return await self.client.touch(k, int(TTL))

    async def aclose(self) -> None:
        await self.client.close()


# -- one bench per store: the store, its raw floor, and both again behind a counter ----------------


@dataclass
class Bench:
    """What one store's measurement needs; ``keys`` maps storage keys to the raw floor's keys."""

    name: str
    store: Any
    raw: Any
    probe: Any
    probe_raw: Any
    counter: Counter
    batch: int = 1
    probe_context: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext


def _redis_cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for k in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(k)
    finally:
        client.close()


def _memcached_cleanup(prefix: str, keys: list[str]) -> None:
    """Delete every record (and lock) a run may have written under ``prefix``."""
    from pymemcache.client.base import Client

    client = Client(address(MEMCACHED_URL, 11211), timeout=5.0)
    try:
        names = [(prefix + k).encode() for k in keys]
        names += [n + b":lock" for n in names]
        for start in range(0, len(names), 500):
            client.delete_many(names[start : start + 500], noreply=False)
    finally:
        client.close()


@contextmanager
def sync_bench(name: str, tmp: Path) -> Iterator[Bench]:
    """Build the named store (sync) and its floor; remove every trace of them afterwards."""
    from coatcheck.stores import (
        FileStore,
        MemcachedStore,
        MemoryStore,
        MySQLStore,
        PostgreSQLStore,
        RedisStore,
        SQLiteStore,
    )

    store: Any
    probe: Any
    raw: Any
    probe_raw: Any
    u = unique()
    if name == "memory":
        yield Bench(name, MemoryStore(), RawMemory(), MemoryStore(), RawMemory(), Counter(), 20)
    elif name == "file":
        counter = ListCounter("fsyncs")
        store, probe = FileStore(tmp / f"files-{u}"), FileStore(tmp / f"files-{u}")
        raw, probe_raw = RawFiles(str(tmp / f"raw-{u}")), RawFiles(str(tmp / f"raw-{u}"))
        try:
            yield Bench(
                name, store, raw, probe, probe_raw, counter,
                probe_context=lambda: counting_fsyncs(counter),
            )  # fmt: skip
        finally:
            for closeable in (store, probe, raw, probe_raw):
                closeable.close()
    elif name == "sqlite":
        path = tmp / f"sessions-{u}.db"
        store = SQLiteStore(path, table=f"cc_bench_{u}")
        store.create_tables()
        probe = SQLiteStore(path, table=f"cc_bench_{u}")
        counter = ListCounter("statements")
        _trace_sqlite(probe._db, counter)
        raw = RawSQLite(str(path), f"cc_bench_{u}")
        probe_raw = RawSQLite(str(path), f"cc_bench_{u}")
        probe_raw.conn.set_trace_callback(
            lambda sql: counter.events.append(_first_word(sql.encode()))
        )
        try:
            yield Bench(name, store, raw, probe, probe_raw, counter)
        finally:
            for closeable in (store, probe, raw, probe_raw):
                closeable.close()
    elif name == "postgresql":
        url = f"{PG_URL}?table=cc_bench_{u}"
        store = PostgreSQLStore.from_url(url)
        store.create_tables()
        relay = RelayCounter(address(PG_URL, 5432), "postgresql")
        probe = PostgreSQLStore.from_url(with_port(url, relay.port))
        raw = RawPostgreSQL(store._source.conninfo, f"cc_bench_{u}")
        probe_raw = RawPostgreSQL(probe._source.conninfo, f"cc_bench_{u}")
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (raw, probe_raw, probe):
                closeable.close()
            relay.close()
            store.drop_tables()
            store.close()
    elif name == "mysql":
        url = f"{MYSQL_URL}?table=cc_bench_{u}"
        store = MySQLStore.from_url(url)
        store.create_tables()
        relay = RelayCounter(address(MYSQL_URL, 3306), "mysql")
        probe = MySQLStore.from_url(with_port(url, relay.port))
        # A private hook (fine for a measurement): a connection as the store's pool opens one.
        raw = RawMySQL(store._connect(), f"cc_bench_{u}")
        probe_raw = RawMySQL(probe._connect(), f"cc_bench_{u}")
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (raw, probe_raw, probe):
                closeable.close()
            relay.close()
            store.drop_tables()
            store.close()
    elif name == "redis":
        prefix = f"cc-bench-{u}:"
        relay = RelayCounter(address(REDIS_URL, 6379), "redis")
        store = RedisStore(url=REDIS_URL, prefix=prefix)
        probe = RedisStore(url=with_port(REDIS_URL, relay.port), prefix=prefix)
        raw = RawRedis(REDIS_URL, prefix)
        probe_raw = RawRedis(with_port(REDIS_URL, relay.port), prefix)
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (store, probe, raw, probe_raw):
                closeable.close()
            relay.close()
            _redis_cleanup(prefix)
    elif name == "memcached":
        prefix = f"cc-bench-{u}:"
        relay = RelayCounter(address(MEMCACHED_URL, 11211), "memcached")
        store = MemcachedStore.from_url(f"{MEMCACHED_URL}?prefix={prefix}")
        probe = MemcachedStore.from_url(f"{with_port(MEMCACHED_URL, relay.port)}?prefix={prefix}")
        raw = RawMemcached(MEMCACHED_URL, prefix)
        probe_raw = RawMemcached(with_port(MEMCACHED_URL, relay.port), prefix)
        first = len(ISSUED)
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (store, probe, raw, probe_raw):
                closeable.close()
            relay.close()
            _memcached_cleanup(prefix, ISSUED[first:])
    else:
        raise ValueError(name)


def _trace_sqlite(db: Any, counter: ListCounter) -> None:
    """Trace every connection the store's pool opens (a private hook: fine for a measurement)."""
    real_open = db._open

    def traced_open() -> sqlite3.Connection:
        conn: sqlite3.Connection = real_open()
        conn.set_trace_callback(lambda sql: counter.events.append(_first_word(sql.encode())))
        return conn

    db._open = traced_open


@asynccontextmanager
async def async_bench(name: str, tmp: Path) -> AsyncIterator[Bench]:
    """:func:`sync_bench` for the asyncio stores."""
    from coatcheck.stores import (
        AsyncFileStore,
        AsyncMemcachedStore,
        AsyncMemoryStore,
        AsyncMySQLStore,
        AsyncPostgreSQLStore,
        AsyncRedisStore,
        AsyncSQLiteStore,
    )

    store: Any
    probe: Any
    raw: Any
    probe_raw: Any
    u = unique()
    if name == "memory":
        yield Bench(
            name, AsyncMemoryStore(), AsyncRawMemory(), AsyncMemoryStore(), AsyncRawMemory(),
            Counter(), 20,
        )  # fmt: skip
    elif name == "file":
        counter = ListCounter("fsyncs")
        store, probe = AsyncFileStore(tmp / f"files-{u}"), AsyncFileStore(tmp / f"files-{u}")
        raw = AsyncInThread(RawFiles(str(tmp / f"raw-{u}")))
        probe_raw = AsyncInThread(RawFiles(str(tmp / f"raw-{u}")))
        try:
            yield Bench(
                name, store, raw, probe, probe_raw, counter,
                probe_context=lambda: counting_fsyncs(counter),
            )  # fmt: skip
        finally:
            for closeable in (store, probe, raw, probe_raw):
                await closeable.aclose()
    elif name == "sqlite":
        path = tmp / f"sessions-{u}.db"
        store = AsyncSQLiteStore(path, table=f"cc_bench_{u}")
        await store.create_tables()
        probe = AsyncSQLiteStore(path, table=f"cc_bench_{u}")
        counter = ListCounter("statements")
        _trace_sqlite(probe._db, counter)
        raw = AsyncInThread(RawSQLite(str(path), f"cc_bench_{u}"))
        probe_raw = AsyncInThread(RawSQLite(str(path), f"cc_bench_{u}"))
        probe_raw.raw.conn.set_trace_callback(
            lambda sql: counter.events.append(_first_word(sql.encode()))
        )
        try:
            yield Bench(name, store, raw, probe, probe_raw, counter)
        finally:
            for closeable in (store, probe, raw, probe_raw):
                await closeable.aclose()
    elif name == "postgresql":
        url = f"{PG_URL}?table=cc_bench_{u}"
        store = AsyncPostgreSQLStore.from_url(url)
        await store.create_tables()
        relay = RelayCounter(address(PG_URL, 5432), "postgresql")
        probe = AsyncPostgreSQLStore.from_url(with_port(url, relay.port))
        raw = await AsyncRawPostgreSQL.open(store._source.conninfo, f"cc_bench_{u}")
        probe_raw = await AsyncRawPostgreSQL.open(probe._source.conninfo, f"cc_bench_{u}")
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (raw, probe_raw, probe):
                await closeable.aclose()
            relay.close()
            await store.drop_tables()
            await store.aclose()
    elif name == "mysql":
        url = f"{MYSQL_URL}?table=cc_bench_{u}"
        store = AsyncMySQLStore.from_url(url)
        await store.create_tables()
        relay = RelayCounter(address(MYSQL_URL, 3306), "mysql")
        probe = AsyncMySQLStore.from_url(with_port(url, relay.port))
        raw = await AsyncRawMySQL.open(await store._connect(), f"cc_bench_{u}")
        probe_raw = await AsyncRawMySQL.open(await probe._connect(), f"cc_bench_{u}")
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (raw, probe_raw, probe):
                await closeable.aclose()
            relay.close()
            await store.drop_tables()
            await store.aclose()
    elif name == "redis":
        prefix = f"cc-bench-{u}:"
        relay = RelayCounter(address(REDIS_URL, 6379), "redis")
        store = AsyncRedisStore(url=REDIS_URL, prefix=prefix)
        probe = AsyncRedisStore(url=with_port(REDIS_URL, relay.port), prefix=prefix)
        raw = AsyncRawRedis(REDIS_URL, prefix)
        probe_raw = AsyncRawRedis(with_port(REDIS_URL, relay.port), prefix)
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (store, probe, raw, probe_raw):
                await closeable.aclose()
            relay.close()
            _redis_cleanup(prefix)
    elif name == "memcached":
        prefix = f"cc-bench-{u}:"
        relay = RelayCounter(address(MEMCACHED_URL, 11211), "memcached")
        store = AsyncMemcachedStore.from_url(f"{MEMCACHED_URL}?prefix={prefix}")
        probe = AsyncMemcachedStore.from_url(
            f"{with_port(MEMCACHED_URL, relay.port)}?prefix={prefix}"
        )
        raw = AsyncRawMemcached(MEMCACHED_URL, prefix)
        probe_raw = AsyncRawMemcached(with_port(MEMCACHED_URL, relay.port), prefix)
        first = len(ISSUED)
        try:
            yield Bench(name, store, raw, probe, probe_raw, relay)
        finally:
            for closeable in (store, probe, raw, probe_raw):
                await closeable.aclose()
            relay.close()
            _memcached_cleanup(prefix, ISSUED[first:])
    else:
        raise ValueError(name)


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Phase:
    """Per-operation samples (µs) of the store and its raw floor in one phase."""

    store: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    used: int = 0  # keys gone through this phase (warm-up included)


def time_sync(
    store_op: Prepared,
    raw_op: Callable[[Any], Any],
    keys: list[str],
    raw_keys: list[Any],
    batch: int,
    settings: Settings,
) -> Phase:
    """Interleaved store/raw timings over ``keys`` (each used once), ``batch`` calls a sample."""
    prepare, call = store_op
    phase = Phase()
    groups = len(keys) // batch
    gc.collect()
    deadline = float("inf")
    for g in range(groups):
        if g == settings.warmup:
            deadline = time.perf_counter() + settings.budget
        ks, rs = keys[g * batch : (g + 1) * batch], raw_keys[g * batch : (g + 1) * batch]
        ks = [prepare(k) for k in ks]
        if g % 2:
            t0 = perf_ns()
            for k in ks:
                call(k)
            t1 = perf_ns()
            for r in rs:
                raw_op(r)
            t2 = perf_ns()
            t_store, t_raw = t1 - t0, t2 - t1
        else:
            t0 = perf_ns()
            for r in rs:
                raw_op(r)
            t1 = perf_ns()
            for k in ks:
                call(k)
            t2 = perf_ns()
            t_raw, t_store = t1 - t0, t2 - t1
        phase.used = (g + 1) * batch
        if g >= settings.warmup:
            phase.store.append(t_store / batch / 1000)
            phase.raw.append(t_raw / batch / 1000)
            if len(phase.store) >= MIN_SAMPLES and time.perf_counter() > deadline:
                break
    return phase


async def time_async(
    store_op: AsyncPrepared,
    raw_op: Callable[[Any], Awaitable[Any]],
    keys: list[str],
    raw_keys: list[Any],
    batch: int,
    settings: Settings,
) -> Phase:
    """:func:`time_sync` for coroutines, awaited in the running loop."""
    prepare, call = store_op
    phase = Phase()
    groups = len(keys) // batch
    gc.collect()
    deadline = float("inf")
    for g in range(groups):
        if g == settings.warmup:
            deadline = time.perf_counter() + settings.budget
        ks, rs = keys[g * batch : (g + 1) * batch], raw_keys[g * batch : (g + 1) * batch]
        ks = [await prepare(k) for k in ks]
        if g % 2:
            t0 = perf_ns()
            for k in ks:
                await call(k)
            t1 = perf_ns()
            for r in rs:
                await raw_op(r)
            t2 = perf_ns()
            t_store, t_raw = t1 - t0, t2 - t1
        else:
            t0 = perf_ns()
            for r in rs:
                await raw_op(r)
            t1 = perf_ns()
            for k in ks:
                await call(k)
            t2 = perf_ns()
            t_raw, t_store = t1 - t0, t2 - t1
        phase.used = (g + 1) * batch
        if g >= settings.warmup:
            phase.store.append(t_store / batch / 1000)
            phase.raw.append(t_raw / batch / 1000)
            if len(phase.store) >= MIN_SAMPLES and time.perf_counter() > deadline:
                break
    return phase


# -- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    store: str
    op: str
    store_us: float
    raw_us: float
    samples: int
    spread: float = 0.0  # half the gap between the ratios of the phase's two halves
    trips: str = "-"  # store/raw
    sent: str = ""
    extra_trips: bool = False

    @property
    def ratio(self) -> float:
        return self.store_us / self.raw_us


def _compress(labels: list[str]) -> str:
    """``['gets', 'cas']`` -> ``gets, cas``; repeats as ``fsync x2``."""
    out: list[str] = []
    for label in labels:
        if out and out[-1].split(" x")[0] == label:
            head, _, n = out[-1].partition(" x")
            out[-1] = f"{head} x{int(n or 1) + 1}"
        else:
            out.append(label)
    return ", ".join(out)


@dataclass
class Probe:
    """What the round-trip pass saw for one operation."""

    store_trips: list[int] = field(default_factory=list)
    raw_trips: list[int] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def trips(self) -> str:
        def show(counts: list[int]) -> str:
            low, high = min(counts), max(counts)
            return str(low) if low == high else f"{low}-{high}"

        return f"{show(self.store_trips)}/{show(self.raw_trips)}"


def probe_sync(bench: Bench, reps: int) -> dict[str, Probe]:
    """Count each operation's round trips on the relayed store and floor; check success paths."""
    ops, rops = store_ops(bench.probe), raw_ops(bench.probe_raw)
    keys = new_keys(reps + PROBE_WARMUP)
    raw_keys = [bench.probe_raw.key(k) for k in new_keys(reps + PROBE_WARMUP)]
    result: dict[str, Probe] = {}
    with bench.probe_context():
        for phase in PHASES:
            probe = result[phase] = Probe()
            for i, (k, r) in enumerate(zip(keys, raw_keys, strict=True)):
                prepare, call = ops[phase]
                arg = prepare(k)
                mark = bench.counter.mark()
                out = call(arg)
                store_turns = bench.counter.since(mark)
                check_result(bench.name, phase, out, EXPECTED_VERSION[phase])
                mark = bench.counter.mark()
                rops[phase](r)
                raw_turns = bench.counter.since(mark)
                if i >= PROBE_WARMUP:
                    probe.store_trips.append(len(store_turns))
                    probe.raw_trips.append(len(raw_turns))
                    probe.sent = store_turns
        unlocked = bench.probe.load(Load(keys[0], NOW, LockRequest("someone-else", 30.0)))
        if unlocked is LOCKED:
            raise RuntimeError(f"{bench.name}: the lock cycle left the lock held")
    return result


async def probe_async(bench: Bench, reps: int) -> dict[str, Probe]:
    """:func:`probe_sync` for the asyncio stores."""
    ops, rops = async_store_ops(bench.probe), async_raw_ops(bench.probe_raw)
    keys = new_keys(reps + PROBE_WARMUP)
    raw_keys = [bench.probe_raw.key(k) for k in new_keys(reps + PROBE_WARMUP)]
    result: dict[str, Probe] = {}
    with bench.probe_context():
        for phase in PHASES:
            probe = result[phase] = Probe()
            for i, (k, r) in enumerate(zip(keys, raw_keys, strict=True)):
                prepare, call = ops[phase]
                arg = await prepare(k)
                mark = bench.counter.mark()
                out = await call(arg)
                store_turns = bench.counter.since(mark)
                check_result(bench.name, phase, out, EXPECTED_VERSION[phase])
                mark = bench.counter.mark()
                await rops[phase](r)
                raw_turns = bench.counter.since(mark)
                if i >= PROBE_WARMUP:
                    probe.store_trips.append(len(store_turns))
                    probe.raw_trips.append(len(raw_turns))
                    probe.sent = store_turns
        unlocked = await bench.probe.load(Load(keys[0], NOW, LockRequest("someone-else", 30.0)))
        if unlocked is LOCKED:
            raise RuntimeError(f"{bench.name}: the lock cycle left the lock held")
    return result


def rows_for(bench: Bench, phases: dict[str, Phase], probes: dict[str, Probe]) -> list[Row]:
    rows = []
    for op in REPORT_ORDER:
        phase, probe = phases[op], probes[op]
        half = len(phase.store) // 2
        first = statistics.median(phase.store[:half]) / statistics.median(phase.raw[:half])
        second = statistics.median(phase.store[half:]) / statistics.median(phase.raw[half:])
        row = Row(
            bench.name,
            op,
            statistics.median(phase.store),
            statistics.median(phase.raw),
            len(phase.store),
            abs(first - second) / 2,
        )
        if bench.counter.unit:
            row.trips = probe.trips()
            row.sent = _compress(probe.sent)
            row.extra_trips = max(probe.store_trips) > max(probe.raw_trips)
        rows.append(row)
    return rows


def _check_versions(name: str, loaded: Any, expected: int) -> None:
    if not isinstance(loaded, Record) or loaded.version != expected:
        raise RuntimeError(f"{name}: expected version {expected} after the phase, got {loaded!r}")


def run_sync(name: str, tmp: Path, settings: Settings) -> list[Row]:
    with sync_bench(name, tmp) as bench:
        probes = probe_sync(bench, settings.probe_reps)
        n = (settings.warmup + settings.iterations) * bench.batch
        keys = new_keys(n)
        raw_keys = [bench.raw.key(k) for k in new_keys(n)]
        ops, rops = store_ops(bench.store), raw_ops(bench.raw)
        phases: dict[str, Phase] = {}
        order = list(range(n))
        for op in PHASES:
            phase = time_sync(ops[op], rops[op], keys, raw_keys, bench.batch, settings)
            phases[op] = phase
            if op == "create":
                # Later phases work on the records this one made, in another order.
                used = phase.used
                random.Random(7).shuffle(order)
                order = [i for i in order if i < used]
                keys = [keys[i] for i in order]
                raw_keys = [raw_keys[i] for i in order]
            if op in ("update", "lock cycle"):
                _check_versions(name, bench.store.load(Load(keys[0], NOW)), EXPECTED_VERSION[op])
        return rows_for(bench, phases, probes)


async def run_async(name: str, tmp: Path, settings: Settings) -> list[Row]:
    async with async_bench(name, tmp) as bench:
        probes = await probe_async(bench, settings.probe_reps)
        n = (settings.warmup + settings.iterations) * bench.batch
        keys = new_keys(n)
        raw_keys = [bench.raw.key(k) for k in new_keys(n)]
        ops, rops = async_store_ops(bench.store), async_raw_ops(bench.raw)
        phases: dict[str, Phase] = {}
        order = list(range(n))
        for op in PHASES:
            phase = await time_async(ops[op], rops[op], keys, raw_keys, bench.batch, settings)
            phases[op] = phase
            if op == "create":
                used = phase.used
                random.Random(7).shuffle(order)
                order = [i for i in order if i < used]
                keys = [keys[i] for i in order]
                raw_keys = [raw_keys[i] for i in order]
            if op in ("update", "lock cycle"):
                loaded = await bench.store.load(Load(keys[0], NOW))
                _check_versions(name, loaded, EXPECTED_VERSION[op])
        return rows_for(bench, phases, probes)


# -- profiling -----------------------------------------------------------------------------------


def _same(k: Any) -> Any:
    return k


async def _async_same(k: Any) -> Any:
    return k


def profile(name: str, tmp: Path, asynchronous: bool, reps: int) -> str:
    """cProfile of each store operation next to its raw floor: where the extra time goes.

    cProfile inflates call-heavy code, so compare the two sides' lists and shares, not their
    totals with the table's.
    """
    out = io.StringIO()
    flavour = "async" if asynchronous else "sync"

    def report(op: str, side: str, profiler: cProfile.Profile) -> None:
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        out.write(
            f"\n{name} {flavour} {op}, {side}: {total / reps * 1e6:.1f} µs/op under cProfile\n"
        )
        rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
        for (filename, line, func), (_, ncalls, tottime, _, _) in rows[:12]:
            where = filename.split("site-packages/")[-1].split("src/")[-1]
            out.write(
                f"  {tottime / reps * 1e6:7.2f} µs {ncalls / reps:5.1f}x  {func}  {where}:{line}\n"
            )

    def plan(bench: Bench) -> list[tuple[str, str, Any, list[Any]]]:
        """(operation, side, (prepare, call), keys); the raw side prepares nothing."""
        keys = new_keys(reps)
        raw_keys = [bench.raw.key(k) for k in new_keys(reps)]
        if asynchronous:
            ops, rops = async_store_ops(bench.store), async_raw_ops(bench.raw)
            as_is: Any = _async_same
        else:
            ops, rops = store_ops(bench.store), raw_ops(bench.raw)
            as_is = _same
        return [
            (op, side, fn, ks)
            for op in PHASES
            for side, fn, ks in (("store", ops[op], keys), ("raw", (as_is, rops[op]), raw_keys))
        ]

    if asynchronous:

        async def go() -> None:
            async with async_bench(name, tmp) as bench:
                for op, side, (prepare, call), ks in plan(bench):
                    xs = [await prepare(k) for k in ks]
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for x in xs:
                        await call(x)
                    profiler.disable()
                    report(op, side, profiler)

        asyncio.run(go())
    else:
        with sync_bench(name, tmp) as bench:
            for op, side, (prepare, call), ks in plan(bench):
                xs = [prepare(k) for k in ks]
                profiler = cProfile.Profile()
                profiler.enable()
                for x in xs:
                    call(x)
                profiler.disable()
                report(op, side, profiler)
    return out.getvalue()


# -- main ----------------------------------------------------------------------------------------


def print_table(flavour: str, rows: list[Row], notes: list[str], settings: Settings) -> None:
    print(
        f"\n{flavour} flavour: median µs per operation, store and raw floor interleaved "
        f"(up to {settings.iterations} pairs or {settings.budget:g} s per phase after "
        f"{settings.warmup} warm-up pairs)"
    )
    header = (
        f"{'store':10} {'op':10} {'store µs':>9} {'raw µs':>9} {'ratio':>6} {'±':>5} {'n':>5}  "
        f"{'trips s/raw':>11}  store sent (per round trip)"
    )
    print(header)
    print("-" * len(header))
    last = ""
    for row in rows:
        if last and row.store != last:
            print()
        last = row.store
        flag = " " if row.ratio <= TARGET else "!"
        print(
            f"{row.store:10} {row.op:10} {row.store_us:9.1f} {row.raw_us:9.1f} "
            f"{row.ratio:5.2f}{flag} {row.spread:5.2f} {row.samples:5d}  "
            f"{row.trips:>11}  {row.sent}"
        )
    print(
        "trips: round trips on the wire (postgresql, mysql, redis, memcached), SQL statements "
        "(sqlite), fsync calls (file); ! = over the 1.3x target; ± = half the gap between "
        "the ratios of the first and second half of the samples; n = timed pairs"
    )
    for note in notes:
        print(note)


# What issue 3's target covers: the server stores, and the four contract operations it names.
TARGET_STORES = ("postgresql", "mysql", "redis", "memcached")
TARGET_OPS = ("load", "create", "update", "touch")


def print_summary(flavour: str, rows: list[Row]) -> None:
    targeted = [r for r in rows if r.store in TARGET_STORES and r.op in TARGET_OPS]
    reference = [r for r in rows if r not in targeted]
    for title, group in (
        ("target (server stores; load, create, update, touch)", targeted),
        ("reference (embedded stores and the lock cycle, not under the target)", reference),
    ):
        if not group:
            continue
        within = [r for r in group if r.ratio <= TARGET]
        over = [r for r in group if r.ratio > TARGET]
        extra = [r for r in group if r.extra_trips]
        print(f"\nSummary, {flavour}, {title}: {len(within)} of {len(group)} within {TARGET}x")
        if within:
            print("  within: " + ", ".join(f"{r.store} {r.op} {r.ratio:.2f}x" for r in within))
        if over:
            print("  over:   " + ", ".join(f"{r.store} {r.op} {r.ratio:.2f}x" for r in over))
        if extra:
            print(
                "  more round trips than the raw floor: "
                + ", ".join(f"{r.store} {r.op} ({r.trips})" for r in extra)
            )
        else:
            print("  every operation uses as many round trips as its raw floor")


SERVER_URLS = {
    "postgresql": (PG_URL, 5432),
    "mysql": (MYSQL_URL, 3306),
    "redis": (REDIS_URL, 6379),
    "memcached": (MEMCACHED_URL, 11211),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (under 45 s)")
    flavour = parser.add_mutually_exclusive_group()
    flavour.add_argument("--async", dest="flavour", action="store_const", const="async")
    flavour.add_argument("--both", dest="flavour", action="store_const", const="both")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated subset")
    parser.add_argument("--profile", metavar="STORE", help="cProfile one store's operations")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    flavours = {"async": ["async"], "both": ["sync", "async"]}.get(args.flavour, ["sync"])
    names = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(names) - set(STORES) - {""}
    if unknown:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))}; known: {', '.join(STORES)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.profile:
            for flav in flavours:
                print(profile(args.profile, tmp, flav == "async", 500 if args.quick else 2000))
            return 0
        notes: list[str] = []
        available = []
        for name in names:
            server = SERVER_URLS.get(name)
            if server is not None and not answers(*server):
                notes.append(f"skipped {name}: nothing answers at {address(*server)}")
            else:
                available.append(name)
        print(
            f"coatcheck stores against their raw drivers; payload {len(PAYLOAD)} bytes; "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        all_rows: dict[str, list[Row]] = {}
        for flav in flavours:
            rows: list[Row] = []
            for name in available:
                if flav == "sync":
                    rows += run_sync(name, tmp, settings)
                else:
                    rows += asyncio.run(run_async(name, tmp, settings))
            all_rows[flav] = rows
            print_table(flav, rows, notes, settings)
        for flav, rows in all_rows.items():
            print_summary(flav, rows)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
