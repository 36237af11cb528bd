#!/usr/bin/env python3
"""Each store's cost per operation against its raw driver doing the same work (issue 3).

Run: ``.venv/bin/python benchmarks/stores.py [--quick] [--async | --both] [--stores a,b]
[--profile STORE]``

For every store (sqlite, postgresql, mysql, redis, memcached, and file and memory for
reference), in the sync flavour (``--async``: the asyncio one, ``--both``: both), the median µs
of ``load``, ``create``, ``update`` (compare-and-set on the version), ``touch`` and a
``lock cycle`` (load with the per-session lock, then update with unlock), each on its own
distinct keys with a ~300-byte payload. Update and touch follow an untimed load of the record
and pass its version and handle on, as the session core does; each operation object is made
before the clock starts. Next to each, the *raw floor*: the store's own driver, on one dedicated
connection opened with the same settings the store uses, doing the least work with the same
effect and writing the same bytes (no packing, keys precomputed):

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
a microsecond, is timed in batches of 20 calls so the clock's own cost does not dominate. Each
measurement is written once (``_stores/measures.py``) and runs in both flavours
(``_flavours.py``); the stores and floors are built in ``_stores/benches.py`` and
``_stores/floors.py``, the wire counted in ``_stores/roundtrips.py``.

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
import os
import sys
import tempfile
import time
from pathlib import Path

from _flavours import FLAVOURS
from _stores.measures import Row, Settings, profile, run
from _stores.servers import SERVER_URLS, address, answers
from _stores.workload import PAYLOAD

STORES = ("sqlite", "postgresql", "mysql", "redis", "memcached", "file", "memory")
TARGET = 1.3
FULL = Settings(iterations=5000, budget=3.5, warmup=100, probe_reps=10)
QUICK = Settings(iterations=500, budget=0.5, warmup=30, probe_reps=4)


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (under 45 s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--async", dest="flavour", action="store_const", const="async")
    which.add_argument("--both", dest="flavour", action="store_const", const="both")
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
                flavour = FLAVOURS[flav]
                reps = 500 if args.quick else 2000
                print(flavour.run(profile(flavour, args.profile, tmp, reps)))
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
                rows += FLAVOURS[flav].run(run(FLAVOURS[flav], name, tmp, settings))
            all_rows[flav] = rows
            print_table(flav, rows, notes, settings)
        for flav, rows in all_rows.items():
            print_summary(flav, rows)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
