"""The session directory of ``FileStore``, and safe access to the files in it.

The directory is created 0700 and refused when its group or everyone may write to it or another
user owns it. Every file is opened relative to the directory's descriptor with
``O_NOFOLLOW|O_NONBLOCK``, so a planted symlink is never followed and a planted FIFO cannot hang a
worker; a symlink, a non-regular file or a file owned by another uid where a record should be
raises :class:`~coatcheck.errors.StoreError` (someone tampered with the directory: fail loudly).
The names and bytes of the files are in :mod:`coatcheck.stores._files_format`; the contract's
operations on them are in :mod:`coatcheck.stores._files_backend`, whose docstring says why they
are atomic and race-free.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .._flavours import WouldBlock
from ..errors import ConfigurationError, StoreError
from ._files_format import GUARD_PREFIX, encode_header, mtime_ns

__all__ = ["SafeDirectory", "unlink", "write_all"]

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_all(fd: int, size_hint: int) -> bytes:
    """Read ``fd`` to its end (``size_hint``: its size when last seen)."""
    chunks: list[bytes] = []
    want = max(size_hint, 0) + 1
    while True:
        chunk = os.read(fd, want)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        want = 1 << 16


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``, however many ``write`` calls it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def unlink(name: str, d: int) -> bool:
    """Remove ``name`` from the directory ``d``; False if it was not there."""
    try:
        os.unlink(name, dir_fd=d)
    except FileNotFoundError:
        return False
    return True


class SafeDirectory:
    """The session directory at ``path`` (absolute), checked whenever it is opened.

    ``name`` is the store's, for errors. Each operation works through :meth:`using`, which
    yields the directory's descriptor; the methods taking ``d`` want that descriptor.
    """

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self._uid = os.geteuid()
        self._lock = threading.Lock()
        self._users = 0
        self._retired: list[int] = []
        self._fd: int | None = self._open_directory()

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
    def using(self) -> Iterator[int]:
        """The directory's descriptor, for the files of one operation to be opened relative to."""
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

    def refuse(self, name: str, why: str) -> StoreError:
        """The error for a file that is not what the store put there."""
        return StoreError(
            self.name,
            f"refusing {name[:12]}… in {self.path}: {why} (was the directory tampered with?)",
        )

    def open(self, name: str, flags: int, d: int, mode: int = 0o600) -> int | None:
        """Open ``name`` without following a symlink; None if absent and not created."""
        try:
            fd = os.open(name, flags | _OPEN_FLAGS, mode, dir_fd=d)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise self.refuse(name, "it is a symbolic link") from exc
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self.refuse(name, "it is not a regular file")
            if st.st_uid != self._uid:
                raise self.refuse(name, f"it belongs to uid {st.st_uid}")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, name: str, d: int) -> bytes | None:
        """The whole content of ``name`` (opened as :meth:`open` does); None if absent."""
        fd = self.open(name, os.O_RDONLY, d)
        if fd is None:
            return None
        try:
            return _read_all(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    @contextmanager
    def guard(self, d: int, stripe: str, wait: bool = True) -> Iterator[None]:
        """Hold the exclusive ``flock`` on ``.guard-<stripe>`` (why: ``_files_backend``); with
        ``wait=False``, raise :class:`WouldBlock` at once if someone else holds it."""
        fd = self.open(GUARD_PREFIX + stripe, os.O_RDWR | os.O_CREAT, d)
        if fd is None:  # pragma: no cover - O_CREAT either creates it or raises
            raise self.refuse(GUARD_PREFIX + stripe, "it vanished while being created")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise WouldBlock(f"{GUARD_PREFIX}{stripe} is held") from exc
            yield
        finally:
            os.close(fd)  # also releases the flock

    def write_temp(self, d: int, key: str, header: bytes, payload: bytes, expires_at: float) -> str:
        """Write a complete record file under a fresh temporary name, synced; its name."""
        tmp = f"{key}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, _NEW_FLAGS, 0o600, dir_fd=d)
        try:
            try:
                write_all(fd, header)
                write_all(fd, payload)
                mtime = mtime_ns(expires_at)
                os.utime(fd, ns=(mtime, mtime))
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            unlink(tmp, d)
            raise
        return tmp

    def replace(
        self, d: int, key: str, version: int, payload: bytes, accessed_at: float, expires_at: float
    ) -> None:
        """Replace the record ``key`` atomically: :meth:`write_temp`, then rename over it."""
        header = encode_header(version, accessed_at, expires_at, len(payload))
        tmp = self.write_temp(d, key, header, payload, expires_at)
        try:
            os.replace(tmp, key, src_dir_fd=d, dst_dir_fd=d)
        except BaseException:
            unlink(tmp, d)
            raise

    def scan(self, d: int, temps: bool) -> Iterator[tuple[str, os.stat_result | None]]:
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
