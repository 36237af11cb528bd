"""Fixtures of the session-rule tests: each test runs on every store of ``RULE_BACKENDS``,
with a manager on the frozen ``clock`` of tests/conftest.py (sync twin generated)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from coatcheck import AsyncSessionManager
from coatcheck.stores import AsyncStore
from coatcheck.testing import FrozenClock

from ...support._async.backends import async_store_for
from ._support import RULE_BACKENDS, manager_for


@pytest.fixture(params=RULE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest_asyncio.fixture
async def async_store(backend: str, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with async_store_for(backend, tmp_path) as store:
        yield store


@pytest.fixture
def manager(async_store: AsyncStore, clock: FrozenClock) -> AsyncSessionManager:
    return manager_for(async_store, clock)
