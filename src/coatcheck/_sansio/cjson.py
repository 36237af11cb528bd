"""CPython's C JSON encoder and scanner, called directly, with a pure-Python fallback.

``JSONEncoder.encode()`` builds a new C encoder object on every call and ``JSONDecoder.decode()``
runs a whitespace regex on both ends of the text; on a session-sized document that is a third
of the time. Session payloads are compact JSON written with one fixed set of options, so this
module builds the C encoder and scanner once and hands them out to be called directly, which is
what :mod:`json` does inside once set up.

Neither is public API. :mod:`json` imports them from ``_json`` as ``json.encoder.c_make_encoder``
and ``json.scanner.c_make_scanner``, and uses pure Python when they are missing (PyPy, a build
without ``_json``); so does this module, and it also falls back when they are present but no
longer behave as described here (a CPython release changed their arguments or their output):
each is checked once, against the public API on a probe document, when it is built. The
``accelerated`` flag on what this module returns says which path was taken, and
``tests/unit/test_cjson.py`` fails if CPython stops taking the C one, so a change in CPython
shows up as a failing test rather than as a quiet slowdown.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ChunkEncoder", "Decoder", "Encoder", "Scanner", "compact_encoder", "direct_decoder"]


class ChunkEncoder(Protocol):
    """Encodes *obj* as JSON text, in chunks to be joined (the C encoder's call signature).

    *current_indent_level* is always 0 here: no indentation is configured.
    """

    def __call__(self, obj: Any, current_indent_level: int, /) -> Sequence[str]: ...


class Scanner(Protocol):
    """Decodes the one JSON value that starts at *idx* in *string*: ``(value, end index)``.

    Raises ``ValueError`` for malformed JSON, and the C scanner ``StopIteration`` when no
    value starts at *idx* at all. Trailing text is left to the caller (compare *end*).
    """

    def __call__(self, string: str, idx: int, /) -> tuple[Any, int]: ...


class _MakeEncoder(Protocol):
    """``_json.make_encoder``, as ``JSONEncoder.iterencode`` calls it (Lib/json/encoder.py).

    :param markers: a dict for the circular-reference check (``check_circular``), or None for
        no check.
    :param default: called with a value of any other type; returns something encodable or raises.
    :param encoder: the string encoder, ``encode_basestring`` or ``encode_basestring_ascii``
        (``ensure_ascii``); the C functions are recognised and inlined.
    :param indent: the indent string; ``iterencode`` only uses the C encoder with None.
    :param key_separator: written between a key and its value (``separators[1]``).
    :param item_separator: written between items (``separators[0]``).
    :param sort_keys: write dict items sorted by key.
    :param skipkeys: skip dict items whose key is not str, int, float, bool or None, rather than
        raise ``TypeError``.
    :param allow_nan: write NaN and infinities as JS literals, rather than raise ``ValueError``.
    """

    def __call__(
        self,
        *,
        markers: dict[int, Any] | None,
        default: Callable[[Any], Any],
        encoder: Callable[[str], str],
        indent: str | None,
        key_separator: str,
        item_separator: str,
        sort_keys: bool,
        skipkeys: bool,
        allow_nan: bool,
    ) -> ChunkEncoder: ...


class _MakeScanner(Protocol):
    """``_json.make_scanner``: reads ``strict``, ``object_hook``, ``object_pairs_hook``,
    ``parse_float``, ``parse_int`` and ``parse_constant`` from *context* (a ``JSONDecoder``),
    as ``JSONDecoder.__init__`` does when it sets ``self.scan_once`` (Lib/json/decoder.py).
    """

    def __call__(self, context: json.JSONDecoder, /) -> Scanner: ...


@dataclass(frozen=True)
class Encoder:
    """What :func:`compact_encoder` returns: the encoder, and which implementation it is."""

    encode: ChunkEncoder
    accelerated: bool  # True: CPython's C encoder, called directly


@dataclass(frozen=True)
class Decoder:
    """What :func:`direct_decoder` returns: the scanner, and which implementation it is."""

    scan: Scanner
    accelerated: bool  # True: CPython's C scanner, called directly


# Escapes, every separator, non-ASCII text, big and negative numbers, empty containers: the
# probe shows up a change in how the internals are called or in what they write.
_PROBE: dict[str, Any] = {
    "text": 'é "q" \\ \n \x00 \u2028 \U0001f600',
    "numbers": [0, -1, 2**70, 1.5, -0.0, 1e300, 5e-324],
    "flags": [True, False, None],
    "empty": [{}, [], ""],
    "": {"nested": {"deep": [[1]]}},
}


def _public_encoder(default: Callable[[Any], Any]) -> json.JSONEncoder:
    return json.JSONEncoder(
        ensure_ascii=False,
        check_circular=False,
        allow_nan=False,
        separators=(",", ":"),
        default=default,
    )


def _refuses_nan(encode: ChunkEncoder) -> bool:
    try:
        encode(math.nan, 0)
    except ValueError:
        return True
    return False


def _c_encoder(default: Callable[[Any], Any]) -> ChunkEncoder | None:
    make: _MakeEncoder | None = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encode = make(
            markers=None,  # no circular check: the caller has checked, or the tagger will
            default=default,
            encoder=json.encoder.encode_basestring,  # ensure_ascii=False: non-ASCII as is
            indent=None,
            key_separator=":",
            item_separator=",",
            sort_keys=False,
            skipkeys=False,
            allow_nan=False,
        )
        expected = _public_encoder(default).encode(_PROBE)
        behaves = "".join(encode(_PROBE, 0)) == expected and _refuses_nan(encode)
    except Exception:  # any failure means it has changed: take the public API
        return None
    return encode if behaves else None


def compact_encoder(default: Callable[[Any], Any], *, accelerate: bool = True) -> Encoder:
    """An encoder for compact JSON: ``,`` and ``:`` separators, non-ASCII text as is.

    NaN and infinities raise ``ValueError``; there is no circular-reference check (a cycle
    raises ``RecursionError``). Call it as ``"".join(encoder.encode(obj, 0))``.

    :param default: called with a value of a type JSON lacks; returns an encodable value or
        raises.
    :param accelerate: use CPython's C encoder directly if it is there and behaves as expected;
        False forces the fallback, ``JSONEncoder.encode``.
    """
    encode = _c_encoder(default) if accelerate else None
    if encode is not None:
        return Encoder(encode, accelerated=True)
    public = _public_encoder(default)

    def encode_whole(obj: Any, current_indent_level: int, /) -> Sequence[str]:
        return (public.encode(obj),)

    return Encoder(encode_whole, accelerated=False)


# Trailing text, which a scanner leaves alone.
_PROBE_TEXT = json.dumps(_PROBE, ensure_ascii=False, separators=(",", ":")) + " trailing"


def _c_scanner(decoder: json.JSONDecoder) -> Scanner | None:
    make: _MakeScanner | None = getattr(json.scanner, "c_make_scanner", None)
    if make is None:
        return None
    try:
        # The probe runs on a decoder of its own, so that none of the caller's hooks run.
        plain = json.JSONDecoder()
        found = make(plain)(_PROBE_TEXT, 0)
        scan = make(decoder)
    except Exception:  # any failure means it has changed: take the public API
        return None
    # repr() tells -0.0 from 0.0; raw_decode() stops at the end of the value, as a scanner does.
    return scan if repr(found) == repr(plain.raw_decode(_PROBE_TEXT)) else None


def direct_decoder(decoder: json.JSONDecoder, *, accelerate: bool = True) -> Decoder:
    """A scanner that decodes JSON as *decoder* does, less the whitespace its ``decode()`` skips.

    :param accelerate: use CPython's C scanner directly if it is there and behaves as expected;
        False forces the fallback, ``decoder.raw_decode``.
    """
    scan = _c_scanner(decoder) if accelerate else None
    if scan is not None:
        return Decoder(scan, accelerated=True)
    return Decoder(decoder.raw_decode, accelerated=False)
