"""Fixtures of the WSGI middleware tests: a probed store, a manager on it (on the frozen
``clock`` of tests/conftest.py), a client of the wrapped demo app."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck.testing import FrozenClock

from .._support import ProbeStore, session_config
from ._app import make_client


@pytest.fixture
def store() -> Iterator[ProbeStore]:
    probe = ProbeStore()
    yield probe
    probe.close()


@pytest.fixture
def manager(store: ProbeStore, clock: FrozenClock) -> SessionManager:
    return SessionManager(store, session_config(), clock=clock)


@pytest.fixture
def client(manager: SessionManager) -> Iterator[httpx.Client]:
    with make_client(manager) as c:
        yield c
