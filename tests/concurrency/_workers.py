"""The requests the race tests fire at one session, shared by their threads and processes.

Everything here is importable and picklable, so a ``spawn`` worker process can run a whole
:class:`Job` from a store URL: it builds its own store and manager, exactly as another server
process of the same application would.
"""

from __future__ import annotations

import multiprocessing.synchronize
import time
from dataclasses import dataclass, field
from typing import Any

from coatcheck import SessionConflict, SessionManager
from coatcheck.stores import store_from_url

__all__ = [
    "Job",
    "Outcome",
    "distinct_writes",
    "increments",
    "init_worker",
    "run_job",
]


@dataclass
class Outcome:
    """What one worker saw: saves that stuck, and conflicts it retried."""

    saves: int = 0
    conflicts: int = 0
    gave_up: int = 0
    started: float = 0.0
    finished: float = 0.0


def increments(
    manager: SessionManager, ticket: str, count: int, *, on_conflict: str = "raise"
) -> Outcome:
    """``count`` requests, each a full read-modify-write of the counter ``n``.

    On :class:`SessionConflict`: ``"raise"`` it; ``"retry"`` replays the whole request (how an
    application counts in ``merge`` mode with the policy ``raise``); ``"count"`` drops the
    request and counts it in ``gave_up``, as an application answering an error would.
    """
    outcome = Outcome(started=time.monotonic())
    for _ in range(count):
        while True:
            session = manager.open(ticket)
            if session.is_new:
                raise AssertionError("the shared session vanished mid-test")
            session["n"] = session["n"] + 1
            try:
                manager.save(session)
            except SessionConflict:
                if on_conflict == "raise":
                    raise
                if on_conflict == "retry":
                    outcome.conflicts += 1
                    continue
                outcome.gave_up += 1
            else:
                outcome.saves += 1
            break
    outcome.finished = time.monotonic()
    return outcome


def distinct_writes(manager: SessionManager, ticket: str, writer: int, count: int) -> Outcome:
    """``count`` requests, each setting a key no other writer touches: ``w<writer>-<j>``."""
    outcome = Outcome(started=time.monotonic())
    for j in range(count):
        session = manager.open(ticket)
        if session.is_new:
            raise AssertionError("the shared session vanished mid-test")
        session[f"w{writer}-{j}"] = j
        manager.save(session)
        outcome.saves += 1
    outcome.finished = time.monotonic()
    return outcome


@dataclass(frozen=True)
class Job:
    """One worker process's share of a race: which store, which session, what to do."""

    url: str
    ticket: str
    kind: str  # "increments" or "distinct"
    writer: int
    count: int
    settings: dict[str, Any] = field(default_factory=dict)
    on_conflict: str = "raise"


_start: multiprocessing.synchronize.Barrier | None = None


def init_worker(start: multiprocessing.synchronize.Barrier) -> None:
    """Pool initializer: keep the barrier that makes every worker start its job together."""
    global _start
    _start = start


def run_job(job: Job) -> Outcome:
    """Run ``job`` in this worker process, on a store of its own built from ``job.url``."""
    store = store_from_url(job.url)
    try:
        manager = SessionManager(store, **job.settings)
        if _start is not None:
            # All workers wait here, so their requests overlap instead of running in turn.
            _start.wait(timeout=60)
        if job.kind == "increments":
            return increments(manager, job.ticket, job.count, on_conflict=job.on_conflict)
        if job.kind == "distinct":
            return distinct_writes(manager, job.ticket, job.writer, job.count)
        raise ValueError(f"unknown job kind {job.kind!r}")
    finally:
        store.close()
