"""Values nested exactly so deep, their tagged trees built by hand, and deep call stacks: what
the nesting-limit tests share."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import msgpack

from coatcheck._sansio.tagging import MAX_DEPTH

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "NOISE",
    "encoded",
    "nested",
    "recursion_limit_above",
    "tree",
    "within_frames",
]

T = TypeVar("T")

#: Strings full of what a JSON scan must not mistake for structure: brackets, quotes, escapes.
NOISE = '"]]]}}\\' + "]" * 120 + '\\"[{' + '\\\\"' + "{" * 120

#: How the containers nest: one kind all the way, or several in turn (``mixed``), or with a
#: string of brackets beside each level (``noisy``), or as one-key dicts that look like tags
#: and are escaped on the way out (``escaped``: three levels of the tagged tree each).
KINDS = ["list", "dict", "tuple", "frozenset", "set", "mixed", "noisy", "escaped"]


def nested(kind: str, depth: int) -> Any:
    """A value of ``kind`` whose containers nest exactly ``depth`` deep (``[]`` is 1 deep)."""
    if kind == "set":  # a set of nested frozensets: a set holds only hashable values
        return {nested("frozenset", depth - 1)} if depth > 1 else set()
    value: Any = _EMPTY.get(_shape(kind, 1), {})
    for level in range(2, depth + 1):
        shape = _shape(kind, level)
        if shape == "list":
            value = [value]
        elif shape == "tuple":
            value = (value,)
        elif shape == "frozenset":
            value = frozenset({value})
        elif shape == "noisy":
            value = {"k": value, "s": NOISE}
        elif shape == "escaped":
            value = {" x": value}
        else:
            value = {"k": value}
    return value


def tree(kind: str, depth: int) -> Any:
    """The tagged tree of ``nested(kind, depth)``, built without the tagger (it would refuse)."""
    if kind == "set":
        return {" s": [tree("frozenset", depth - 1)] if depth > 1 else []}
    node: Any = _EMPTY_TREE.get(_shape(kind, 1), {})
    for level in range(2, depth + 1):
        shape = _shape(kind, level)
        if shape == "list":
            node = [node]
        elif shape == "tuple":
            node = {" t": [node]}
        elif shape == "frozenset":
            node = {" fs": [node]}
        elif shape == "noisy":
            node = {"k": node, "s": NOISE}
        elif shape == "escaped":
            node = {" k": [" x", node]}
        else:
            node = {"k": node}
    return node


def encoded(serializer_name: str, node: Any) -> bytes:
    """``node`` (a tagged tree) as the named serializer's bytes, written by hand."""
    if serializer_name == "json":
        return json.dumps(node, separators=(",", ":"), ensure_ascii=False).encode()
    packed: bytes = msgpack.packb(node, use_bin_type=True)
    return packed


_EMPTY: dict[str, Any] = {"list": [], "tuple": (), "frozenset": frozenset()}
_EMPTY_TREE: dict[str, Any] = {"list": [], "tuple": {" t": []}, "frozenset": {" fs": []}}


def _shape(kind: str, level: int) -> str:
    return ("dict", "list", "tuple")[level % 3] if kind == "mixed" else kind


def within_frames(frames: int, call: Callable[[], T]) -> T:
    """``call()``, from ``frames`` Python frames deeper than the caller (a deep middleware
    stack, say)."""
    if frames <= 0:
        return call()
    return within_frames(frames - 1, call)


@contextmanager
def recursion_limit_above(headroom: int) -> Iterator[None]:
    """The interpreter's recursion limit lowered to ``headroom`` frames above the current
    stack, for the duration."""
    depth = 0
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
        depth += 1
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + headroom)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)
