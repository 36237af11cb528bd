"""``StoreError.outcome_unknown``: whether a failed request may have changed its session.

The driver decides it from what it sent: a write that failed after it may have reached the
server (a timeout, a broken connection), or any write that went through before the failure,
makes it unknown; a failure that comes before anything was sent (a refused connection, no free
pooled connection: the store's ``unsent_errors``) or a failed load leaves it known: nothing
was saved. The 503's body and log line follow it (tests/stores/test_outcomes.py shows it on
frozen servers).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from coatcheck import SessionManager, StoreUnavailable
from coatcheck._sansio.headers import (
    OUTCOME_UNKNOWN_BODY,
    UNAVAILABLE_BODY,
    log_refusal,
    refusal,
)
from coatcheck.stores import MemoryStore
from coatcheck.stores._sql import PoolTimeout

from ._support import session_config


class _Failing(MemoryStore):
    """A memory store whose ``fail`` operations raise ``error``."""

    unsent_errors = (PoolTimeout,)

    def __init__(self) -> None:
        super().__init__()
        self.fail: set[str] = set()
        self.error: Exception = TimeoutError("no reply")

    def _maybe(self, name: str) -> None:
        if name in self.fail:
            raise self.error

    def load(self, op: Any) -> Any:
        self._maybe("load")
        return super().load(op)

    def update(self, op: Any) -> Any:
        self._maybe("update")
        return super().update(op)

    def create(self, op: Any) -> Any:
        self._maybe("create")
        return super().create(op)


def _saved_once(store: _Failing) -> tuple[SessionManager, str]:
    manager = SessionManager(store, session_config())
    session = manager.open(None)
    session["n"] = 1
    outcome = manager.save(session)
    assert outcome.ticket is not None
    return manager, outcome.ticket


def _failed_save(manager: SessionManager, ticket: str, *, rotate: bool = False) -> StoreUnavailable:
    session = manager.open(ticket)
    session["n"] = 2
    if rotate:
        session.regenerate()
    with pytest.raises(StoreUnavailable) as failure:
        manager.save(session)
    return failure.value


@pytest.mark.parametrize(
    ("error", "unknown"),
    [
        (TimeoutError("no reply"), True),  # sent, not confirmed
        (ConnectionResetError("reset"), True),  # the connection broke after sending
        (ConnectionRefusedError("refused"), False),  # no connection: nothing sent
        (PoolTimeout("no free connection"), False),  # the store's unsent_errors
    ],
)
def test_a_failed_update(error: Exception, unknown: bool) -> None:
    store = _Failing()
    manager, ticket = _saved_once(store)
    store.fail, store.error = {"update"}, error
    exc = _failed_save(manager, ticket)
    assert exc.outcome_unknown is unknown
    assert refusal(exc)[1] == (OUTCOME_UNKNOWN_BODY if unknown else UNAVAILABLE_BODY)


def test_a_write_that_went_through_before_the_failure_makes_it_unknown() -> None:
    # A rotation retires the old record, then creates the new one: the first write is done.
    store = _Failing()
    manager, ticket = _saved_once(store)
    store.fail, store.error = {"create"}, ConnectionRefusedError("refused")
    assert _failed_save(manager, ticket, rotate=True).outcome_unknown is True


def test_a_failed_load_saved_nothing() -> None:
    store = _Failing()
    manager, ticket = _saved_once(store)
    store.fail = {"load"}
    with pytest.raises(StoreUnavailable) as failure:
        manager.open(ticket)
    assert failure.value.outcome_unknown is False
    headers, body = refusal(failure.value)
    assert body == UNAVAILABLE_BODY and b"nothing was saved" in body
    assert ("Content-Length", str(len(body))) in headers


def test_the_log_line_says_which(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        log_refusal(StoreUnavailable("s://", "timed out", outcome_unknown=True))
        log_refusal(StoreUnavailable("s://", "refused"))
    unknown, known = (r for r in caplog.records if r.name == "coatcheck")
    assert "outcome is unknown" in unknown.getMessage()
    assert unknown.outcome_unknown is True  # type: ignore[attr-defined]
    assert "nothing was saved" in known.getMessage()
    assert known.outcome_unknown is False  # type: ignore[attr-defined]
