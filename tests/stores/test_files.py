"""FileStore beyond the contract: permissions, hostile names and files, crashes, cleanup."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import SessionManager
from coatcheck._sansio.ids import storage_key
from coatcheck.errors import ConfigurationError, StoreError
from coatcheck.stores import (
    LOCKED,
    ClearExpired,
    Create,
    Delete,
    FileStore,
    Load,
    LockRequest,
    Record,
    Touch,
    Unlock,
    Update,
    store_from_url,
)
from coatcheck.stores._files_format import CORRUPT_PAYLOAD, HEADER_SIZE

from ._workers import run_cas_processes

NOW = float(int(time.time()))
HOUR = 3600.0
IS_ROOT = os.geteuid() == 0


def key(n: int | str) -> str:
    return hashlib.sha256(f"files-{n}".encode()).hexdigest()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def store(directory: Path) -> Iterator[FileStore]:
    s = FileStore(directory)
    yield s
    s.close()


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every path under ``root`` with its mode, mtime and content (or link target)."""
    result: dict[str, tuple[int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = ""
        result[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, content)
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- permissions ---------------------------------------------------------------------------


def test_directory_is_0700_and_every_file_0600(store: FileStore, directory: Path) -> None:
    assert mode(directory) == 0o700
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert isinstance(store.load(Load(key(1), NOW, LockRequest("a", 30))), Record)
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([key(1), key(1) + ".lock", ".guard-" + key(1)[:2]])
    assert {p.name: mode(p) for p in directory.iterdir()} == {n: 0o600 for n in names}


@pytest.mark.parametrize("bits", [0o777, 0o770, 0o702, 0o720])
def test_group_or_world_writable_directory_is_refused(directory: Path, bits: int) -> None:
    directory.mkdir()
    directory.chmod(bits)
    with pytest.raises(ConfigurationError, match="writable by its group or by everyone"):
        FileStore(directory)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give the directory to another user")
def test_directory_owned_by_another_user_is_refused(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    with pytest.raises(ConfigurationError, match="belongs to uid 65534"):
        FileStore(directory)


def test_a_readable_existing_directory_is_accepted(directory: Path) -> None:
    # Only write access matters: names are SHA-256 digests and the files are 0600.
    directory.mkdir()
    directory.chmod(0o755)
    FileStore(directory).close()


# -- hostile keys and files ----------------------------------------------------------------

HOSTILE_KEYS = [
    "../outside",
    "../../../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "..",
    ".",
    "",
    "..\\..\\x",
    "%2e%2e%2fx",
    "../" + "a" * 61,
    "a" * 63 + "/",
    "A" * 64,
    "a" * 64 + "\n",
    "a" * 64 + ".lock",
    "a" * 65,
    "\x00" + "a" * 63,
]


def test_traversal_keys_never_touch_the_file_system(tmp_path: Path, directory: Path) -> None:
    store = FileStore(directory)
    assert store.create(Create(key(1), b"victim", NOW, NOW + HOUR, NOW))
    (tmp_path / "outside").write_bytes(b"outside")
    before = snapshot(tmp_path)
    for bad in HOSTILE_KEYS:
        calls = [
            lambda k=bad: store.load(Load(k, NOW)),
            lambda k=bad: store.load(Load(k, NOW, LockRequest("t", 30))),
            lambda k=bad: store.create(Create(k, b"evil", NOW, NOW + HOUR, NOW)),
            lambda k=bad: store.update(Update(k, b"evil", NOW, NOW + HOUR, NOW, None)),
            lambda k=bad: store.touch(Touch(k, NOW, NOW + HOUR, NOW)),
            lambda k=bad: store.unlock(Unlock(k, "t")),
            lambda k=bad: store.delete(Delete(k)),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="64 lowercase hexadecimal"):
                call()
    assert snapshot(tmp_path) == before
    store.close()


def test_a_planted_symlink_is_never_followed(tmp_path: Path, store: FileStore) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    link = store.directory + "/" + key(1)
    os.symlink(target, link)
    for call in [
        lambda: store.load(Load(key(1), NOW)),
        lambda: store.load(Load(key(1), NOW, LockRequest("t", 30))),
        lambda: store.update(Update(key(1), b"evil", NOW, NOW + HOUR, NOW, None)),
        lambda: store.touch(Touch(key(1), NOW, NOW + HOUR, NOW)),
    ]:
        with pytest.raises(StoreError, match="symbolic link"):
            call()
    assert store.create(Create(key(1), b"evil", NOW, NOW + HOUR, NOW)) is False  # the name is taken
    assert target.read_bytes() == b"precious"
    store.delete(Delete(key(1)))  # removes the link itself, never what it points to
    assert not os.path.lexists(link)
    assert target.read_bytes() == b"precious"
    # A link planted where the lock file or a guard file goes is refused the same way.
    assert store.create(Create(key(1), b"ok", NOW, NOW + HOUR, NOW))
    os.symlink(target, link + ".lock")
    with pytest.raises(StoreError, match="symbolic link"):
        store.load(Load(key(1), NOW, LockRequest("t", 30)))
    os.unlink(link + ".lock")
    os.symlink(target, store.directory + "/.guard-" + key(2)[:2])
    with pytest.raises(StoreError, match="symbolic link"):
        store.delete(Delete(key(2)))
    assert target.read_bytes() == b"precious"


def test_a_planted_fifo_does_not_hang_a_load(store: FileStore) -> None:
    os.mkfifo(store.directory + "/" + key(1), 0o600)
    with pytest.raises(StoreError, match="not a regular file"):
        store.load(Load(key(1), NOW))


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give a file to another user")
def test_a_record_owned_by_another_user_is_refused(store: FileStore) -> None:
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    os.chown(store.directory + "/" + key(1), 65534, 65534)
    with pytest.raises(StoreError, match="belongs to uid 65534"):
        store.load(Load(key(1), NOW))
    with pytest.raises(StoreError, match="belongs to uid 65534"):
        store.update(Update(key(1), b"y", NOW, NOW + HOUR, NOW, None))


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
    assert store.load(Load(key(1), NOW)) == Record(CORRUPT_PAYLOAD, 0, 0.0, 0.0)
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


# -- failures while writing ----------------------------------------------------------------


def temp_files(directory: str) -> list[str]:
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


def make_read_only(directory: Path) -> None:
    if IS_ROOT:
        # Root ignores permission bits; the immutable attribute binds it too.
        done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a directory read-only as root: {done.stderr!r}")
    else:
        directory.chmod(0o500)


def make_writable(directory: Path) -> None:
    if IS_ROOT:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o700)


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


# -- expiry and cleanup --------------------------------------------------------------------


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


# -- concurrency ---------------------------------------------------------------------------


def test_four_processes_incrementing_one_session_lose_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    store = FileStore(directory)
    assert store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))

    run_cas_processes(f"file://{directory}", key("counter"), processes=4, n=250, now=NOW)

    record = store.load(Load(key("counter"), NOW))
    assert isinstance(record, Record)
    assert (record.payload, record.version) == (b"1000", 1001)
    assert temp_files(store.directory) == []
    store.close()


