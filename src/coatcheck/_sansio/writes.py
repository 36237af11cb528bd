"""The writes a save makes: a new record under a fresh id, a compare-and-set update, a
rotation (compare-and-delete, then create), a touch.

:class:`~coatcheck._sansio.core.SessionCore` decides which one a save needs; these flows carry
it out against the store, each with what it must get right: a create never reuses an id, an
update or a rotation never writes over a newer version or brings back a destroyed session,
and a touch moves only the times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from ..errors import SessionConflict, SessionInterrupted, StoreError
from .config import SessionConfig
from .contention import Patience
from .document import LIFETIME, Codec, Corrupt
from .ids import new_session_id, storage_key
from .merge import rebase
from .ops import (
    Create,
    Damaged,
    Delete,
    Flow,
    Load,
    Record,
    Sleep,
    Touch,
    Unlock,
    Update,
    damage,
    wrong_answer,
)
from .session import Session
from .tickets import Tickets
from .timing import Lifetime
from .tuples import build

__all__ = ["Writes"]

# A fresh id colliding with a stored one is a 2**-128 event at worst; a store that keeps
# refusing creates is broken, and saying so beats looping.
_CREATE_ATTEMPTS = 4


class _Race:
    """How often one save has lost to concurrent ones, and its patience once that repeats."""

    __slots__ = ("losses", "patience")

    def __init__(self) -> None:
        self.losses = 0
        self.patience: Patience | None = None


class Writes:
    """The store writes of a save, as flows over one store's operations."""

    def __init__(
        self,
        config: SessionConfig,
        codec: Codec,
        lifetime: Lifetime,
        tickets: Tickets,
        store_name: str,
        monotonic: Callable[[], float],
    ) -> None:
        self.config = config
        self.codec = codec
        self.lifetime = lifetime
        self.tickets = tickets
        self.store_name = store_name
        self._monotonic = monotonic

    def create(self, session: Session, now: float) -> Flow[str]:
        """Store the session under a fresh id (its first save, or a rotation); its ticket."""
        payload = self.codec.encode(session.document)
        expires_at = self._deadline(session, now)
        # A new session given its id during the request (Session.ensure_id) keeps it.
        assigned = session.id if session.key is None else None
        for _ in range(_CREATE_ATTEMPTS):
            session_id = assigned or new_session_id(self.config.id_bytes)
            key = storage_key(session_id)
            create = Create(key, payload, now, expires_at, now)
            created = yield create
            if not isinstance(created, bool):
                raise wrong_answer(self.store_name, create, created)
            if created:
                session.adopt(session_id, key, Record(payload, 1, now, expires_at))
                return self.tickets.issue(session_id)
            if assigned is not None:
                # 2**-128 by chance, for a 256-bit id drawn here; never the client's choice.
                raise StoreError(self.store_name, "the id given to the new session is taken")
        raise StoreError(self.store_name, f"{_CREATE_ATTEMPTS} fresh ids in a row already existed")

    def _deadline(self, session: Session, now: float) -> float:
        """When ``session`` expires if used now: by its own timeouts, else the manager's."""
        own = session.document.meta.get(LIFETIME)
        lifetime = self.lifetime if own is None else self.lifetime.own(own)
        return lifetime.deadline(session.created_at, now)

    def update(self, session: Session, key: str, now: float) -> Update:
        """The write of the changed session at the version it was loaded at (compare-and-set).

        The save yields it itself, and hands an answer other than the new version to
        :meth:`retry`; then the record it wrote becomes the session's ``stored`` one.
        """
        stored = session.stored
        if stored is None:
            raise AssertionError("a stored session without its record")
        # _deadline, inlined: every read-modify-write request passes here.
        own = session.document.meta.get(LIFETIME)
        lifetime = self.lifetime if own is None else self.lifetime.own(own)
        expires_at = lifetime.deadline(session.created_at, now)
        payload = self.codec.encode(session.document)
        expected = None if session.concurrency == "none" else stored.version
        fields = (key, payload, now, expires_at, now, expected, session.lock_token, stored.handle)
        return build(Update, fields)

    def retry(self, session: Session, update: Update, answer: object) -> Flow[tuple[Update, int]]:
        """The update found no record, or a newer version: merge and retry, or give up.

        Returns the update that won and its new version.
        """
        race = _Race()
        while True:
            if answer is not None:
                raise wrong_answer(self.store_name, update, answer)
            newer = None
            if update.expected_version is not None:
                newer = yield from self._catch_up(session, update.key, update.now, race)
            if newer is None:
                self._interrupted(session)
            payload = self.codec.encode(session.document)
            update = update._replace(
                payload=payload,
                expires_at=self._deadline(session, update.now),  # the merge may change it
                expected_version=newer.version,
                handle=newer.handle,
            )
            answer = yield update
            if isinstance(answer, int):
                return update, answer

    def rotate(self, session: Session, key: str, now: float) -> Flow[str]:
        """Move the session to a fresh id: retire the record it was loaded from, then store it anew.

        The retirement is a compare-and-delete at the loaded version, and comes first: when the
        record is gone (a logout, another rotation) nothing is written under the new id, so a
        rotation never brings a destroyed session back; when it is newer, the concurrent save
        is merged in first (or, in ``none`` mode, overwritten as any save there would), so it
        is never dropped. Crashing between the two writes leaves the user logged out, never with
        two live ids. The new ticket.
        """
        stored = session.stored
        if stored is None:
            raise AssertionError("a stored session without its record")
        race = _Race()
        expected, handle = stored.version, stored.handle
        while True:
            retire = Delete(key, expected, handle)
            retired = yield retire
            if not isinstance(retired, bool):
                raise wrong_answer(self.store_name, retire, retired)
            if retired:
                return (yield from self.create(session, now))
            if session.concurrency == "none":
                newer = yield from self._reload(session, key, now)
            else:
                newer = yield from self._catch_up(session, key, now, race)
            if newer is None:
                self._interrupted(session)
            expected, handle = newer.version, newer.handle

    def _catch_up(self, session: Session, key: str, now: float, race: _Race) -> Flow[Record | None]:
        """A write lost to a concurrent save: the record it left, with this request's changes
        merged onto it (back-off once the losses repeat); None when the record is gone.

        Raises SessionConflict when the merge policy refuses, or the losses outlast lock_wait.
        """
        newer = yield from self._reload(session, key, now)
        if newer is None:
            return None
        rebase(session, newer, self.codec, self.config.merge_conflict)
        race.losses += 1
        if race.losses > 1:
            # Losing twice in a row means writers in lock-step: a random, growing pause lets
            # one of them through, for at most lock_wait.
            if race.patience is None:
                race.patience = Patience(self._monotonic, self.config.lock_wait)
            elif race.patience.exhausted():
                raise SessionConflict([])
            yield Sleep(race.patience.jittered_pause())
        return newer

    def _reload(self, session: Session, key: str, now: float) -> Flow[Record | None]:
        """The record a concurrent save left under ``key``, or None when there is none.

        A damaged one (see :class:`~coatcheck._sansio.ops.Damaged`) is logged and deleted, and
        the save interrupted: there is nothing left to merge into.
        """
        load = Load(key, now)
        newer = yield load
        if newer is None:
            return None
        if isinstance(newer, Damaged):
            reason: str | None = newer.reason
        elif isinstance(newer, Record):
            reason = damage(newer)
            if reason is None:
                try:
                    self.codec.decode(newer.payload)
                except Corrupt as corrupt:
                    reason = corrupt.reason
                else:
                    return newer
        else:
            raise wrong_answer(self.store_name, load, newer)
        self.tickets.security_event(reason or "damaged-record", session.id)
        yield Delete(key)
        raise SessionInterrupted("the stored session changed into something unreadable")

    def _interrupted(self, session: Session) -> NoReturn:
        # No record means the session was destroyed or rotated meanwhile, and writing it
        # back (under its id or a new one) would resurrect it.
        self.tickets.security_event("session-interrupted", session.id)
        raise SessionInterrupted(
            "the session was destroyed or rotated by another request; changes dropped"
        )

    def touch(self, session: Session, key: str, now: float) -> Flow[bool]:
        """Slide the idle timeout when the stored access time is older than the resolution
        (releasing the lock in the same step); otherwise just release the lock, if held.

        True when the stored expiry moved in this request: by this touch, or by the load.
        """
        stored = session.stored
        unlock = session.lock_token
        if session.slid:
            if unlock is not None:
                yield Unlock(key, unlock)
            return True
        if stored is not None and now - stored.accessed_at >= self.config.access_resolution:
            expires_at = self._deadline(session, now)
            touch = Touch(key, now, expires_at, now, unlock, stored.handle)
            touched = yield touch
            if not isinstance(touched, bool):
                raise wrong_answer(self.store_name, touch, touched)
            if touched:
                session.stored = Record(stored.payload, stored.version, now, expires_at)
                return True
            return False
        if unlock is not None:
            yield Unlock(key, unlock)
        return False
