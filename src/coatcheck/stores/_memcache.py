"""What both memcached driver layers share: the answers of a compare-and-set and the meta set.

``_memcache_async`` (aiomcache) and ``_memcache_sync`` (pymemcache) differ in how they reach the
server; the protocol they speak for a cas is the same, and lives here once.
"""

from __future__ import annotations

import enum

__all__ = ["Cas", "meta_set", "meta_set_outcome"]


class Cas(enum.Enum):
    """Why a compare-and-set stored nothing."""

    CHANGED = "changed"  # EXISTS: the item changed since its cas token was read
    GONE = "gone"  # NOT_FOUND: there is no such item


def meta_set(key: bytes, value: bytes, token: int, exptime: int) -> bytes:
    """A meta set (memcached 1.6+, protocol.txt "Meta Set") that stores ``value`` only if the
    item's cas token is still ``token`` and answers with the new token; without the final
    CRLF, which the driver adds.

    The classic ``cas`` answers STORED without the new token, so the next write would need a
    ``gets`` first; the meta set answers ``HD c<new token>``, ``EX`` or ``NF`` in one line.
    """
    return b"ms %b %d C%d T%d c\r\n%b" % (key, len(value), token, exptime, value)


def meta_set_outcome(reply: bytes) -> int | Cas | None:
    """The new cas token, why nothing was stored, or None for a reply that is none of these."""
    if reply[:4] == b"HD c":
        return int(reply[4:])
    if reply[:2] == b"EX":
        return Cas.CHANGED
    if reply[:2] == b"NF":
        return Cas.GONE
    return None
