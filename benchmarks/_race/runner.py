"""Running one trial: the first request, then the workers at once (threads or processes)."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clients import Client, Spec, Tally
from .common import WORKERS, delete_redis_keys
from .rows import Row

__all__ = ["Runner", "Trial"]


@dataclass
class Trial:
    lost: int
    total: int
    errors: int
    seconds: float
    first_error: str = ""


_start_line: Any = None


def _init_worker(barrier: Any) -> None:
    global _start_line
    _start_line = barrier


def _process_job(spec: Spec, cookie: str, worker: int, count: int) -> Tally:
    client = spec.build()
    try:
        _start_line.wait(timeout=120)  # both workers start their requests together
        return client.run(cookie, worker, count)
    finally:
        client.close()


class Runner:
    def __init__(self, workdir: Path, count: int) -> None:
        self.workdir = workdir
        self.count = count
        self._pool: Any = None
        self._barrier: Any = None

    def pool(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            self._barrier = ctx.Barrier(WORKERS)
            self._pool = ProcessPoolExecutor(
                WORKERS, mp_context=ctx, initializer=_init_worker, initargs=(self._barrier,)
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def trial(self, row: Row, how: str, switch_interval: float | None) -> Trial:
        with row.place(self.workdir) as spec:
            client = spec.build()
            cookie = ""
            try:
                cookie = client.first()
                if how == "threads":
                    tallies = self._threads(client, cookie, switch_interval)
                else:
                    self.pool()
                    self._barrier.reset()
                    futures = [
                        self._pool.submit(_process_job, spec, cookie, w, self.count)
                        for w in range(WORKERS)
                    ]
                    tallies = [f.result(timeout=600) for f in futures]
                final = client.final(cookie)
            finally:
                client.close()
                if row.library == "Beaker" and row.store == "redis" and cookie:
                    delete_redis_keys(f"beaker_cache:{cookie.split('=', 1)[1]}:*")
        ok = sum(t.ok for t in tallies)
        errors = sum(t.errors for t in tallies)
        stuck = final if row.kind == "keys" else final - 1
        seconds = max(t.finished for t in tallies) - min(t.started for t in tallies)
        first_error = next((t.first_error for t in tallies if t.first_error), "")
        return Trial(ok - stuck, WORKERS * self.count, errors, seconds, first_error)

    def _threads(self, client: Client, cookie: str, switch_interval: float | None) -> list[Tally]:
        start = threading.Barrier(WORKERS)
        tallies: list[Tally] = [Tally() for _ in range(WORKERS)]
        crashed: list[BaseException] = []

        def body(worker: int) -> None:
            try:
                start.wait(timeout=120)
                tallies[worker] = client.run(cookie, worker, self.count)
            except BaseException as exc:
                crashed.append(exc)

        old = sys.getswitchinterval()
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        try:
            threads = [threading.Thread(target=body, args=(w,)) for w in range(WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(old)
        if crashed:
            raise crashed[0]
        return tallies
