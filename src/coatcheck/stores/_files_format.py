"""What ``FileStore`` keeps on disk: the names in the session directory and the bytes in each file.

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

and its mtime is set to ``ceil(expires_at)`` (:func:`mtime_ns`) before it is renamed into place,
so ``clear_expired``, ``count`` and ``stats`` are a directory scan plus one ``stat`` per file and
never open a record. Rounding up means a cleanup can be up to a second late, never early, also on
file systems whose timestamps have whole-second resolution.

A lock file holds the lock's expiry (f64, little-endian), then its token (UTF-8).

A record whose header is short, has the wrong magic, format or CRC, or whose length disagrees
with the file (zero-byte, truncated, garbage) decodes as ``Damaged("damaged-file")``, so the
core logs it and deletes the record like any other damaged one (its version reads as 0, which
never occurs otherwise).

The directory operations that read and write these files are in
:mod:`coatcheck.stores._files_backend`.
"""

from __future__ import annotations

import math
import re
import struct
import zlib

from .base import Damaged, Record

__all__ = [
    "DAMAGED",
    "GUARD_PREFIX",
    "HEADER_SIZE",
    "KEY",
    "LOCK_NAME",
    "TEMP_NAME",
    "check_key",
    "decode",
    "decode_lock",
    "encode_header",
    "encode_lock",
    "header_version",
    "mtime_ns",
]

MAGIC = b"CCfs"
FORMAT = 1
_HEAD = struct.Struct("<4sHHqddQ")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _CRC.size

#: What ``load`` answers for a damaged record file.
DAMAGED = Damaged("damaged-file")

_LOCK_STATE = struct.Struct("<d")

KEY = re.compile(r"[0-9a-f]{64}")
LOCK_NAME = re.compile(r"([0-9a-f]{64})\.lock")
TEMP_NAME = re.compile(r"[0-9a-f]{64}\.[0-9a-f]{16}\.tmp")
GUARD_PREFIX = ".guard-"

# Latest mtime set (2242): beyond what some file systems store; the header keeps the exact time.
_MAX_MTIME = 2**33


def check_key(key: str) -> None:
    """Raise ValueError unless ``key`` is 64 lowercase hex digits, the only names ever used."""
    if not isinstance(key, str) or KEY.fullmatch(key) is None:
        raise ValueError("a FileStore key is 64 lowercase hexadecimal characters")


def mtime_ns(expires_at: float) -> int:
    """The mtime a record file gets for ``expires_at``, in nanoseconds (see above)."""
    return min(max(math.ceil(expires_at), 0), _MAX_MTIME) * 1_000_000_000


def encode_header(version: int, accessed_at: float, expires_at: float, length: int) -> bytes:
    """The header of a record with a payload of ``length`` bytes."""
    head = _HEAD.pack(MAGIC, FORMAT, 0, version, accessed_at, expires_at, length)
    return head + _CRC.pack(zlib.crc32(head))


def header_version(data: bytes, file_size: int) -> int:
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


def decode(data: bytes) -> Record | Damaged:
    """The record in a whole record file; :data:`DAMAGED` if the file is damaged."""
    if header_version(data, len(data)) == 0:
        return DAMAGED
    _, _, _, version, accessed_at, expires_at, _ = _HEAD.unpack_from(data)
    return Record(data[HEADER_SIZE:], version, accessed_at, expires_at)


def encode_lock(token: str, until: float) -> bytes:
    """The content of a lock file held by ``token`` until ``until``."""
    return _LOCK_STATE.pack(until) + token.encode()


def decode_lock(data: bytes) -> tuple[str, float] | None:
    """The token and expiry in a lock file's content; None for a torn or garbled one."""
    if len(data) < _LOCK_STATE.size:
        return None
    try:
        token = data[_LOCK_STATE.size :].decode()
    except UnicodeDecodeError:
        return None
    return token, _LOCK_STATE.unpack_from(data)[0]
