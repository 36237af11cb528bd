"""Flask's tagged JSON as a coatcheck serializer: the values Flask apps store come back exactly,
the fast paths write and read what Flask's own serializer does, and bad input is refused the
way every coatcheck serializer refuses it."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from flask.json.tag import TaggedJSONSerializer as FlaskTagged
from markupsafe import Markup

from coatcheck import SerializationError
from coatcheck.contrib.flask import TaggedJSONSerializer

VALUES: list[Any] = [
    {"n": 1, "s": "x", "f": 1.5, "b": True, "none": None, "l": [1, [2, {"a": "b"}]]},
    {"t": (1, 2, (3,)), "bytes": b"\xff\x00", "m": Markup("<b>"), "u": uuid.UUID(int=7)},
    {"d": datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc), "nested": {"t": ("a",)}},
    {"t_tag": {" t": "not-a-tuple"}, "di": {" di": "not-a-dict"}, "k": {" t__": 1}},
    {"space": {" x": 1}, "quote": 'a{" t', "brace": "{} ", "unicode": "é✓"},
]


@pytest.mark.parametrize("value", VALUES)
def test_round_trip_and_flasks_own_encoding(value: dict[str, Any]) -> None:
    serializer = TaggedJSONSerializer()
    data = serializer.dumps(value)
    assert isinstance(data, bytes)
    back = serializer.loads(data)
    assert back == value
    assert [type(v) for v in back.values()] == [type(v) for v in value.values()]
    # What Flask's own serializer writes (compact, ASCII escaped) reads back the same, and
    # ours is the same JSON document.
    flask_text = FlaskTagged().dumps(value)
    assert serializer.loads(flask_text.encode()) == value
    assert json.loads(data) == json.loads(flask_text)


def test_values_it_cannot_store_exactly_are_refused() -> None:
    serializer = TaggedJSONSerializer()
    for value in (Decimal("1.5"), date(2024, 5, 1), {1, 2}, float("nan"), object()):
        with pytest.raises(SerializationError):
            serializer.dumps({"v": value})


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"\xff", b'{" b":5}', b'{" u":"not-a-uuid"}', b"[" * 100_000, b'{" d":1}'],
)
def test_bad_payloads_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the protocol's one promise is the type
        TaggedJSONSerializer().loads(data)


def test_format_name() -> None:
    assert TaggedJSONSerializer.format_name == "flask-tagged-json"
