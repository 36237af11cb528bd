#!/usr/bin/env python3
"""Sessions under load over real servers: gunicorn and uvicorn, 4 worker processes each.

Run: ``.venv/bin/python benchmarks/served.py [--stores redis,postgresql] [--quick]
[--only counter|contention]`` (``pip install -e '.[bench]'`` brings gunicorn and uvicorn).

The app (``_served/app.py``) runs in 4 worker processes on 127.0.0.1, behind coatcheck's WSGI
middleware under gunicorn (sync workers) and its ASGI middleware under uvicorn; the clients
are threads of this process, each request on a new connection (gunicorn's sync workers close
every connection), all presenting one session's cookie.

- ``counter``: 8 clients x 250 ``/hit`` requests on one session, no hold, the variants taking
  turns for 3 rounds (the median round shown: throughput here swings from run to run on a
  shared machine, and turns make the swings hit every variant alike). Rows by mode and
  write: ``none``, ``merge`` and ``lock`` with the plain read-modify-write
  (``session["n"] = session["n"] + 1``), and ``merge incr`` (``session.incr("n")``). ``lost``
  is the share of answered increments (200) that the final count lacks; ``503`` the refused
  requests; ``req/s`` the whole run's throughput.
- ``contention``: 64 clients x 5 ``/hit`` requests in ``lock`` mode under uvicorn, each
  holding the session 50 ms (an ``asyncio.sleep`` between read and write): 3.2 s of queued
  hold per round of 64, under the default 10 s ``lock_wait``. Reported: the latency p50 and
  p99 (a request's wait for the lock plus its hold) and how many got ``SessionLocked`` (503).

Every row of a scenario starts its own server on a fresh store location (a key prefix, a
table file, a database table emptied first) so no row sees another's data.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
WORKERS = 4
STORES = {
    "redis": "redis://127.0.0.1:6379/0?prefix={tag}:",
    "postgresql": "postgresql://root@127.0.0.1:5432/test?table=served_{tag}",
    "mysql": "mysql://root@127.0.0.1:3306/test?table=served_{tag}",
    "sqlite": "sqlite:///{dir}/served-{tag}.db",
    "memcached": "memcached://127.0.0.1:11211?prefix={tag}:",
}


@dataclass
class Result:
    ok: int = 0
    refused: int = 0
    other: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    final: int = 0

    @property
    def lost(self) -> float:
        return 0.0 if not self.ok else max(0, self.ok - self.final) / self.ok


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(port: int, path: str, cookie: str | None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Cookie": f"session={cookie}"} if cookie else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextmanager
def _server(kind: str, env: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    if kind == "gunicorn":
        command = [str(BIN / "gunicorn"), "-w", str(WORKERS), "-k", "sync", "--chdir", str(HERE)]
        command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "_served.app:wsgi"]
    else:
        command = [str(BIN / "uvicorn"), "--workers", str(WORKERS), "--app-dir", str(HERE)]
        command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
        command += ["_served.app:asgi"]
    process = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _request(port, "/count", None)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _cookie(headers: dict[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() == "set-cookie" and value.startswith("session="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise RuntimeError("no session cookie")


def _run(port: int, clients: int, requests: int) -> Result:
    status, headers, _ = _request(port, "/start", None)
    if status != 200:
        raise RuntimeError(f"/start answered {status}")
    cookie = _cookie(headers)
    result = Result()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(requests):
            started = time.perf_counter()
            status, _, _ = _request(port, "/hit", cookie)
            elapsed = time.perf_counter() - started
            with lock:
                result.latencies.append(elapsed)
                if status == 200:
                    result.ok += 1
                elif status == 503:
                    result.refused += 1
                else:
                    result.other += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    result.final = int(_request(port, "/count", cookie)[2])
    return result


def _url(store: str, workdir: str) -> str:
    return STORES[store].format(tag="cc" + uuid.uuid4().hex[:10], dir=workdir)


def counter(stores: list[str], requests: int, rounds: int, workdir: str) -> None:
    print(
        f"counter: 8 clients x {requests} requests on one session, {WORKERS} workers; the"
        f" variants take turns, {rounds} rounds, median round shown"
    )
    print(f"{'server':<9} {'store':<11} {'variant':<11} {'lost':>7} {'503':>5} {'req/s':>7}")
    variants = [("none", "assign"), ("merge", "assign"), ("merge", "incr"), ("lock", "assign")]
    for server in ("gunicorn", "uvicorn"):
        for store in stores:
            runs: dict[tuple[str, str], list[Result]] = {variant: [] for variant in variants}
            for _ in range(rounds):
                for mode, write in variants:
                    env = {"SERVED_STORE": _url(store, workdir), "SERVED_MODE": mode}
                    env["SERVED_WRITE"] = write
                    with _server(server, env) as port:
                        runs[mode, write].append(_run(port, 8, requests))
            for (mode, write), results in runs.items():
                results.sort(key=lambda r: (r.ok + r.refused) / r.seconds)
                result = results[len(results) // 2]
                label = f"{mode} incr" if write == "incr" else mode
                rate = (result.ok + result.refused) / result.seconds
                print(
                    f"{server:<9} {store:<11} {label:<11} {result.lost:>6.1%} "
                    f"{result.refused:>5} {rate:>7.0f}",
                    flush=True,
                )


def contention(stores: list[str], rounds: int, workdir: str) -> None:
    clients, hold = 64, 0.05
    print(
        f"contention: {clients} clients x {rounds} requests, lock mode, each holding the session"
        f" {hold * 1000:.0f} ms ({clients * hold:.1f} s of hold per round), lock_wait 10 s,"
        f" uvicorn {WORKERS} workers"
    )
    print(f"{'store':<11} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'locked':>7} {'lost':>6}")
    for store in stores:
        env = {"SERVED_STORE": _url(store, workdir), "SERVED_MODE": "lock"}
        env |= {"SERVED_HOLD": str(hold), "SERVED_LOCK_WAIT": "10"}
        with _server("uvicorn", env) as port:
            result = _run(port, clients, rounds)
        latencies = sorted(result.latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"{store:<11} {statistics.median(latencies):>7.2f} {p99:>7.2f} {latencies[-1]:>7.2f}"
            f" {result.refused:>3}/{len(latencies):<3} {result.lost:>6.1%}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="redis,postgresql,sqlite")
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--only", choices=("counter", "contention"))
    args = parser.parse_args(argv)
    stores = [name for name in args.stores.split(",") if name]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        parser.error(f"unknown stores {unknown}; choose from {sorted(STORES)}")
    for tool in ("gunicorn", "uvicorn"):
        if not (BIN / tool).exists():
            print(f"{tool} is not installed: pip install -e '.[bench]'", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as workdir:
        if args.only != "contention":
            counter(stores, 60 if args.quick else 250, 1 if args.quick else 3, workdir)
        if args.only != "counter":
            contention(stores, 2 if args.quick else 5, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
