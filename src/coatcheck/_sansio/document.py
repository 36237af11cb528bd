"""The stored session document: its keys, its layout, and the bytes a store keeps.

A payload is ``b"cc2:" + <format name> + b":" + serializer.dumps(document)``: the format version
(``FORMAT_VERSION``, refused when it differs) and the serializer's ``format_name``, then one flat
mapping::

    key   holds                                              written
    ""    the default namespace: {key: value}                when not empty
    "n"   the other namespaces: {name: {key: value}}         when one is not empty
    "c"   creation time, whole milliseconds since the epoch  always (an int)
    "r"   the client address that created the session        when known
    "a"   16 hex digits of the User-Agent's SHA-256          with bind_user_agent
    "u"   the user (Session.user)                            when set
    "t"   outstanding form tokens, oldest first (at most 16) when set
    "f"   flash messages, each [category, message]           when set
    "l"   the session's own lifetime (Session.set_lifetime):  when set
          {"i": idle, "a": absolute, "k": cookie max age},
          each only when overridden, None for "off"

Flat, because every nested mapping costs the encoder and the decoder time on every request.
User data cannot reach the top level (it lives under ``""`` and ``"n"``), so it cannot pose as
metadata. In memory a session's document is a :class:`Document`: the namespaces by name
(``""`` always present) and the metadata, the top-level keys other than ``""`` and ``"n"``.
These names are spelled here and nowhere else.

The tagged serializers' nesting limit (``MAX_DEPTH`` in :mod:`.tagging`, 100 containers) counts
the document's own levels too: a session value may nest 98 deep in the default namespace (under
the document and ``""``), 97 in another (under the document, ``"n"`` and its name).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import PayloadTooLarge, SerializationError
from .serializers import Serializer

__all__ = [
    "AGENT",
    "CREATED",
    "DEFAULT",
    "FLASH",
    "FORMAT_VERSION",
    "FORM_TOKENS",
    "LIFETIME",
    "LIFETIME_FIELDS",
    "MAX_FORM_TOKENS",
    "QUEUES",
    "REMOTE_ADDR",
    "USER",
    "Codec",
    "Corrupt",
    "Document",
    "valid_lifetime",
]

#: Version of the payload envelope; a payload of another version is refused.
FORMAT_VERSION = 2

DEFAULT = ""  #: the default namespace, the session mapping itself
_OTHERS = "n"  # the other namespaces, in the stored form only
CREATED = "c"
REMOTE_ADDR = "r"
AGENT = "a"
USER = "u"
FORM_TOKENS = "t"
MAX_FORM_TOKENS = 16  # Quixote's limit: older outstanding tokens are dropped first
FLASH = "f"
LIFETIME = "l"
#: The fields of LIFETIME by the name Session.set_lifetime gives them.
LIFETIME_FIELDS = {"idle_timeout": "i", "absolute_timeout": "a", "cookie_max_age": "k"}
#: Metadata fields that merge as queues (additions and removals of both sides survive).
QUEUES = (FORM_TOKENS, FLASH)


class Document:
    """A session's content in memory: data by namespace (``DEFAULT`` always there), metadata."""

    __slots__ = ("created_at", "data", "meta")

    def __init__(self, data: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
        # ``data`` holds DEFAULT, ``meta`` CREATED: every maker of a Document puts them there.
        self.data = data
        self.meta = meta
        #: When the session was created: seconds since the epoch, to the millisecond (stored
        #: in whole milliseconds: an int encodes and decodes several times faster than a float).
        self.created_at: float = meta[CREATED] / 1000

    @classmethod
    def new(cls, created_ms: int) -> Document:
        """An empty document created at ``created_ms`` (whole milliseconds)."""
        return cls({DEFAULT: {}}, {CREATED: created_ms})

    def has_info(self) -> bool:
        """True when there is anything worth storing (Quixote's ``has_info``)."""
        # dict.__len__, not len(): the default namespace is the Session, whose len() counts
        # as the application reading it.
        # A loop, not any() over a generator: this runs on every save that changed data.
        for values in self.data.values():
            if dict.__len__(values):
                return True
        meta = self.meta
        return bool(meta.get(USER) is not None or meta.get(FORM_TOKENS) or meta.get(FLASH))


class Corrupt(Exception):
    """A payload that is not a document this codec wrote; ``reason`` is the log's reason code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Codec:
    """Turns documents into payloads and back with one serializer; refuses what it did not write."""

    __slots__ = ("_dumps", "_limit", "_loads", "_prefix", "_prefix_length")

    def __init__(self, serializer: Serializer, max_payload_bytes: int | None) -> None:
        name = getattr(serializer, "format_name", type(serializer).__name__)
        self._prefix = f"cc{FORMAT_VERSION}:{name}:".encode()
        self._prefix_length = len(self._prefix)
        self._dumps = serializer.dumps
        self._loads = serializer.loads
        self._limit = max_payload_bytes

    def encode(self, document: Document) -> bytes:
        """The payload for ``document``; raises SerializationError or PayloadTooLarge."""
        data = document.data
        flat = dict(document.meta)
        default = data[DEFAULT]
        if dict.__len__(default):
            # The default namespace is the Session itself (a dict subclass): serializers get
            # a plain dict of it, copied from its items view at C speed (dict.copy would call
            # the session's own keys() and __getitem__).
            flat[DEFAULT] = default if type(default) is dict else dict(dict.items(default))
        if len(data) > 1:
            others = {ns: values for ns, values in data.items() if values and ns}
            if others:
                flat[_OTHERS] = others
        try:
            body = self._dumps(flat)
        except Exception as exc:
            raise self._name_culprit(document, exc) from exc
        payload = self._prefix + body
        limit = self._limit
        if limit is not None and len(payload) > limit:
            raise PayloadTooLarge(len(payload), limit)
        return payload

    def _name_culprit(self, document: Document, exc: Exception) -> SerializationError:
        # Find the first key whose value the serializer refuses, so the error can name it;
        # each is tried as deep in a document as it would be stored (the nesting limit).
        for ns, values in document.data.items():
            for key, value in values.items():
                probe = {DEFAULT: {key: value}} if ns == DEFAULT else {_OTHERS: {ns: {key: value}}}
                try:
                    self._dumps(probe)
                except Exception:
                    label = key if ns == DEFAULT else f"{ns}/{key}"
                    return SerializationError(str(exc) or type(exc).__name__, key=label)
        return SerializationError(f"session metadata cannot be encoded: {exc}")

    def decode(self, payload: bytes) -> Document:
        """The document in ``payload``; raises :class:`Corrupt` on anything unexpected."""
        if not payload.startswith(self._prefix):
            raise Corrupt("foreign-format" if payload.startswith(b"cc") else "corrupt-payload")
        try:
            flat = self._loads(payload[self._prefix_length :])
        except Exception:
            raise Corrupt("corrupt-payload") from None
        if type(flat) is not dict:
            raise Corrupt("corrupt-payload")
        # What encode() wrote: the namespaces come out, and what is left is the metadata.
        default = flat.pop(DEFAULT, None)
        others = flat.pop(_OTHERS, None)
        if type(flat.get(CREATED)) is not int:
            raise Corrupt("corrupt-payload")
        if LIFETIME in flat and not valid_lifetime(flat[LIFETIME]):
            raise Corrupt("corrupt-payload")
        if default is None:
            default = {}
        elif type(default) is not dict:
            raise Corrupt("corrupt-payload")
        if others is None:
            return Document({DEFAULT: default}, flat)
        if type(others) is not dict or DEFAULT in others:
            raise Corrupt("corrupt-payload")
        for values in others.values():
            if type(values) is not dict:
                raise Corrupt("corrupt-payload")
        return Document({DEFAULT: default, **others}, flat)


_LIFETIME_CODES = frozenset(LIFETIME_FIELDS.values())


def valid_lifetime(value: object) -> bool:
    """Whether ``value`` is a LIFETIME field as :class:`~.session.Session` writes it.

    It comes from the store, so it is untrusted: a NaN or a string here would switch expiry off.
    """
    if type(value) is not dict or not value or not _LIFETIME_CODES.issuperset(value):
        return False
    for code, seconds in value.items():
        if seconds is None:
            continue
        if code == LIFETIME_FIELDS["cookie_max_age"]:
            if type(seconds) is not int or seconds < 0:
                return False
        elif type(seconds) not in (int, float) or not (0 <= seconds < math.inf):
            return False
    return True
