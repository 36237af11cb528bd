"""Fixtures of the ASGI middleware tests: a probed asyncio store, a manager on it (on the
frozen ``clock`` of tests/conftest.py), a client of the wrapped Starlette app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from coatcheck import AsyncSessionManager
from coatcheck.testing import FrozenClock

from .._support import AsyncProbeStore, session_config
from ._app import make_client


@pytest_asyncio.fixture
async def store() -> AsyncIterator[AsyncProbeStore]:
    probe = AsyncProbeStore()
    yield probe
    await probe.aclose()


@pytest.fixture
def manager(store: AsyncProbeStore, clock: FrozenClock) -> AsyncSessionManager:
    return AsyncSessionManager(store, session_config(), clock=clock)


@pytest_asyncio.fixture
async def client(manager: AsyncSessionManager) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(manager) as c:
        yield c
