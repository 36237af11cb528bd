#!/usr/bin/env python3
"""Lost updates: coatcheck's concurrency modes against the peer libraries, side by side.

Run ``.venv/bin/python benchmarks/race.py [--quick]`` (peers: ``pip install -e '.[bench]'``).

One request creates a session (``counter`` = 1, plus ~100 bytes of user data); then two workers
send read-modify-write requests on that one session at the same time: read ``counter``, write
``counter + 1``, save. ``lost`` = successful increments that did not stick. The method is the one
of the peer measurements in ``shared/research/performance.md`` section 2 (two workers x 500
requests, threads and processes, plus threads at a 1 µs switch interval for the in-process
stores). Peers run through their normal integration, called in-process (WSGI environ or ASGI
scope built by hand): Beaker's ``SessionMiddleware``, Flask + Flask-Session, Django's
``WSGIHandler`` + ``SessionMiddleware``, Starlette + starsessions. coatcheck runs through its
``SessionManager`` (open, change, save), in each mode:

- ``none``: last writer wins, as documented;
- ``merge``: the default; the counter case is one hot key (the policy ``last-writer`` may lose
  increments by design); the ``keys`` case has each worker write keys of its own
  (``w<worker>-<j>``) and ``lost`` counts keys that vanished;
- ``merge raise+retry``: ``merge_conflict="raise"``, the request is replayed on
  ``SessionConflict``;
- ``merge incr``: the increment as an operation, ``session.incr("counter")``, which a merge
  replays on the newer version (the way to count in merge mode: no lock, no retry loop);
- ``lock``: a per-session lock from load to save.

``err`` counts requests that raised (or answered non-200); they are not counted as lost.
Then the cost of ``merge`` and ``lock`` over ``none`` on an uncontended session, in µs per
request and, on Redis, in round trips (counted by a client that counts its commands).

The clients are in ``_race/clients.py`` (coatcheck's, and the in-process WSGI/ASGI callers) and
``_race/peers.py``, the table's rows in ``_race/rows.py``, one trial in ``_race/runner.py``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from _race.clients import first_visit, increments
from _race.common import (
    LIFETIME,
    REDIS,
    SERVERS,
    WORKERS,
    delete_redis_keys,
    reachable,
)
from _race.rows import coatcheck_rows, peer_rows
from _race.runner import Runner, Trial


def _importable(library: str) -> str | None:
    module = {
        "coatcheck": "coatcheck",
        "Beaker": "beaker",
        "Flask-Session": "flask_session",
        "Django": "django",
        "starsessions": "starsessions",
    }[library]
    try:
        __import__(module)
    except ImportError as exc:
        return f"{library} is not installed ({exc}); pip install -e '.[bench]'"
    return None


def _cell(trials: list[Trial]) -> str:
    if not trials:
        return "n/a"
    lost = sorted(t.lost for t in trials)
    total = trials[0].total
    median = statistics.median(lost)
    text = f"{median:g}/{total} ({100 * median / total:.0f}%)"
    if len(trials) > 1:
        text += f" [{lost[0]}-{lost[-1]}]"
    errors = sum(t.errors for t in trials)
    if errors:
        text += f" err {errors}"
    seconds = statistics.median(t.seconds for t in trials)
    return f"{text} {seconds:.2f}s"


def race_table(args: argparse.Namespace, workdir: Path) -> None:
    rows = coatcheck_rows() + ([] if args.no_peers else peer_rows())
    if args.only:
        rows = [
            r for r in rows if any(s in f"{r.library} {r.variant} {r.store}" for s in args.only)
        ]
    runner = Runner(workdir, args.requests)
    notes: list[str] = []
    skipped: set[str] = set()
    columns = ["threads", "threads 1µs", "processes"]
    print(
        f"Lost updates: {WORKERS} workers x {args.requests} read-modify-write requests on one"
        f" session, {args.trials} trial(s) each; cell = lost/total (%) [min-max] err, wall time"
    )
    print(
        "threads: switch interval "
        f"{args.switch_interval if args.switch_interval else sys.getswitchinterval()} s;"
        " 'threads 1µs' only for in-process stores; 'processes' only for shared stores"
    )
    header = f"{'library':<13} {'variant':<25} {'store':<10} " + " ".join(
        f"{c:<34}" for c in columns
    )
    print(header)
    print("-" * len(header))
    try:
        for row in rows:
            missing = _importable(row.library)
            unreachable = row.server is not None and not reachable(row.server)
            if missing or unreachable:
                reason = missing or f"{row.server} not reachable at {SERVERS[row.server or '']}"
                if reason not in skipped:
                    skipped.add(reason)
                    notes.append(f"skipped {row.library} {row.variant} ({row.store}): {reason}")
                continue
            cells = []
            for column in columns:
                if column == "processes" and not row.shared:
                    cells.append("n/a")
                    continue
                if column == "threads 1µs" and row.shared:
                    cells.append("n/a")
                    continue
                how = "processes" if column == "processes" else "threads"
                interval = 1e-6 if column == "threads 1µs" else args.switch_interval
                trials = []
                try:
                    for _ in range(args.trials):
                        trials.append(runner.trial(row, how, interval))
                except Exception as exc:
                    notes.append(
                        f"{row.library} {row.variant} ({row.store}) {column}: could not run:"
                        f" {type(exc).__name__}: {exc}"
                    )
                    cells.append("failed")
                    continue
                for t in trials:
                    if t.first_error:
                        notes.append(
                            f"{row.library} {row.variant} ({row.store}) {column}: first error:"
                            f" {t.first_error[:160]}"
                        )
                        break
                cells.append(_cell(trials))
            print(
                f"{row.library:<13} {row.variant:<25} {row.store:<10} "
                + " ".join(f"{c:<34}" for c in cells),
                flush=True,
            )
    finally:
        runner.close()
    for note in notes:
        print("note:", note)


# -- uncontended cost -------------------------------------------------------------------------


def _counting_redis() -> Any:
    import redis

    class CountingRedis(redis.Redis):
        """Counts commands sent; without pipelines each is one round trip."""

        commands = 0

        def execute_command(self, *args: Any, **options: Any) -> Any:
            type(self).commands += 1
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    return CountingRedis(*REDIS)


def overhead(args: argparse.Namespace, workdir: Path) -> None:
    from coatcheck import SessionManager
    from coatcheck.stores import MemoryStore, RedisStore, SQLiteStore

    count, rounds = args.uncontended, args.rounds
    print()
    print(
        f"Uncontended cost: one worker, rounds of {count} read-modify-write requests on one"
        " session;"
        f" µs per request, median of {rounds} rounds, modes taking turns (ratio to none)"
    )
    stores: list[tuple[str, Callable[[], Any]]] = [("memory", MemoryStore)]

    def sqlite() -> Any:
        built = SQLiteStore(workdir / f"uncontended-{uuid.uuid4().hex[:8]}.db")
        built.create_tables()
        return built

    stores.append(("sqlite", sqlite))
    redis_ok = reachable("redis")
    prefix = f"cc-race-{uuid.uuid4().hex[:12]}:"
    if redis_ok:
        stores.append(("redis", lambda: RedisStore(client=_counting_redis(), prefix=prefix)))
    else:
        print(f"note: redis not reachable at {REDIS}: no Redis rows")
    modes = ("none", "merge", "lock")
    for name, make in stores:
        store = make()
        try:
            tickets = {}
            managers = {}
            for mode in modes:
                managers[mode] = SessionManager(store, concurrency=mode, idle_timeout=LIFETIME)
                tickets[mode] = first_visit(managers[mode])
            timings: dict[str, list[float]] = {mode: [] for mode in modes}
            # Modes take turns, so a drift of the machine's speed hits all of them alike;
            # the first round warms connections and caches and is not counted.
            for repeat in range(1 + rounds):
                for mode in modes:
                    manager, ticket = managers[mode], tickets[mode]
                    started = time.perf_counter()
                    increments(manager, ticket, count)
                    if repeat:
                        timings[mode].append((time.perf_counter() - started) / count * 1e6)
            base = statistics.median(timings["none"])
            cells = []
            for mode in modes:
                micros = statistics.median(timings[mode])
                cells.append(f"{mode} {micros:7.1f} µs ({micros / base:4.2f}x)")
            print(f"  {name:<8} " + "   ".join(cells))
        finally:
            store.close()
            if name == "redis":
                delete_redis_keys(prefix + "*")
    if redis_ok:
        counting = _counting_redis()
        store = RedisStore(client=counting, prefix=prefix)
        try:
            cells = []
            for mode in ("none", "merge", "lock"):
                manager = SessionManager(store, concurrency=mode, idle_timeout=LIFETIME)
                ticket = first_visit(manager)
                before, requests = type(counting).commands, 100
                increments(manager, ticket, requests)
                cells.append(f"{mode} {(type(counting).commands - before) / requests:g}")
            print("  Redis round trips per request (open + save): " + ", ".join(cells))
        finally:
            store.close()
            counting.close()
            delete_redis_keys(prefix + "*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests: under a minute")
    parser.add_argument("--requests", type=int, help="requests per worker (default 500)")
    parser.add_argument("--trials", type=int, default=1, help="trials per cell (median shown)")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="thread switch interval, s"
    )
    parser.add_argument("--no-peers", action="store_true", help="coatcheck rows only")
    parser.add_argument(
        "--only", action="append", help="only rows whose 'library variant store' contains this"
    )
    parser.add_argument("--skip-table", action="store_true", help="only the uncontended costs")
    parser.add_argument(
        "--contention",
        metavar="N,M,HOLD_MS,WAIT_S",
        help="only the lock contention scenario: N processes x M requests holding the lock"
        " HOLD_MS each, with lock_wait WAIT_S (e.g. 16,10,50,2)",
    )
    parser.add_argument(
        "--stores",
        default="redis,postgresql,mysql,sqlite,file,memcached",
        help="stores of the contention scenario",
    )
    args = parser.parse_args(argv)
    if args.contention:
        from _race.contention import contention

        n, m, hold, wait = args.contention.split(",")
        workdir = Path(tempfile.mkdtemp(prefix="coatcheck-race-"))
        try:
            contention(
                args.stores.split(","), workdir, int(n), int(m), float(hold) / 1000, float(wait)
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    if args.requests is None:
        args.requests = 100 if args.quick else 500
    # Uncontended timing: many short rounds, modes taking turns, beat the VM's drift.
    args.uncontended, args.rounds = (100, 9) if args.quick else (200, 25)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="coatcheck-race-"))
    try:
        if not args.skip_table:
            race_table(args, workdir)
        overhead(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        with suppress(Exception):
            delete_redis_keys(f"dj-race-{workdir.name}*")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
