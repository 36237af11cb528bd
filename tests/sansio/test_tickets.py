"""Tickets: the admitted-ticket cache answers exactly as a verification would."""

from __future__ import annotations

import logging

import pytest

from coatcheck import SessionConfig
from coatcheck._sansio import tickets as tickets_module
from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck._sansio.signing import Signer
from coatcheck._sansio.tickets import Tickets

from .support import reasons

OLD_KEY = "old-secret-key-0123456789"
NEW_KEY = "new-secret-key-0123456789"


def _tickets(*keys: str) -> Tickets:
    return Tickets(SessionConfig(secret_keys=list(keys), sign_cookie=True))


def test_an_admitted_ticket_is_answered_again_without_verifying_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tickets = _tickets(NEW_KEY, OLD_KEY)
    session_id = new_session_id()
    old_ticket = _tickets(OLD_KEY).issue(session_id)
    verified: list[str] = []
    real_verify = Signer.verify

    def counting_verify(self: Signer, signed: str) -> tuple[str, bool] | None:
        verified.append(signed)
        return real_verify(self, signed)

    monkeypatch.setattr(Signer, "verify", counting_verify)
    first = tickets.admit(old_ticket)
    second = tickets.admit(old_ticket)
    # The same answer, the stale flag (signed by an older key) included, from one HMAC.
    assert first == second == (session_id, True, storage_key(session_id))
    assert tickets.read(old_ticket) == (session_id, True)
    assert verified == [old_ticket]


def test_refused_tickets_are_never_remembered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="coatcheck.security")
    tickets = _tickets(NEW_KEY)
    session_id = new_session_id()
    good = tickets.issue(session_id)
    forged = session_id + "." + ("A" if good[-1] != "A" else "B") * 43
    for _ in range(3):
        assert tickets.admit(forged) == (None, False, None)
    assert reasons(caplog) == ["bad-signature"] * 3  # every one judged and logged anew
    assert tickets.admit(good)[0] == session_id
    assert tickets.admit(good[:-1] + ("x" if good[-1] != "x" else "y"))[0] is None


def test_the_cache_is_bounded_and_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tickets_module, "ADMITTED_CACHE", 8)
    tickets = _tickets(NEW_KEY)
    issued = [tickets.issue(new_session_id()) for _ in range(20)]
    for ticket in issued:
        assert tickets.admit(ticket)[0] == ticket.rpartition(".")[0]
        assert len(tickets._admitted) <= 8
    # Forgotten tickets are verified again, with the same answer.
    assert [tickets.admit(t)[0] for t in issued] == [t.rpartition(".")[0] for t in issued]


def test_a_key_taken_out_of_the_configuration_refuses_its_tickets_at_once() -> None:
    session_id = new_session_id()
    before = _tickets(NEW_KEY, OLD_KEY)
    old_ticket = _tickets(OLD_KEY).issue(session_id)
    assert before.admit(old_ticket)[0] == session_id
    # A new configuration is a new Tickets: nothing admitted under the old one carries over.
    after = _tickets(NEW_KEY)
    assert after.admit(old_ticket) == (None, False, None)
