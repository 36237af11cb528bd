"""FileStore under contention: processes and threads on one directory."""

from __future__ import annotations

from pathlib import Path

from coatcheck.stores import LOCKED, Create, FileStore, Load, LockRequest, Record, Unlock, Update
from tests.support.threads import run_threads

from .._support import HOUR, NOW, key
from .._workers import counter_in_processes, counter_in_threads
from ._directory import temp_files


def test_four_processes_incrementing_one_session_lose_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    store = FileStore(directory)
    record = counter_in_processes(store, f"file://{directory}", processes=4, n=250)
    assert (record.payload, record.version) == (b"1000", 1001)
    assert temp_files(store.directory) == []
    store.close()


def test_threads_sharing_one_store_lose_nothing(store: FileStore) -> None:
    assert counter_in_threads(store, threads=8, n=50).payload == b"400"


def test_concurrent_scans_each_see_every_record(store: FileStore) -> None:
    # Scans from several threads must not share one directory read position.
    for n in range(300):
        Path(store.directory, key(n)).write_bytes(b"")
    counts: list[int | None] = []

    def work() -> None:
        for _ in range(10):
            counts.append(store.count(NOW - HOUR))

    run_threads(work, [()] * 8)
    assert counts == [300] * 80


def test_the_session_lock_is_seen_by_another_store_on_the_same_directory(
    store: FileStore,
) -> None:
    other = FileStore(store.directory)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 30))), Record)
    assert other.load(Load(key(1), NOW, LockRequest("b", 30))) is LOCKED
    assert other.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, 1, unlock="b")) == 2
    assert other.load(Load(key(1), NOW, LockRequest("b", 30))) is LOCKED  # "a" still holds it
    store.unlock(Unlock(key(1), "a"))
    assert isinstance(other.load(Load(key(1), NOW, LockRequest("b", 30))), Record)
    other.close()