def test_threads_sharing_one_store_lose_nothing(store: FileStore) -> None:
    assert store.create(Create(key("counter"), b"0", NOW, NOW + HOUR, NOW))

    def work() -> None:
        done = 0
        while done < 50:
            record = store.load(Load(key("counter"), NOW))
            assert isinstance(record, Record)
            new = str(int(record.payload) + 1).encode()
            if store.update(Update(key("counter"), new, NOW, NOW + HOUR, NOW, record.version)):
                done += 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = store.load(Load(key("counter"), NOW))
    assert isinstance(record, Record)
    assert record.payload == b"400"


def test_concurrent_scans_each_see_every_record(store: FileStore) -> None:
    # Scans from several threads must not share one directory read position.
    for n in range(300):
        Path(store.directory, key(n)).write_bytes(b"")
    counts: list[int | None] = []

    def work() -> None:
        for _ in range(10):
            counts.append(store.count(NOW - HOUR))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
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


# -- construction --------------------------------------------------------------------------


def test_from_url(tmp_path: Path) -> None:
    store = store_from_url(f"file://{tmp_path}/from-url")
    assert isinstance(store, FileStore)
    assert store.name == f"file://{tmp_path}/from-url"
    assert mode(tmp_path / "from-url") == 0o700
    store.close()
    spaced = FileStore.from_url(f"file://localhost{tmp_path}/with%20space")
    assert spaced.directory == f"{tmp_path}/with space"
    spaced.close()


@pytest.mark.parametrize(
    "url", ["file://relative/dir", "file:relative", "file:///tmp/x?mode=1", "file://host/tmp/x"]
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        FileStore.from_url(url)


def test_close_then_use_reopens_the_checked_directory(store: FileStore, directory: Path) -> None:
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    store.close()
    assert isinstance(store.load(Load(key(1), NOW)), Record)
    store.close()
    shutil.rmtree(directory)
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(ConfigurationError):
        store.load(Load(key(1), NOW))
