"""tuples.build makes exactly what each named tuple's constructor makes, or these tests fail."""

from __future__ import annotations

import pytest

from coatcheck._sansio.headers import SaveOutcome
from coatcheck._sansio.ops import Load, LockRequest, Record, Slide, Update
from coatcheck._sansio.tuples import build

EXAMPLES: list[tuple[type[tuple[object, ...]], tuple[object, ...]]] = [
    (Load, ("k" * 64, 1.5, LockRequest("token", 30.0), Slide(1.5, 2.5, 0.5, -1.0))),
    (Update, ("k" * 64, b"payload", 1.0, 2.0, 1.0, 7, "token", object())),
    (Slide, (1.0, 2.0, 0.5, -1.0)),
    (Record, (b"payload", 3, 1.0, 2.0, ("handle",))),
    (SaveOutcome, ([("Vary", "Cookie")], "ticket", False)),
]


@pytest.mark.parametrize(("cls", "fields"), EXAMPLES, ids=[c.__name__ for c, _ in EXAMPLES])
def test_build_makes_what_the_constructor_makes(
    cls: type[tuple[object, ...]], fields: tuple[object, ...]
) -> None:
    built = build(cls, fields)
    made = cls(*fields)
    assert type(built) is cls
    assert built == made
    assert built._asdict() == made._asdict()
    # Every field given: build applies no defaults, so the field count must match.
    assert len(fields) == len(cls._fields)


@pytest.mark.parametrize("cls", [cls for cls, _ in EXAMPLES], ids=lambda c: c.__name__)
def test_the_types_are_plain_named_tuples(cls: type[tuple[object, ...]]) -> None:
    # build bypasses __new__: that is only sound while __new__ does nothing but fill the
    # fields, as a named tuple's generated one does.
    assert cls.__bases__ == (tuple,)
    assert cls.__new__.__doc__ == f"Create new instance of {cls.__name__}({', '.join(cls._fields)})"


def test_build_is_tuple_new() -> None:
    # If this changes, the speed it was made for is gone: measure before keeping it.
    assert build is tuple.__new__
