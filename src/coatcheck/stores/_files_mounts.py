"""Whether a directory's file system makes ``fsync`` free: the file store's inline writes.

On tmpfs and ramfs (memory-backed: ``/dev/shm``, ``/run``, a ``/tmp`` mounted as tmpfs) file
data lives only in the page cache, and ``fsync`` returns at once: there is no device to wait
for. An async file store there can run its writes on the event loop, as it runs its loads, and
save the hand-off to a worker thread, which costs more than the write itself. Anywhere else an
``fsync`` waits for a disk, and writes stay in the thread.

The answer comes from ``/proc/self/mountinfo`` (Linux): the mount that holds the directory is
the one with the longest mount point that is a prefix of its real path. Without that file
(macOS, BSD) or when it cannot be read or parsed, the answer is "not free": writes go to the
thread, the safe side.
"""

from __future__ import annotations

import os

__all__ = ["FREE_FSYNC_TYPES", "fsync_is_free"]

#: Memory-backed file systems, on which ``fsync`` waits for no device.
FREE_FSYNC_TYPES = frozenset({"tmpfs", "ramfs"})

_MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040).
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def fs_type(path: str, mountinfo: str = _MOUNTINFO) -> str | None:
    """The type of the file system that holds ``path`` (``ext4``, ``tmpfs``), or None."""
    real = os.path.realpath(path)
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as lines:
            best, kind = -1, None
            for line in lines:
                # "<id> <parent> <dev> <root> <mount point> <options> [tags...] - <type> ..."
                head, sep, tail = line.partition(" - ")
                fields = head.split()
                if not sep or len(fields) < 5 or not tail.split():
                    continue
                point = _unescape(fields[4])
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                # ">=": of mounts stacked on one point, the last listed is the one in effect.
                if inside and len(point) >= best:
                    best, kind = len(point), tail.split()[0]
            return kind
    except OSError:
        return None


def fsync_is_free(path: str, mountinfo: str = _MOUNTINFO) -> bool:
    """Whether ``path`` is on a memory-backed file system (see the module docstring)."""
    return fs_type(path, mountinfo) in FREE_FSYNC_TYPES
