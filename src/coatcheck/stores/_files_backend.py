"""The contract's operations behind ``FileStore`` and ``AsyncFileStore``, as blocking file work.

The names in the session directory and the bytes in its files (record header, lock file, mtime
rule, damaged records) are in :mod:`coatcheck.stores._files_format`; opening the directory and
its files safely is :mod:`coatcheck.stores._files_directory`. This module holds the operations
on them, and the reasons they are atomic and race-free:

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

On the event loop (:attr:`FileDirectory.inline`, used by ``AsyncFileStore`` before it hands an
operation to a worker thread) run only the operations that wait for no device: ``load`` and
``unlock``, and, on a memory-backed file system (tmpfs, ramfs: :mod:`._files_mounts`) where
``fsync`` returns at once, ``create``, ``update``, ``touch`` and ``delete`` too. Their guard is
taken with ``LOCK_NB``: when another operation holds it they raise ``WouldBlock`` before
changing anything and run again in the thread, waiting there. The bound: **an inline operation
waits on no lock and on no disk**; it opens, reads and writes a few small files of a local
directory through the page cache. On any other file system every write of a record syncs to
the disk, so ``create``, ``update``, ``touch`` and ``delete`` go to the thread, as do
``clear_expired`` and ``stats`` (a scan of the whole directory) everywhere.

Files are opened and checked by :class:`~coatcheck.stores._files_directory.SafeDirectory`
(no symlink followed, no FIFO opened, another user's file refused). ``touch`` of a damaged
record changes nothing and returns ``False``; ``update`` replaces it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from functools import partial
from typing import NoReturn

from .._flavours import WouldBlock
from ._files_directory import SafeDirectory, unlink, write_all
from ._files_format import (
    HEADER_SIZE,
    KEY,
    LOCK_NAME,
    TEMP_NAME,
    check_key,
    decode,
    decode_lock,
    encode_header,
    encode_lock,
    header_version,
)
from ._files_mounts import fsync_is_free
from .base import (
    LOCKED,
    ClearExpired,
    Create,
    Damaged,
    Delete,
    Load,
    LoadResult,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

__all__ = ["FileDirectory"]

# A temporary file older than this (by its ctime, on the caller's clock) was left by a crash.
_ORPHAN_AGE = 60.0
# Deletions done under one guard by clear_expired before letting other writers in.
_BATCH = 100


class FileDirectory:
    """A validated session directory with the contract's operations as blocking methods."""

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.path = os.path.abspath(os.fspath(directory))
        self.name = name
        self._files = SafeDirectory(self.path, name)
        self.inline = _Inline(self, writes=fsync_is_free(self.path))

    def close(self) -> None:
        """Release the directory descriptor (a later operation opens and checks it again)."""
        self._files.close()

    def _held(self, d: int, key: str) -> tuple[str, float] | None:
        data = self._files.read(key + ".lock", d)
        return None if data is None else decode_lock(data)

    def _release(self, d: int, key: str, token: str) -> None:
        held = self._held(d, key)
        if held is not None and held[0] == token:
            unlink(key + ".lock", d)

    # -- the contract ------------------------------------------------------------------------

    def load(self, op: Load, wait: bool = True) -> LoadResult:
        """See the store contract; without a lock this opens and reads one file. ``wait=False``:
        :class:`WouldBlock` instead of waiting for the key's guard."""
        key, now, lock = op.key, op.now, op.lock
        check_key(key)
        with self._files.using() as d:
            if lock is None:
                data = self._files.read(key, d)
                return None if data is None else decode(data)
            try:
                os.stat(key, dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                return None  # no record, no lock: and no guard taken for an unknown key
            with self._files.guard(d, key[:2], wait):
                data = self._files.read(key, d)
                if data is None:
                    return None
                held = self._held(d, key)
                if held is not None and held[0] != lock.token and held[1] > now:
                    return LOCKED
                # Rewritten in place: only guarded code reads it, and a torn write after a
                # crash reads as "no lock", the same as an expired one.
                fd = self._files.open(key + ".lock", os.O_WRONLY | os.O_CREAT, d)
                if fd is None:  # pragma: no cover - O_CREAT either creates it or raises
                    raise self._files.refuse(key + ".lock", "it vanished while being created")
                try:
                    os.ftruncate(fd, 0)
                    write_all(fd, encode_lock(lock.token, now + lock.ttl))
                finally:
                    os.close(fd)
                return decode(data)

    def create(self, op: Create) -> bool:
        """Create-if-absent with ``link()``; False when a record (or anything) has the name."""
        key, payload, accessed_at, expires_at = op.key, op.payload, op.accessed_at, op.expires_at
        check_key(key)
        with self._files.using() as d:
            header = encode_header(1, accessed_at, expires_at, len(payload))
            tmp = self._files.write_temp(d, key, header, payload, expires_at)
            try:
                os.link(tmp, key, src_dir_fd=d, dst_dir_fd=d, follow_symlinks=False)
            except FileExistsError:
                return False
            finally:
                unlink(tmp, d)
            os.fsync(d)
            return True

    def update(self, op: Update, wait: bool = True) -> int | None:
        """Compare-and-set under the key's guard; the new version, or None (``wait``: as for
        :meth:`load`)."""
        key, payload, expected_version, unlock = op.key, op.payload, op.expected_version, op.unlock
        accessed_at, expires_at = op.accessed_at, op.expires_at
        check_key(key)
        with self._files.using() as d:
            with self._files.guard(d, key[:2], wait):
                current = self._version(d, key)
                if current is None:
                    return None
                if expected_version is not None and current != expected_version:
                    return None
                self._files.replace(d, key, current + 1, payload, accessed_at, expires_at)
                if unlock is not None:
                    self._release(d, key, unlock)
            os.fsync(d)
            return current + 1

    def touch(self, op: Touch, wait: bool = True) -> bool:
        """Rewrite the times (same payload, same version); False when there is no record."""
        key, accessed_at, expires_at, unlock = op.key, op.accessed_at, op.expires_at, op.unlock
        check_key(key)
        with self._files.using() as d:
            with self._files.guard(d, key[:2], wait):
                data = self._files.read(key, d)
                if data is None:
                    return False
                record = decode(data)
                if isinstance(record, Damaged):
                    return False  # damaged: nothing worth keeping alive; load reports it
                self._files.replace(d, key, record.version, record.payload, accessed_at, expires_at)
                if unlock is not None:
                    self._release(d, key, unlock)
            os.fsync(d)
            return True

    def unlock(self, op: Unlock, wait: bool = True) -> None:
        """Remove the lock file if ``op.token`` holds the lock (``wait``: as for :meth:`load`)."""
        key, token = op.key, op.token
        check_key(key)
        with self._files.using() as d:
            try:
                os.stat(key + ".lock", dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                return
            with self._files.guard(d, key[:2], wait):
                self._release(d, key, token)

    def delete(self, op: Delete, wait: bool = True) -> bool:
        """Remove the record and its lock (at ``expected_version`` when given); whether removed."""
        key, expected_version = op.key, op.expected_version
        check_key(key)
        with self._files.using() as d:
            with self._files.guard(d, key[:2], wait):
                if expected_version is not None and self._version(d, key) != expected_version:
                    return False
                removed = unlink(key, d)
                unlink(key + ".lock", d)
            if removed:
                os.fsync(d)
            return removed

    def _version(self, d: int, key: str) -> int | None:
        """The stored version of ``key`` (0 when damaged), None when there is no record."""
        fd = self._files.open(key, os.O_RDONLY, d)
        if fd is None:
            return None
        try:
            header = os.read(fd, HEADER_SIZE)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        return header_version(header, size)

    def clear_expired(self, op: ClearExpired) -> int:
        """Remove expired records (by mtime), orphan lock files and old temp files."""
        now = op.now
        removed = 0
        with self._files.using() as d:
            expired: dict[str, list[str]] = {}
            locks: list[str] = []
            records: set[str] = set()
            orphans: list[str] = []
            for name, st in self._files.scan(d, temps=True):
                if st is None:
                    if (match := LOCK_NAME.fullmatch(name)) is not None:
                        locks.append(match.group(1))
                elif KEY.fullmatch(name):
                    records.add(name)
                    if st.st_mtime <= now:
                        expired.setdefault(name[:2], []).append(name)
                elif TEMP_NAME.fullmatch(name) and st.st_ctime <= now - _ORPHAN_AGE:
                    orphans.append(name)
            stray: dict[str, list[str]] = {}
            for key in locks:
                if key not in records:
                    stray.setdefault(key[:2], []).append(key)
            for stripe in sorted(expired.keys() | stray.keys()):
                todo = [(k, True) for k in expired.get(stripe, [])]
                todo += [(k, False) for k in stray.get(stripe, [])]
                for start in range(0, len(todo), _BATCH):
                    with self._files.guard(d, stripe):
                        for key, is_record in todo[start : start + _BATCH]:
                            removed += self._remove_if_dead(d, key, now, is_record)
            for name in orphans:
                unlink(name, d)
            if removed or orphans:
                os.fsync(d)
        return removed

    def _remove_if_dead(self, d: int, key: str, now: float, is_record: bool) -> int:
        # Checked again under the guard: an update or touch may have renewed the record since
        # the scan, or a create may have given a stray lock file its record.
        try:
            st = os.stat(key, dir_fd=d, follow_symlinks=False)
        except FileNotFoundError:
            unlink(key + ".lock", d)
            return 0
        if not is_record or not stat.S_ISREG(st.st_mode) or st.st_mtime > now:
            return 0
        os.unlink(key, dir_fd=d)
        unlink(key + ".lock", d)
        return 1

    def stats(self, now: float) -> StoreStats:
        """Live and expired records and payload bytes, from one scan of names and sizes."""
        live = expired = size = 0
        with self._files.using() as d:
            for name, st in self._files.scan(d, temps=False):
                if st is not None and KEY.fullmatch(name):
                    if st.st_mtime > now:
                        live += 1
                    else:
                        expired += 1
                    size += max(st.st_size - HEADER_SIZE, 0)
        return StoreStats(live, expired, size)


def _fsyncs(op: object) -> NoReturn:
    raise WouldBlock("the operation calls fsync: a worker thread's work")


class _Inline:
    """:class:`FileDirectory`'s per-session operations for the event loop (module docstring)."""

    def __init__(self, files: FileDirectory, writes: bool) -> None:
        self.load = partial(files.load, wait=False)
        self.unlock = partial(files.unlock, wait=False)
        self.create: Callable[[Create], bool] = _fsyncs
        self.update: Callable[[Update], int | None] = _fsyncs
        self.touch: Callable[[Touch], bool] = _fsyncs
        self.delete: Callable[[Delete], bool] = _fsyncs
        if writes:  # fsync waits for no device here: the writes are as short as a load
            self.create = files.create  # one link(), no guard to wait for
            self.update = partial(files.update, wait=False)
            self.touch = partial(files.touch, wait=False)
            self.delete = partial(files.delete, wait=False)
