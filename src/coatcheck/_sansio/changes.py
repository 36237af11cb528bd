"""What a request did to its session: the one record of it, and the read-only view a save gets.

:class:`~coatcheck._sansio.session.Session` writes a :class:`Changes` as the application uses it;
the session rules read it as a :class:`ChangeView` (``Session.changes``) to decide what to store
and, in ``merge`` mode, which keys to replay on a newer version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Protocol

from .operations import Op

__all__ = ["ChangeView", "Changes"]


class ChangeView(Protocol):
    """What a request did to its session, as the save reads it (read-only)."""

    @property
    def keys(self) -> Set[tuple[str, str]]:
        """The ``(namespace, key)`` pairs set or deleted."""

    @property
    def meta(self) -> Set[str]:
        """The metadata fields changed (user, form tokens, flash messages)."""

    @property
    def whole(self) -> bool:
        """``mark_modified()`` without a key: the whole document is written back."""

    @property
    def ops(self) -> Mapping[tuple[str, str], Sequence[Op]]:
        """The keys changed only by operations (``incr``, ``set_add``, ...), and those
        operations in order: a merge replays them (:mod:`coatcheck._sansio.operations`)."""

    @property
    def destroyed(self) -> bool:
        """``destroy()`` was called."""

    @property
    def rotate(self) -> bool:
        """``regenerate()`` was called and the save has not given the new id yet."""

    @property
    def content(self) -> bool:
        """True when the document changed (keys, metadata or the whole of it)."""


class Changes:
    """The one record of what a request did to its session; only :class:`Session` writes it."""

    __slots__ = ("destroyed", "keys", "meta", "ops", "rotate", "whole")

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()
        self.meta: set[str] = set()
        #: A subset of ``keys``: those changed by operations alone (see ChangeView.ops).
        self.ops: dict[tuple[str, str], list[Op]] = {}
        self.whole = False
        self.destroyed = False
        self.rotate = False

    @property
    def content(self) -> bool:
        """True when the document changed (keys, metadata or the whole of it)."""
        return bool(self.keys or self.meta or self.whole)

    def wrote(self, ns: str, key: str) -> None:
        """A plain write of ``ns/key``: it is stored as it is now, whatever operations on it
        came before."""
        pair = (ns, key)
        self.keys.add(pair)
        if self.ops:
            self.ops.pop(pair, None)

    def forget(self) -> None:
        """Nothing of this request's content changes is to be stored (``modified = False``)."""
        self.keys.clear()
        self.meta.clear()
        self.ops.clear()
        self.whole = False
