"""The value layout of the key-value stores (Redis, memcached): a fixed header, then the payload.

One string per record, so create, load and delete are single plain commands on both servers::

    offset  0  b"c1"                format tag (coatcheck record, layout 1)
    offset  2  15 ASCII digits      version, zero-padded (Lua reads it with tonumber)
    offset 17  8-byte double, BE    accessed_at
    offset 25  8-byte double, BE    expires_at
    offset 33  payload bytes

The version is text so a Redis script can compare and bump it in place (``SETRANGE`` at
``VERSION_OFFSET``); the times are binary so they round-trip exactly and a touch rewrites 16
bytes at ``TIMES_OFFSET`` without resending the payload.
"""

from __future__ import annotations

import struct

from .._sansio.tuples import build
from .base import Damaged, Record

__all__ = [
    "HEADER_SIZE",
    "TAG",
    "TIMES_OFFSET",
    "VERSION_OFFSET",
    "VERSION_WIDTH",
    "pack",
    "pack_times",
    "unpack",
    "unpack_times",
    "version_of",
]

TAG = b"c1"
VERSION_OFFSET = 2
VERSION_WIDTH = 15
TIMES_OFFSET = VERSION_OFFSET + VERSION_WIDTH
_HEADER = struct.Struct(">2s15sdd")
_TIMES = struct.Struct(">dd")
HEADER_SIZE = _HEADER.size


def pack(payload: bytes, version: int, accessed_at: float, expires_at: float) -> bytes:
    """The stored value for a record."""
    return _HEADER.pack(TAG, b"%015d" % version, accessed_at, expires_at) + payload


def pack_times(accessed_at: float, expires_at: float) -> bytes:
    """The 16 bytes that a touch writes at ``TIMES_OFFSET``."""
    return _TIMES.pack(accessed_at, expires_at)


def unpack_times(times: bytes) -> tuple[float, float]:
    """``(accessed_at, expires_at)`` from the 16 bytes at ``TIMES_OFFSET``."""
    accessed_at, expires_at = _TIMES.unpack(times)
    return accessed_at, expires_at


def version_of(value: bytes) -> int:
    """The version in a stored value, without copying the payload."""
    if value[:VERSION_OFFSET] != TAG:
        raise ValueError("stored value is not a coatcheck record (unknown format tag)")
    return int(value[VERSION_OFFSET:TIMES_OFFSET])


def unpack(value: bytes, handle: object = None) -> Record | Damaged:
    """The record in a stored value, carrying ``handle``; :class:`Damaged` for a value some
    other program wrote (the core deletes it)."""
    if len(value) < HEADER_SIZE or value[:VERSION_OFFSET] != TAG:
        return Damaged("foreign-record")
    _, version, accessed_at, expires_at = _HEADER.unpack_from(value)
    try:
        number = int(version)
    except ValueError:
        return Damaged("damaged-version")
    return build(Record, (value[HEADER_SIZE:], number, accessed_at, expires_at, handle))
