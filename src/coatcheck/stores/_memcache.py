"""What both memcached driver layers share: the answers of a compare-and-set, the meta set,
and the oldest server that understands it.

``_memcache_async`` (aiomcache) and ``_memcache_sync`` (pymemcache) differ in how they reach the
server; the protocol they speak for a cas is the same, and lives here once.
"""

from __future__ import annotations

import enum
import re

from ..errors import StoreIncompatible

__all__ = [
    "MINIMUM_VERSION",
    "Cas",
    "check_version",
    "meta_set",
    "meta_set_outcome",
    "parse_version",
]

MINIMUM_VERSION = (1, 6, 10)
"""The oldest memcached whose meta set the store can use.

memcached 1.6.10 (release notes: "meta: fix metaset syntax", "meta: response code OK -> HD",
"meta: repairs to mset command") gave ``ms`` its stable form, ``ms <key> <datalen> <flags>``,
answered ``HD``, with the ``c`` flag returning the new cas token. Earlier 1.6 releases take the
length as an ``S`` flag, so they answer ``CLIENT_ERROR invalid flag`` to the store's meta set
(1.6.9, tried), and their ``c`` returns nothing.
"""

_VERSION = re.compile(rb"(?:VERSION )?(\d+)\.(\d+)\.(\d+)")


class Cas(enum.Enum):
    """Why a compare-and-set stored nothing."""

    CHANGED = "changed"  # EXISTS: the item changed since its cas token was read
    GONE = "gone"  # NOT_FOUND: there is no such item


def meta_set(key: bytes, value: bytes, token: int, exptime: int) -> bytes:
    """A meta set (memcached 1.6.10+, protocol.txt "Meta Set") that stores ``value`` only if the
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


def parse_version(reply: bytes | str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` from a ``version`` reply: ``VERSION 1.6.18``, ``1.6.18`` (what
    the drivers hand back) or ``1.6.21-rc1``; ``None`` when it starts with no such number."""
    raw = reply.encode("ascii", "replace") if isinstance(reply, str) else reply
    found = _VERSION.match(raw.strip())
    if found is None:
        return None
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch)


def check_version(server: str, reply: bytes | str) -> None:
    """Raise :class:`~coatcheck.errors.StoreIncompatible` when the ``version`` reply of
    ``server`` names a memcached older than :data:`MINIMUM_VERSION`.

    A reply that names no version (a proxy in front of memcached, say) passes: the store cannot
    judge it, and a meta set it does not understand still fails with the server's own answer.
    """
    found = parse_version(reply)
    if found is None or found >= MINIMUM_VERSION:
        return
    text = reply.decode("ascii", "replace") if isinstance(reply, bytes) else reply
    raise StoreIncompatible(
        server,
        found="memcached " + text.strip().removeprefix("VERSION "),
        required="memcached " + ".".join(map(str, MINIMUM_VERSION)),
        reason="its meta set, which every session write uses, takes another form; "
        "upgrade memcached",
    )
