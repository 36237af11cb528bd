"""FileStore's expiry and cleanup: mtimes mirror expiry, cleanup opens no record."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from coatcheck.stores import (
    ClearExpired,
    Create,
    FileStore,
    Load,
    LockRequest,
    Record,
    Touch,
    Update,
)

from .._support import HOUR, NOW, key


def test_mtime_mirrors_expiry_rounded_up(store: FileStore) -> None:
    path = Path(store.directory, key(1))
    assert store.create(Create(key(1), b"x", NOW, NOW + 10.25, NOW))
    assert path.stat().st_mtime_ns == (NOW + 11) * 1_000_000_000
    assert store.touch(Touch(key(1), NOW, NOW + 100, NOW))
    assert path.stat().st_mtime == NOW + 100
    assert store.update(Update(key(1), b"y", NOW, NOW + 50.5, NOW, None)) == 2
    assert path.stat().st_mtime == NOW + 51
    assert store.count(NOW + 50) == 1
    assert store.clear_expired(ClearExpired(NOW + 50.9)) == 0  # a second late at most, never early
    assert store.clear_expired(ClearExpired(NOW + 51)) == 1


def test_cleanup_of_5000_expired_records_opens_none_of_them(store: FileStore) -> None:
    # One record written by the store, cloned byte for byte (and mtime) under 4999 more names:
    # the same files 5000 creates would leave, without 10,000 fsyncs in a unit test.
    assert store.create(Create(key("dead-0"), b"secret", NOW - 100, NOW - 1, NOW - 100))
    first = Path(store.directory, key("dead-0"))
    data, mtime = first.read_bytes(), first.stat().st_mtime_ns
    for n in range(1, 5000):
        clone = Path(store.directory, key(f"dead-{n}"))
        clone.write_bytes(data)
        os.utime(clone, ns=(mtime, mtime))
    assert store.load(Load(key("dead-4999"), NOW)) == store.load(Load(key("dead-0"), NOW))
    assert store.stats(NOW).expired == 5000
    for n in range(10):
        assert store.create(Create(key(f"live-{n}"), b"x", NOW, NOW + HOUR, NOW))
    opened: list[str] = []
    watching = True

    def audit(event: str, args: tuple[object, ...]) -> None:
        if watching and event == "open":
            opened.append(str(args[0]))

    # Audit hooks cannot be removed; this one goes quiet when the flag drops.
    sys.addaudithook(audit)
    try:
        started = time.perf_counter()
        removed = store.clear_expired(ClearExpired(NOW))
        elapsed = time.perf_counter() - started
    finally:
        watching = False
    assert removed == 5000
    records_opened = [name for name in opened if len(os.path.basename(name)) == 64]
    assert records_opened == []
    # Besides the directory itself (to scan it), only the shared guard files, once per batch.
    assert {os.path.basename(n)[:7] for n in opened} <= {".", ".guard-"}
    assert len(opened) <= 256 + 5000 // 100
    assert store.count(NOW) == 10
    assert sorted(n for n in os.listdir(store.directory) if not n.startswith(".")) == sorted(
        key(f"live-{n}") for n in range(10)
    )
    print(f"clear_expired of 5000 of 5010 files: {elapsed * 1000:.0f} ms")


def test_cleanup_removes_lock_files_with_their_records(store: FileStore) -> None:
    assert store.create(Create(key(1), b"x", NOW, NOW + 10, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 300))), Record)
    # A lock file left without its record (a crash between the two unlinks).
    stray = Path(store.directory, key(2) + ".lock")
    stray.write_bytes(b"")
    assert store.clear_expired(ClearExpired(NOW + 20)) == 1
    assert sorted(n for n in os.listdir(store.directory) if not n.startswith(".")) == []


def test_count_and_stats_ignore_debris(store: FileStore) -> None:
    assert store.create(Create(key(1), b"12345", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 30))), Record)
    Path(store.directory, f"{key(2)}.0123456789abcdef.tmp").write_bytes(b"x" * 100)
    Path(store.directory, "README").write_bytes(b"not ours")
    stats = store.stats(NOW)
    assert (stats.live, stats.expired, stats.payload_bytes) == (1, 0, 5)
