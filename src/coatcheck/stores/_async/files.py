"""A session store in a directory: one file per session, no server, several processes.

The operations, their atomic writes and locking are in :mod:`coatcheck.stores._files_backend`
(its docstring says why they are race-free), the on-disk format in ``_files_format`` and the
directory's safety checks in ``_files_directory``. In the async flavour, ``load`` and ``unlock``
run on the event loop unless the key's guard is held, and so do the writes on a memory-backed
file system (tmpfs: ``fsync`` waits for no disk there, ``_files_mounts``); every other operation
runs in a worker thread (``_blocking.py``; the bound is in ``_files_backend``'s docstring).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from ...errors import ConfigurationError
from .._files_backend import FileDirectory
from ._blocking import AsyncBlockingStore

__all__ = ["AsyncFileStore"]


class AsyncFileStore(AsyncBlockingStore):
    """Sessions as files in one directory (POSIX, local file system).

    :param directory: created with mode 0700 if missing. An existing directory that its group or
        everyone may write to, or that another user owns, is refused with
        :class:`~coatcheck.errors.ConfigurationError`.

    Keys must be 64 lowercase hex digits (the core's storage keys); anything else raises
    ``ValueError`` before a file is touched. Writes are atomic and durable (temp file, ``fsync``,
    rename, ``fsync`` of the directory); cleanup reads names and ``stat`` results only. A damaged
    record file loads as a record with an undecodable payload (version 0), so the core logs it
    and deletes it; a symlink or another user's file where a record should be raises
    :class:`~coatcheck.errors.StoreError`. ``OSError`` (disk full, read-only directory) is left to
    the core, which reports it as the store being unavailable.
    """

    unavailable_errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = os.path.abspath(os.fspath(directory))
        self.name = f"file://{path}"
        self._backend = FileDirectory(path, self.name)
        self.directory = path

    @classmethod
    def from_url(cls, url: str) -> AsyncFileStore:
        """``file:///absolute/directory``; the URL takes no options."""
        parts = urlsplit(url)
        if (
            parts.scheme.lower() != "file"
            or parts.netloc not in ("", "localhost")
            or not parts.path.startswith("/")
            or parts.query
            or parts.fragment
        ):
            raise ConfigurationError(
                f"not a file store URL: {url!r}; use file:///absolute/directory"
            )
        return cls(unquote(parts.path))
