"""The session rules of saving: what a request's save writes, and which headers it sends.

:class:`SaveRules` is the saving half of :class:`~coatcheck._sansio.core.SessionCore` (the
opening half stays there): the ``save_flow``, ``abandon_flow`` and ``cleanup_flow`` generators,
which yield store operations and receive their results as the core's other flows do.
"""

from __future__ import annotations

import math
import random

from .config import SessionConfig
from .cookies import delete_cookie_header, set_cookie_header
from .document import LIFETIME, LIFETIME_FIELDS
from .headers import SaveOutcome
from .ops import ClearExpired, Delete, Flow, Record, Unlock, wrong_answer
from .session import Session
from .tickets import Tickets
from .timing import Clock
from .tuples import build
from .writes import Writes

__all__ = ["SaveRules"]

_OWN_COOKIE = LIFETIME_FIELDS["cookie_max_age"]


class SaveRules:
    """Saving, abandoning and purging; the core sets the attributes below."""

    config: SessionConfig
    clock: Clock
    tickets: Tickets
    store_name: str
    _writes: Writes
    _empties: bool

    def save_flow(self, session: Session, refresh_cookie: bool = False) -> Flow[SaveOutcome]:
        """Write what the request changed, and say which headers the response needs.

        ``refresh_cookie`` re-sends a stored session's cookie even when nothing changed, when
        the cookie has a max age (Flask's ``SESSION_REFRESH_EACH_REQUEST``), so the browser
        keeps it as long as the server does. Whatever happens, a lock this request holds is
        released.
        """
        if session.lock_token is None:
            return self._save(session, refresh_cookie)  # nothing to release: skip the guard
        return self._save_releasing(session, refresh_cookie)

    def _save_releasing(self, session: Session, refresh_cookie: bool) -> Flow[SaveOutcome]:
        try:
            return (yield from self._save(session, refresh_cookie))
        except Exception:
            # A store error thrown in by the driver, or a refusal of the save itself. Not a
            # GeneratorExit: a flow closed half-way can yield nothing more (its lock expires).
            yield from self.abandon_flow(session)
            raise
        finally:
            session.lock_token = None

    def abandon_flow(self, session: Session) -> Flow[None]:
        """Drop this request's changes (an error response) and release its lock, if any.

        A load that slid the record's expiry to the manager's idle timeout, where the session
        has a lifetime of its own (or an absolute deadline before it), is put right with a
        touch: a "remember me" session must not end early because its last request failed.
        """
        key = session.key
        stored = session.stored
        if key is not None and stored is not None and stored.accessed_at == -math.inf:
            now = self.clock.now()
            yield from self._writes.touch(session, key, now)  # releases the lock too
        elif session.lock_token is not None and key is not None:
            yield Unlock(key, session.lock_token)
        session.lock_token = None

    def _retire_emptied(self, session: Session, key: str) -> Flow[bool]:
        """Delete an emptied session, at the version it was loaded at unless in ``none`` mode:
        a request that wrote to it meanwhile is not this one's to throw away. False when it
        did (the save then merges this request's removals onto that write, as any save would).
        """
        stored = session.stored
        if session.concurrency == "none" or stored is None:
            op = Delete(key)
        else:
            op = Delete(key, stored.version, stored.handle)
        deleted = yield op
        if not isinstance(deleted, bool):
            raise wrong_answer(self.store_name, op, deleted)
        return deleted or op.expected_version is None

    def _save(self, session: Session, refresh_cookie: bool = False) -> Flow[SaveOutcome]:
        now = self.clock.now()
        cookie = self.config.cookie
        changes = session.changes
        key = session.key
        headers: list[tuple[str, str]] = []
        ticket: str | None = None
        cleared = False
        own = session.document.meta.get(LIFETIME)
        max_age = cookie.max_age if own is None else own.get(_OWN_COOKIE, cookie.max_age)
        if session.read_only:
            pass
        elif changes.destroyed or (
            # destroy_when_emptied: this request left a stored session with nothing in it.
            self._empties
            and key is not None
            and changes.content
            and not session.document.has_info()
            and (yield from self._retire_emptied(session, key))
        ):
            if key is not None and changes.destroyed:
                yield Delete(key)
            if session.had_ticket:
                headers.append(("Set-Cookie", delete_cookie_header(cookie)))
                cleared = True
        elif key is None:
            # A session given its id during the request (ensure_id) is stored even when empty:
            # someone holds that id now.
            if session.id is not None or session.document.has_info():
                ticket = yield from self._writes.create(session, now)
        elif changes.rotate:
            ticket = yield from self._writes.rotate(session, key, now)
        elif changes.content:
            update = self._writes.update(session, key, now)
            version = yield update
            if not isinstance(version, int):
                update, version = yield from self._writes.retry(session, update, version)
            session.stored = build(Record, (update.payload, version, now, update.expires_at, None))
            # A cookie with a max age goes out again with its new expiry; so does any cookie
            # whose lifetime this request changed (from a browser-session one, or to one).
            if session.stale_ticket or max_age is not None or LIFETIME in changes.meta:
                # The ticket presented, when current, goes back as it is: signing it anew
                # would give the same value (the signature is deterministic) for an HMAC more.
                ticket = session.ticket or self.tickets.issue(session.id or "")
        else:
            touched = yield from self._writes.touch(session, key, now)
            if session.stale_ticket or ((touched or refresh_cookie) and max_age is not None):
                ticket = session.ticket or self.tickets.issue(session.id or "")
        session.lock_token = None
        if ticket is not None:
            headers.append(("Set-Cookie", set_cookie_header(cookie, ticket, max_age=max_age)))
        if headers:
            headers.append(("Cache-Control", cookie.cache_control))
        if headers or session.accessed:
            headers.append(("Vary", "Cookie"))
        probability = self.config.cleanup_probability
        # random() is fine here: this picks which request does housekeeping, nothing secret.
        # A read-only request promised no writes, housekeeping included.
        if (
            probability
            and not session.read_only
            and (probability >= 1.0 or random.random() < probability)  # noqa: S311
        ):
            yield ClearExpired(now)
        return build(SaveOutcome, (headers, ticket, cleared))

    def cleanup_flow(self) -> Flow[int]:
        """Purge every expired session; returns how many the store removed."""
        op = ClearExpired(self.clock.now())
        removed = yield op
        if not isinstance(removed, int):
            raise wrong_answer(self.store_name, op, removed)
        return removed
