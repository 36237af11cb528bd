"""Building the named tuples a request makes, without their Python-level ``__new__``.

Every request builds a few: the :class:`~.ops.Load` and :class:`~.ops.Update` it asks of the
store, the :class:`~.ops.Slide` of a sliding store, the :class:`~.ops.Record` it wrote, the
:class:`~.headers.SaveOutcome` it answers. A named tuple's own constructor is a generated
Python function around ``tuple.__new__``; calling ``tuple.__new__`` directly builds the same
object for about half the cost, and those calls were a tenth of a request's time in the core
(CPython 3.11, counted with callgrind). :func:`build` is that call, typed: each overload
spells the fields of one type, so ``mypy`` checks every field at every call site as it would
for the constructor. The tests in ``tests/sansio/test_tuples.py`` fail loudly if ``build``
ever stops making exactly what the constructor makes.

Use it only where a request builds one (the core's hot path, and the stores' loads);
everywhere else the constructor reads better.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, overload

if TYPE_CHECKING:
    from .headers import SaveOutcome
    from .ops import Load, LockRequest, Record, Slide, Update

__all__ = ["build"]

T = TypeVar("T", bound=tuple[object, ...])

if TYPE_CHECKING:

    @overload
    def build(cls: type[Load], fields: tuple[str, float, LockRequest | None, Slide | None]) -> Load:
        """``Load(key, now, lock, slide)``."""

    @overload
    def build(
        cls: type[Update],
        fields: tuple[str, bytes, float, float, float, int | None, str | None, object],
    ) -> Update:
        """``Update(key, payload, accessed_at, expires_at, now, expected_version, unlock,
        handle)``."""

    @overload
    def build(cls: type[Slide], fields: tuple[float, float, float, float]) -> Slide:
        """``Slide(accessed_at, expires_at, stale_before, alive_after)``."""

    @overload
    def build(cls: type[Record], fields: tuple[bytes, int, float, float, object]) -> Record:
        """``Record(payload, version, accessed_at, expires_at, handle)``."""

    @overload
    def build(
        cls: type[SaveOutcome], fields: tuple[list[tuple[str, str]], str | None, bool]
    ) -> SaveOutcome:
        """``SaveOutcome(headers, ticket, cleared)``."""

    def build(cls: type[T], fields: tuple[object, ...]) -> T:
        """``cls(*fields)``, every field given, in declaration order."""
        return tuple.__new__(cls, fields)

else:
    build = tuple.__new__
