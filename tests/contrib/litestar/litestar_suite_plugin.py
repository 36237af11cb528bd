"""A pytest plugin for Litestar's own session tests (run by test_litestar_suite.py in a
subprocess): coatcheck's backend under the names the tests import, and the fixtures of
Litestar's ``tests/conftest.py`` that the session tests use, built on it.

Loaded with ``-p litestar_suite_plugin``, this directory on ``PYTHONPATH``. The harness
rewrites the session tests' imports from ``litestar.middleware.session.server_side`` to this
module, so ``ServerSideSessionConfig`` there is :class:`ServerSideSessionConfig` here:
coatcheck's config on the run's store (``$COATCHECK_LITESTAR_STORE``, one store object for the
whole run). Litestar's own ``tests/conftest.py`` is not used (it imports Litestar's whole test
toolchain); the fixtures below replace the ones the session tests ask for. Every config made
during a test is counted in the junit properties, so the caller can tell coatcheck's backend
was the one under test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.stores.memory import MemoryStore

from coatcheck.contrib.litestar import CoatcheckSessionBackend, CoatcheckSessionConfig
from coatcheck.stores import async_store_from_url
from coatcheck.stores.base import AsyncStore

__all__ = ["ServerSideSessionBackend", "ServerSideSessionConfig"]

_STORE: AsyncStore = async_store_from_url(os.environ["COATCHECK_LITESTAR_STORE"])
# The configs each test made, for its junit properties.
_made: list[CoatcheckSessionConfig] = []


@dataclass
class ServerSideSessionConfig(CoatcheckSessionConfig):
    """coatcheck's config under the name Litestar's tests import, on the run's store."""

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = _STORE
        super().__post_init__()
        _made.append(self)


#: The backend under the name Litestar's tests import (their annotations name it).
ServerSideSessionBackend = CoatcheckSessionBackend


def pytest_configure(config: pytest.Config) -> None:
    create = getattr(_STORE, "create_tables", None)
    if create is not None:
        asyncio.run(create())


def pytest_unconfigure(config: pytest.Config) -> None:
    asyncio.run(_STORE.aclose())


@pytest.fixture(autouse=True)
def _count_configs(request: pytest.FixtureRequest) -> Iterator[None]:
    # test_integration.py builds its config at import, before any test: counted for none.
    before = len(_made)
    yield
    request.node.user_properties.append(("coatcheck_configs", len(_made) - before))


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def server_side_session_config() -> ServerSideSessionConfig:
    return ServerSideSessionConfig()


@pytest.fixture
def server_side_session_backend(
    server_side_session_config: ServerSideSessionConfig,
) -> CoatcheckSessionBackend:
    return CoatcheckSessionBackend(config=server_side_session_config)


# Litestar parametrises these over its cookie backend and its server-side one; only the
# server-side parameter (its id kept) concerns a server-side backend.
@pytest.fixture(params=[pytest.param("server_side_session_config", id="server-side")])
def session_backend_config(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=[pytest.param("server_side_session_backend", id="server-side")])
def session_backend(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture
def session_backend_config_memory(memory_store: MemoryStore) -> ServerSideSessionConfig:
    return ServerSideSessionConfig()
