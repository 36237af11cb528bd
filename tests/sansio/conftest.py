"""Fixtures of the pure-module tests: a frozen clock, and each serializer in turn."""

from __future__ import annotations

import pytest

from coatcheck._sansio.serializers import JSONSerializer, MsgpackSerializer, Serializer
from coatcheck.testing import FrozenClock

from .support import NOW


@pytest.fixture
def clock() -> FrozenClock:
    """The wall clock every core in these tests reads; it moves only when told to."""
    return FrozenClock(NOW)


@pytest.fixture(params=["json", "msgpack"])
def serializer(request: pytest.FixtureRequest) -> Serializer:
    """Each serializer that shares the tagged tree, in turn."""
    return JSONSerializer() if request.param == "json" else MsgpackSerializer()
