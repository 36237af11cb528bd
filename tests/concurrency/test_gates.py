"""Lock mode's line: a process's requests for one session get its lock in arrival order, each
woken when the one before it saves, on every store (coatcheck._gates through the managers)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from coatcheck import AsyncSessionManager, SessionLocked, SessionManager
from coatcheck._gates import AsyncGate, Gate

from ..support._async.backends import BACKENDS, async_store_for

WAITERS = 16
HOLD = 0.01


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _stored(manager: AsyncSessionManager) -> str:
    session = await manager.open(None)
    session["n"] = 0
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    return outcome.ticket


@pytest.mark.asyncio
async def test_waiters_get_the_lock_in_arrival_order(backend: str, tmp_path: Path) -> None:
    async with async_store_for(backend, tmp_path) as store:
        manager = AsyncSessionManager(store, concurrency="lock", lock_wait=5.0)
        ticket = await _stored(manager)
        served: list[int] = []
        holder = await manager.open(ticket)  # everyone below queues behind this one

        async def request(index: int) -> None:
            session = await manager.open(ticket)
            served.append(index)
            session["n"] += 1
            await asyncio.sleep(HOLD)
            await manager.save(session)

        tasks = []
        for index in range(WAITERS):
            tasks.append(asyncio.create_task(request(index)))
            await asyncio.sleep(0.002)  # arrivals in a known order
        started = time.monotonic()
        await manager.save(holder)
        await asyncio.gather(*tasks)
        assert served == list(range(WAITERS))
        assert (await manager.open(ticket, read_only=True))["n"] == WAITERS
        # Woken, not polling: the line drains in about its hold time, with no back-off gaps.
        assert time.monotonic() - started < WAITERS * HOLD + 2.0


@pytest.mark.asyncio
async def test_a_waiter_that_gives_up_or_is_cancelled_leaves_the_line(
    backend: str, tmp_path: Path
) -> None:
    async with async_store_for(backend, tmp_path) as store:
        manager = AsyncSessionManager(store, concurrency="lock", lock_wait=0.2)
        ticket = await _stored(manager)
        holder = await manager.open(ticket)
        started = time.monotonic()
        with pytest.raises(SessionLocked):
            await manager.open(ticket)
        assert 0.15 < time.monotonic() - started < 2.0
        cancelled = asyncio.create_task(manager.open(ticket))
        await asyncio.sleep(0.02)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await manager.save(holder)
        started = time.monotonic()
        after = await manager.open(ticket)  # nobody left ahead of it
        assert time.monotonic() - started < 0.1
        await manager.save(after)


@pytest.mark.asyncio
async def test_a_holder_that_never_saves_is_taken_over_at_the_lock_timeout(
    backend: str, tmp_path: Path
) -> None:
    async with async_store_for(backend, tmp_path) as store:
        manager = AsyncSessionManager(store, concurrency="lock", lock_wait=5.0, lock_timeout=1)
        ticket = await _stored(manager)
        await manager.open(ticket)  # this request "dies" holding its turn and the lock
        started = time.monotonic()
        session = await manager.open(ticket)
        assert 0.8 < time.monotonic() - started < 4.0
        assert session["n"] == 0
        await manager.save(session)


def test_threads_get_the_lock_in_arrival_order(tmp_path: Path) -> None:
    manager = SessionManager(f"sqlite:///{tmp_path / 's.db'}", concurrency="lock", lock_wait=5.0)
    manager.store.create_tables()  # type: ignore[attr-defined]
    first = manager.open(None)
    first["n"] = 0
    ticket = manager.save(first).ticket
    assert ticket is not None
    holder = manager.open(ticket)
    served: list[int] = []

    def request(index: int) -> None:
        session = manager.open(ticket)
        served.append(index)
        session["n"] += 1
        time.sleep(HOLD)
        manager.save(session)

    threads = []
    for index in range(WAITERS):
        thread = threading.Thread(target=request, args=(index,))
        thread.start()
        threads.append(thread)
        time.sleep(0.005)
    manager.save(holder)
    for thread in threads:
        thread.join()
    assert served == list(range(WAITERS))
    assert manager.open(ticket, read_only=True)["n"] == WAITERS
    manager.close()


def test_gates_start_empty_in_a_forked_child() -> None:
    import os

    gate, async_gate = Gate(), AsyncGate()
    turn = gate.enter("k", 1.0, 30.0)
    assert gate.holds(turn)
    pid = os.fork()
    if pid == 0:  # the child: the parent's holder is not here
        try:
            child_turn = gate.enter("k", 0.0, 30.0)
            os._exit(0 if gate.holds(child_turn) and not async_gate._lines else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    gate.leave(turn, 30.0)
    assert not gate._lines
