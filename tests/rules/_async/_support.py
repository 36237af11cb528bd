"""What the session-rule tests share: the stores they run on, the timeouts, a manager with
those timeouts, and ways to look behind it (sync twin generated)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from coatcheck import AsyncSessionManager
from coatcheck._sansio.ids import storage_key
from coatcheck._sansio.session import Session
from coatcheck.stores import AsyncStore, Load, Record
from coatcheck.testing import FrozenClock

from ...support._async.backends import backends
from ...support.servers import async_rules_store

__all__ = [
    "ABSOLUTE",
    "IDLE",
    "RULE_BACKENDS",
    "manager_for",
    "raw_record",
    "security_events",
    "stored",
]

#: The memory store and one server store per flavour (``tests.support.servers``).
RULE_BACKENDS = backends("memory", async_rules_store)
IDLE = 1800.0
ABSOLUTE = 12 * 3600.0


def manager_for(store: AsyncStore, clock: FrozenClock, **settings: Any) -> AsyncSessionManager:
    settings.setdefault("idle_timeout", IDLE)
    settings.setdefault("absolute_timeout", ABSOLUTE)
    return AsyncSessionManager(store, clock=clock, **settings)


@contextmanager
def security_events(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Collect the reason codes logged on coatcheck.security inside the block."""
    reasons: list[str] = []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        yield reasons
    for record in caplog.records:
        if record.name == "coatcheck.security":
            reasons.append(record.__dict__["reason"])


async def stored(manager: AsyncSessionManager, **data: Any) -> tuple[str, Session]:
    """A saved session holding ``data``; returns its ticket and the session."""
    session = await manager.open(None)
    session.update(data)
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    return outcome.ticket, session


async def raw_record(store: AsyncStore, ticket: str, now: float) -> Record | None:
    record = await store.load(Load(storage_key(ticket), now))
    assert record is None or isinstance(record, Record)
    return record
