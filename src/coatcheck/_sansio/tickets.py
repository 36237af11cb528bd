"""What the client holds: the ticket for a session id, and how a presented one is judged.

A ticket is the session id, or, with ``sign_cookie``, the id with an HMAC (newest key signs, all
verify). A presented ticket is untrusted input: it is refused, with one line on the
``coatcheck.security`` logger, unless its signature (when signing is on) and the id's shape
check out. The log line carries a reason code and a keyed fingerprint, never the ticket itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

from .config import SessionConfig
from .ids import fingerprint, id_pattern, storage_key
from .signing import Signer

__all__ = ["MAX_TICKET_LENGTH", "Tickets", "security_log"]

#: Tampering and anomalies go here, one record per event, never with a raw id or a value.
security_log = logging.getLogger("coatcheck.security")

#: Longer tickets are refused without being verified, and only this much is fingerprinted.
MAX_TICKET_LENGTH = 4096
#: How many admitted tickets :meth:`Tickets.admit` remembers (about 450 bytes each, so under 2 MB).
ADMITTED_CACHE = 4096


class Tickets:
    """Issues tickets for session ids and judges the ones clients present."""

    __slots__ = ("_admitted", "_fp_key", "_id_fullmatch", "_signer")

    def __init__(self, config: SessionConfig) -> None:
        keys = list(config.secret_keys)
        self._signer = (
            Signer(keys, purpose=f"cookie:{config.cookie.name}") if config.sign_cookie else None
        )
        # Log fingerprints are keyed so a log reader cannot confirm a guessed id; without a
        # configured secret the key lives only as long as the process.
        seed = keys[0] if keys else os.urandom(32)
        seed_bytes = seed.encode() if isinstance(seed, str) else seed
        self._fp_key = hmac.new(seed_bytes, b"coatcheck:log-fingerprint", hashlib.sha256).digest()
        # The id allow-list (ids.is_valid_session_id) as its compiled pattern: tickets are str.
        self._id_fullmatch = id_pattern(config.id_bytes).fullmatch
        # ticket -> (id, stale, storage key) of tickets that passed. Verifying one again
        # gives the same answer (the keys never change for this object), so a client's
        # every request after its first costs a dict lookup instead of an HMAC and a SHA-256
        # (a fifth of an open on the memory store). Refusals are never remembered, so a
        # flood of forged tickets cannot fill it; a full cache starts over.
        self._admitted: dict[str, tuple[str, bool, str]] = {}

    def issue(self, session_id: str) -> str:
        """The value to hand the client for ``session_id`` (signed when signing is on)."""
        return self._signer.sign(session_id) if self._signer else session_id

    def read(self, ticket: str) -> tuple[str | None, bool]:
        """``(session_id, stale)`` for a presented ticket; ``(None, False)`` when it is refused.

        ``stale`` says the ticket was signed with an older key and should be re-issued. A
        refusal has been logged already (``bad-signature`` or ``malformed-id``).
        """
        session_id, stale, _ = self.admit(ticket)
        return session_id, stale

    def admit(self, ticket: str) -> tuple[str | None, bool, str | None]:
        """:meth:`read`, and the storage key of the id (``None`` when refused)."""
        admitted = self._admitted.get(ticket)
        if admitted is not None:
            return admitted
        judged = self._judge(ticket)
        if isinstance(judged, str):
            self.security_event(judged, ticket)
            return None, False, None
        return judged

    def key_of(self, ticket: str) -> str | None:
        """The storage key of a ticket :meth:`admit` would admit, else None. Logs nothing:
        the open that follows judges the ticket again, and logs a refusal once."""
        admitted = self._admitted.get(ticket)
        if admitted is not None:
            return admitted[2]
        judged = self._judge(ticket)
        return None if isinstance(judged, str) else judged[2]

    def _judge(self, ticket: str) -> tuple[str, bool, str] | str:
        # (id, stale, key), remembered; or the reason code of the refusal.
        session_id = ticket
        stale = False
        if self._signer is not None:
            verified = self._signer.verify(ticket[:MAX_TICKET_LENGTH])
            if verified is None or len(ticket) > MAX_TICKET_LENGTH:
                return "bad-signature"
            session_id, newest = verified
            stale = not newest
        if self._id_fullmatch(session_id) is None:
            return "malformed-id"
        admitted = (session_id, stale, storage_key(session_id))
        cache = self._admitted
        if len(cache) >= ADMITTED_CACHE:
            cache.clear()
        cache[ticket] = admitted
        return admitted

    def security_event(self, reason: str, ticket: str | None = None) -> None:
        """Log one tampering/anomaly event with a reason code and only a keyed fingerprint."""
        fp = fingerprint(ticket[:MAX_TICKET_LENGTH], self._fp_key) if ticket else "-"
        security_log.warning(
            "session refused: %s (fingerprint %s)",
            reason,
            fp,
            extra={"reason": reason, "session_fingerprint": fp},
        )
