"""The contract suite shipped in coatcheck.testing, run against every store of this package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from coatcheck.stores import AsyncStore
from coatcheck.testing.contract import AsyncStoreContract

from ...support._async.backends import BACKENDS, NATIVE_TTL, async_store_for


class TestAsyncStores(AsyncStoreContract):
    @pytest.fixture(params=BACKENDS)
    def backend(self, request: pytest.FixtureRequest) -> str:
        name: str = request.param
        return name

    @pytest_asyncio.fixture
    async def store(self, backend: str, tmp_path: Path) -> AsyncIterator[AsyncStore]:
        async with async_store_for(backend, tmp_path) as store:
            yield store

    @pytest.fixture
    def expires_natively(self, backend: str) -> bool:
        return backend in NATIVE_TTL
