"""The blocking file-system work behind ``FileStore`` and ``AsyncFileStore``.

Layout of the session directory (created 0700; every file 0600; POSIX only)::

    <key>                      one record: a 44-byte header, then the payload
    <key>.lock                 the contract's per-session lock, only while one is held
    <key>.<16 hex>.tmp         a record being written (debris if a writer crashed)
    .guard-<2 hex>             256 permanent files for flock(); never removed

A record file starts with this header (little-endian)::

    offset  0  b"CCfs"     magic
    offset  4  u16         format version (1)
    offset  6  u16         reserved, 0
    offset  8  i64         record version
    offset 16  f64         accessed_at
    offset 24  f64         expires_at
    offset 32  u64         payload length
    offset 40  u32         CRC-32 of bytes 0-39

and its mtime is set to ``ceil(expires_at)`` before it is renamed into place, so
``clear_expired``, ``count`` and ``stats`` are a directory scan plus one ``stat`` per file and never
open a record. Rounding up means a cleanup can be up to a second late, never early, also on
file systems whose timestamps have whole-second resolution.

Writes are atomic: a temporary file in the same directory (``O_EXCL|O_NOFOLLOW``, 0600) is
written, its mtime set, ``fsync``-ed, then renamed over the record (``create`` uses ``link()``,
which fails if the record exists), and the directory is ``fsync``-ed. A crash leaves the old
record or the new one, plus at worst a temporary file that ``clear_expired`` removes a minute on.
``touch`` rewrites the file the same way with the same payload bytes: an in-place write of the
header could be read half-done by a concurrent unguarded ``load``.

Why compare-and-set and locking are race-free across threads and processes: every operation
that changes ``<key>`` or ``<key>.lock`` holds an exclusive ``flock`` on ``.guard-<key[:2]>`` while
it reads, compares and writes. Guard files are never unlinked or replaced, so all processes lock
the same inode; ``flock`` locks belong to the open file description and each operation opens its
own, so threads of one process exclude each other too (``fcntl``/``lockf`` locks would not). Two
operations run unguarded and are still safe: ``load`` without a lock opens a file that is only
ever replaced by rename, so it reads one complete version; ``create`` is one ``link()``, atomic
in the kernel, and a guarded writer that found no record returns "absent" before the create, a
valid order. Guard files are shared by the keys with the same first two hex digits, which costs
little parallelism for a critical section of one small write. ``flock`` must be real: use a local
file system, not NFS.

Untrusted or damaged files: every file is opened relative to the directory's descriptor with
``O_NOFOLLOW|O_NONBLOCK``, so a planted symlink is never followed and a planted FIFO cannot hang a
worker; a symlink, a non-regular file or a file owned by another uid where a record should be
raises :class:`~coatcheck.errors.StoreError` (someone tampered with the directory: fail loudly).
A record whose header is short, has the wrong magic, format or CRC, or whose length disagrees
with the file (zero-byte, truncated, garbage) loads as ``Record(CORRUPT_PAYLOAD, 0, 0.0, 0.0)``:
version 0 never occurs otherwise and the payload decodes with no serializer, so the core logs it
and deletes the record like any other undecodable session. ``touch`` of such a record changes
nothing and returns ``False``; ``update`` replaces it.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import secrets
import stat
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ConfigurationError, StoreError
from .base import LOCKED, LoadResult, LockRequest, Record, StoreStats

__all__ = ["CORRUPT_PAYLOAD", "HEADER_SIZE", "FileDirectory", "check_key"]

MAGIC = b"CCfs"
FORMAT = 1
_HEAD = struct.Struct("<4sHHqddQ")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _CRC.size

#: The payload of a record whose file is damaged; no serializer decodes a leading NUL.
CORRUPT_PAYLOAD = b"\x00coatcheck: damaged FileStore record\x00"
_CORRUPT = Record(CORRUPT_PAYLOAD, 0, 0.0, 0.0)

_LOCK_STATE = struct.Struct("<d")

_KEY = re.compile(r"[0-9a-f]{64}")
_LOCK_NAME = re.compile(r"([0-9a-f]{64})\.lock")
_TEMP_NAME = re.compile(r"[0-9a-f]{64}\.[0-9a-f]{16}\.tmp")
_GUARD_PREFIX = ".guard-"

# A temporary file older than this (by its ctime, on the caller's clock) was left by a crash.
_ORPHAN_AGE = 60.0
# Deletions done under one guard by clear_expired before letting other writers in.
_BATCH = 100
# Latest mtime set (2242): beyond what some file systems store; the header keeps the exact time.
_MAX_MTIME = 2**33

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def check_key(key: str) -> None:
    """Raise ValueError unless ``key`` is 64 lowercase hex digits, the only names ever used."""
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError("a FileStore key is 64 lowercase hexadecimal characters")


def _mtime_ns(expires_at: float) -> int:
    return min(max(math.ceil(expires_at), 0), _MAX_MTIME) * 1_000_000_000


def _encode_header(version: int, accessed_at: float, expires_at: float, length: int) -> bytes:
    head = _HEAD.pack(MAGIC, FORMAT, 0, version, accessed_at, expires_at, length)
    return head + _CRC.pack(zlib.crc32(head))


def _version(data: bytes, file_size: int) -> int:
    """The record version in a header, or 0 if the header or the file length is wrong."""
    if len(data) < HEADER_SIZE:
        return 0
    head = data[: _HEAD.size]
    if _CRC.unpack_from(data, _HEAD.size)[0] != zlib.crc32(head):
        return 0
    magic, fmt, _, version, _, _, length = _HEAD.unpack(head)
    if magic != MAGIC or fmt != FORMAT or length != file_size - HEADER_SIZE or version < 1:
        return 0
    return int(version)


def _decode(data: bytes) -> Record:
    if _version(data, len(data)) == 0:
        return _CORRUPT
    _, _, _, version, accessed_at, expires_at, _ = _HEAD.unpack_from(data)
    return Record(data[HEADER_SIZE:], version, accessed_at, expires_at)


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks: list[bytes] = []
    want = max(size_hint, 0) + 1
    while True:
        chunk = os.read(fd, want)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        want = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink(name: str, d: int) -> bool:
    try:
        os.unlink(name, dir_fd=d)
    except FileNotFoundError:
        return False
    return True


class FileDirectory:
    """A validated session directory with the contract's operations as blocking methods."""

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.path = os.path.abspath(os.fspath(directory))
        self.name = name
        self._uid = os.geteuid()
        self._lock = threading.Lock()
        self._users = 0
        self._retired: list[int] = []
        self._fd: int | None = self._open_directory()

    # -- the directory -----------------------------------------------------------------------

    def _open_directory(self) -> int:
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigurationError(f"cannot use session directory {self.path}: {exc}") from exc
        st = os.fstat(fd)
        problem = None
        if st.st_mode & 0o022:
            # PHP's session.save_path lesson: whoever can write here can plant, swap or delete
            # session files. Refuse rather than warn.
            problem = (
                f"is writable by its group or by everyone (mode {stat.S_IMODE(st.st_mode):o}); "
                f"run: chmod 700 {self.path}"
            )
        elif st.st_uid != self._uid:
            problem = f"belongs to uid {st.st_uid}, not to this process (uid {self._uid})"
        if problem is not None:
            os.close(fd)
            raise ConfigurationError(f"session directory {self.path} {problem}")
        return fd

    @contextmanager
    def _dir(self) -> Iterator[int]:
        # The descriptor stays open while any operation uses it, even across close(): closing
        # it under a running operation could let the number be reused for another directory.
        with self._lock:
            if self._fd is None:
                self._fd = self._open_directory()
            fd = self._fd
            self._users += 1
        try:
            yield fd
        finally:
            with self._lock:
                self._users -= 1
                retired = self._retired if self._users == 0 else []
                if retired:
                    self._retired = []
            for old in retired:
                os.close(old)

    def close(self) -> None:
        """Release the directory descriptor (a later operation opens and checks it again)."""
        with self._lock:
            if self._fd is not None:
                self._retired.append(self._fd)
                self._fd = None
            retired = self._retired if self._users == 0 else []
            if retired:
                self._retired = []
        for old in retired:
            os.close(old)

    # -- files -------------------------------------------------------------------------------

    def _refuse(self, name: str, why: str) -> StoreError:
        return StoreError(
            self.name,
            f"refusing {name[:12]}… in {self.path}: {why} (was the directory tampered with?)",
        )

    def _open(self, name: str, flags: int, d: int, mode: int = 0o600) -> int | None:
        """Open ``name`` without following a symlink; None if absent and not created."""
        try:
            fd = os.open(name, flags | _OPEN_FLAGS, mode, dir_fd=d)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise self._refuse(name, "it is a symbolic link") from exc
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._refuse(name, "it is not a regular file")
            if st.st_uid != self._uid:
                raise self._refuse(name, f"it belongs to uid {st.st_uid}")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read(self, name: str, d: int) -> bytes | None:
        fd = self._open(name, os.O_RDONLY, d)
        if fd is None:
            return None
        try:
            return _read_all(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    @contextmanager
    def _guard(self, d: int, stripe: str) -> Iterator[None]:
        fd = self._open(_GUARD_PREFIX + stripe, os.O_RDWR | os.O_CREAT, d)
        if fd is None:  # pragma: no cover - O_CREAT either creates it or raises
            raise self._refuse(_GUARD_PREFIX + stripe, "it vanished while being created")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # also releases the flock

    def _write_temp(
        self, d: int, key: str, header: bytes, payload: bytes, expires_at: float
    ) -> str:
        tmp = f"{key}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, _NEW_FLAGS, 0o600, dir_fd=d)
        try:
            try:
                _write_all(fd, header)
                _write_all(fd, payload)
                mtime = _mtime_ns(expires_at)
                os.utime(fd, ns=(mtime, mtime))
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink(tmp, d)
            raise
        return tmp

    def _replace(
        self, d: int, key: str, version: int, payload: bytes, accessed_at: float, expires_at: float
    ) -> None:
        header = _encode_header(version, accessed_at, expires_at, len(payload))
        tmp = self._write_temp(d, key, header, payload, expires_at)
        try:
            os.replace(tmp, key, src_dir_fd=d, dst_dir_fd=d)
        except BaseException:
            _unlink(tmp, d)
            raise

    def _held(self, d: int, key: str) -> tuple[str, float] | None:
        data = self._read(key + ".lock", d)
        if data is None or len(data) < _LOCK_STATE.size:
            return None
        try:
            token = data[_LOCK_STATE.size :].decode()
        except UnicodeDecodeError:
            return None
        return token, _LOCK_STATE.unpack_from(data)[0]

    def _release(self, d: int, key: str, token: str) -> None:
        held = self._held(d, key)
        if held is not None and held[0] == token:
            _unlink(key + ".lock", d)

    # -- the contract ------------------------------------------------------------------------

    def load(self, key: str, now: float, lock: LockRequest | None) -> LoadResult:
        """See the store contract; without ``lock`` this opens and reads one file."""
        check_key(key)
        with self._dir() as d:
            if lock is None:
                data = self._read(key, d)
                return None if data is None else _decode(data)
            try:
                os.stat(key, dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                return None  # no record, no lock: and no guard taken for an unknown key
            with self._guard(d, key[:2]):
                data = self._read(key, d)
                if data is None:
                    return None
                held = self._held(d, key)
                if held is not None and held[0] != lock.token and held[1] > now:
                    return LOCKED
                # Rewritten in place: only guarded code reads it, and a torn write after a
                # crash reads as "no lock", the same as an expired one.
                fd = self._open(key + ".lock", os.O_WRONLY | os.O_CREAT, d)
                if fd is None:  # pragma: no cover - O_CREAT either creates it or raises
                    raise self._refuse(key + ".lock", "it vanished while being created")
                try:
                    os.ftruncate(fd, 0)
                    _write_all(fd, _LOCK_STATE.pack(now + lock.ttl) + lock.token.encode())
                finally:
                    os.close(fd)
                return _decode(data)

    def create(self, key: str, payload: bytes, accessed_at: float, expires_at: float) -> bool:
        """Create-if-absent with ``link()``; False when a record (or anything) has the name."""
        check_key(key)
        with self._dir() as d:
            header = _encode_header(1, accessed_at, expires_at, len(payload))
            tmp = self._write_temp(d, key, header, payload, expires_at)
            try:
                os.link(tmp, key, src_dir_fd=d, dst_dir_fd=d, follow_symlinks=False)
            except FileExistsError:
                return False
            finally:
                _unlink(tmp, d)
            os.fsync(d)
            return True

    def update(
        self,
        key: str,
        payload: bytes,
        accessed_at: float,
        expires_at: float,
        expected_version: int | None,
        unlock: str | None,
    ) -> int | None:
        """Compare-and-set under the key's guard; the new version, or None."""
        check_key(key)
        with self._dir() as d:
            with self._guard(d, key[:2]):
                fd = self._open(key, os.O_RDONLY, d)
                if fd is None:
                    return None
                try:
                    header = os.read(fd, HEADER_SIZE)
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                current = _version(header, size)
                if expected_version is not None and current != expected_version:
                    return None
                self._replace(d, key, current + 1, payload, accessed_at, expires_at)
                if unlock is not None:
                    self._release(d, key, unlock)
            os.fsync(d)
            return current + 1

    def touch(self, key: str, accessed_at: float, expires_at: float, unlock: str | None) -> bool:
        """Rewrite the times (same payload, same version); False when there is no record."""
        check_key(key)
        with self._dir() as d:
            with self._guard(d, key[:2]):
                data = self._read(key, d)
                if data is None:
                    return False
                record = _decode(data)
                if record.version == 0:
                    return False  # damaged: nothing worth keeping alive; load reports it
                self._replace(d, key, record.version, record.payload, accessed_at, expires_at)
                if unlock is not None:
                    self._release(d, key, unlock)
            os.fsync(d)
            return True

    def unlock(self, key: str, token: str) -> None:
        """Remove the lock file if ``token`` holds the lock."""
        check_key(key)
        with self._dir() as d:
            try:
                os.stat(key + ".lock", dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                return
            with self._guard(d, key[:2]):
                self._release(d, key, token)

    def delete(self, key: str) -> None:
        """Remove the record and its lock; nothing to do if absent."""
        check_key(key)
        with self._dir() as d:
            with self._guard(d, key[:2]):
                removed = _unlink(key, d)
                _unlink(key + ".lock", d)
            if removed:
                os.fsync(d)

    def _scan(self, d: int, temps: bool) -> Iterator[tuple[str, os.stat_result | None]]:
        """Names of records (with their lstat), lock files and, if asked, temp files (lstat).

        No file is opened: ``stat`` gives a record's expiry (mtime) and payload size.
        """
        # A descriptor of its own: scandir(fd) dup()s it, and a dup shares the read position
        # with every other scan (another thread, or a process after fork) of the original.
        # DirEntry.stat() uses this descriptor, so it stays open until the scan ends.
        private = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=d)
        try:
            with os.scandir(private) as entries:
                for entry in entries:
                    name = entry.name
                    if name.endswith(".lock"):
                        yield name, None
                        continue
                    if len(name) != 64 and not (temps and name.endswith(".tmp")):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted since the directory was read
                    if stat.S_ISREG(st.st_mode):
                        yield name, st
        finally:
            os.close(private)

    def clear_expired(self, now: float) -> int:
        """Remove expired records (by mtime), orphan lock files and old temp files."""
        removed = 0
        with self._dir() as d:
            expired: dict[str, list[str]] = {}
            locks: list[str] = []
            records: set[str] = set()
            orphans: list[str] = []
            for name, st in self._scan(d, temps=True):
                if st is None:
                    if (match := _LOCK_NAME.fullmatch(name)) is not None:
                        locks.append(match.group(1))
                elif _KEY.fullmatch(name):
                    records.add(name)
                    if st.st_mtime <= now:
                        expired.setdefault(name[:2], []).append(name)
                elif _TEMP_NAME.fullmatch(name) and st.st_ctime <= now - _ORPHAN_AGE:
                    orphans.append(name)
            stray: dict[str, list[str]] = {}
            for key in locks:
                if key not in records:
                    stray.setdefault(key[:2], []).append(key)
            for stripe in sorted(expired.keys() | stray.keys()):
                todo = [(k, True) for k in expired.get(stripe, [])]
                todo += [(k, False) for k in stray.get(stripe, [])]
                for start in range(0, len(todo), _BATCH):
                    with self._guard(d, stripe):
                        for key, is_record in todo[start : start + _BATCH]:
                            removed += self._remove_if_dead(d, key, now, is_record)
            for name in orphans:
                _unlink(name, d)
            if removed or orphans:
                os.fsync(d)
        return removed

    def _remove_if_dead(self, d: int, key: str, now: float, is_record: bool) -> int:
        # Checked again under the guard: an update or touch may have renewed the record since
        # the scan, or a create may have given a stray lock file its record.
        try:
            st = os.stat(key, dir_fd=d, follow_symlinks=False)
        except FileNotFoundError:
            _unlink(key + ".lock", d)
            return 0
        if not is_record or not stat.S_ISREG(st.st_mode) or st.st_mtime > now:
            return 0
        os.unlink(key, dir_fd=d)
        _unlink(key + ".lock", d)
        return 1

    def stats(self, now: float) -> StoreStats:
        """Live and expired records and payload bytes, from one scan of names and sizes."""
        live = expired = size = 0
        with self._dir() as d:
            for name, st in self._scan(d, temps=False):
                if st is not None and _KEY.fullmatch(name):
                    if st.st_mtime > now:
                        live += 1
                    else:
                        expired += 1
                    size += max(st.st_size - HEADER_SIZE, 0)
        return StoreStats(live, expired, size)
