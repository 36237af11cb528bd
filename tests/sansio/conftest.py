from __future__ import annotations

import pytest

from coatcheck.testing import FrozenClock

from .support import NOW


@pytest.fixture
def clock() -> FrozenClock:
    """The wall clock every core in these tests reads; it moves only when told to."""
    return FrozenClock(NOW)
