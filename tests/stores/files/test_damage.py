"""FileStore when a record is damaged or a write fails: the old record stays, no debris."""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path

import pytest

from coatcheck import SessionManager
from coatcheck._sansio.ids import storage_key
from coatcheck.stores import ClearExpired, Create, Damaged, FileStore, Load, Record, Touch, Update
from coatcheck.stores._files_format import HEADER_SIZE

from .._support import HOUR, NOW, key
from ._directory import make_read_only, make_writable, temp_files

# -- damaged records -----------------------------------------------------------------------


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated-header":
        path.write_bytes(data[: HEADER_SIZE - 3])
    elif how == "truncated-payload":
        path.write_bytes(data[:-1])
    elif how == "garbage":
        path.write_bytes(os.urandom(200))
    elif how == "flipped-header-bit":
        path.write_bytes(data[:10] + bytes([data[10] ^ 1]) + data[11:])


DAMAGE = ["empty", "truncated-header", "truncated-payload", "garbage", "flipped-header-bit"]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_record_loads_as_undecodable(store: FileStore, how: str) -> None:
    assert store.create(Create(key(1), b"payload", NOW, NOW + HOUR, NOW))
    damage(Path(store.directory, key(1)), how)
    assert store.load(Load(key(1), NOW)) == Damaged("damaged-file")
    assert store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)) is False
    assert store.update(Update(key(1), b"x", NOW, NOW + HOUR, NOW, 3)) is None
    assert store.update(Update(key(1), b"fresh", NOW, NOW + HOUR, NOW, None)) == 1
    assert store.load(Load(key(1), NOW)) == Record(b"fresh", 1, NOW, NOW + HOUR)


@pytest.mark.parametrize("how", DAMAGE)
def test_the_core_replaces_a_damaged_session_and_deletes_it(
    store: FileStore, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager = SessionManager(store, clock=lambda: NOW, idle_timeout=1800)
    session = manager.open(None)
    session["user"] = "alice"
    ticket = manager.save(session).ticket
    assert ticket is not None
    path = Path(store.directory, storage_key(ticket))
    damage(path, how)
    with caplog.at_level(logging.WARNING, logger="coatcheck.security"):
        again = manager.open(ticket)
    assert "user" not in again
    assert again.id != ticket
    assert not path.exists()
    assert any(r.name == "coatcheck.security" for r in caplog.records)


# -- failures while writing ---------------------------------------------------------------


def test_read_only_directory_fails_the_write_and_keeps_the_old_record(
    store: FileStore, directory: Path
) -> None:
    assert store.create(Create(key(1), b"old", NOW, NOW + HOUR, NOW))
    assert store.touch(Touch(key(1), NOW, NOW + HOUR, NOW))  # creates the guard file first
    make_read_only(directory)
    try:
        with pytest.raises(PermissionError):
            store.update(Update(key(1), b"new", NOW, NOW + HOUR, NOW, 1))
        with pytest.raises(PermissionError):
            store.touch(Touch(key(1), NOW, NOW + 2 * HOUR, NOW))
        with pytest.raises(PermissionError):
            store.create(Create(key(2), b"new", NOW, NOW + HOUR, NOW))
        assert isinstance(PermissionError(), store.unavailable_errors)
    finally:
        make_writable(directory)
    assert store.load(Load(key(1), NOW)) == Record(b"old", 1, NOW, NOW + HOUR)
    assert temp_files(store.directory) == []


def test_disk_full_mid_write_keeps_the_old_record_and_leaves_no_temp_file(
    store: FileStore,
) -> None:
    # RLIMIT_FSIZE makes write() fail with EFBIG part-way, like a full disk; it binds root too
    # and Python ignores the SIGXFSZ that comes with it.
    assert store.create(Create(key(1), b"old", NOW, NOW + HOUR, NOW))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(OSError, match="too large"):
            store.update(Update(key(1), b"n" * 100_000, NOW, NOW + HOUR, NOW, 1))
        with pytest.raises(OSError, match="too large"):
            store.create(Create(key(2), b"n" * 100_000, NOW, NOW + HOUR, NOW))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert store.load(Load(key(1), NOW)) == Record(b"old", 1, NOW, NOW + HOUR)
    assert store.load(Load(key(2), NOW)) is None
    assert temp_files(store.directory) == []


def test_a_crash_before_the_rename_leaves_debris_that_cleanup_removes(store: FileStore) -> None:
    assert store.create(Create(key(1), b"old", NOW, NOW + HOUR, NOW))
    # What a writer killed between write and rename leaves behind: a full temp file.
    orphan = Path(store.directory, f"{key(1)}.0123456789abcdef.tmp")
    orphan.write_bytes(b"new, never renamed")
    orphan.chmod(0o600)
    born = orphan.stat().st_ctime
    assert store.load(Load(key(1), NOW)) == Record(b"old", 1, NOW, NOW + HOUR)
    assert store.clear_expired(ClearExpired(born + 30)) == 0
    assert orphan.exists()  # a writer may still be about to rename it
    assert store.clear_expired(ClearExpired(born + 61)) == 0  # debris is not counted as records
    assert not orphan.exists()
    assert store.load(Load(key(1), NOW)) == Record(b"old", 1, NOW, NOW + HOUR)
