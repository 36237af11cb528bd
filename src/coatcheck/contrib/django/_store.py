"""``SessionStore``: Django's ``SessionBase`` API on a coatcheck session.

The data Django's methods read and write (``_session_cache``) *is* the coatcheck
:class:`~coatcheck.Session` the manager opened, so coatcheck sees which keys a request changed,
even though Django's ``SessionMiddleware`` only ever asks for the whole session to be saved: in
``merge`` mode a save replays those keys on top of a concurrent request's save. An application
that sets ``request.session.modified = True`` after changing a nested value is diffed against
the loaded record at save, so the keys it changed in place are replayed too.

``session_key`` is what Django puts in the cookie: coatcheck's signed ticket for the session
id. A key that does not verify, or names no live session, loads as a new empty session whose
``session_key`` is None (Django's strict rule: a client never chooses its id); the first save
gives it a fresh one.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import (  # type: ignore[import-untyped]
    CreateError,
    SessionBase,
    UpdateError,
)
from django.contrib.sessions.exceptions import (  # type: ignore[import-untyped]
    SessionInterrupted as DjangoSessionInterrupted,
)

from ..._async.driver import run_async
from ..._sansio.document import DEFAULT
from ..._sansio.headers import SaveOutcome
from ..._sansio.ids import storage_key
from ..._sansio.session import Session
from ..._sync.driver import run_sync
from ...errors import SessionInterrupted
from ._config import Engine, engine
from ._rules import apply_expiry, changed_keys, delete_flow, interrupted_error

__all__ = ["SessionStore"]

_NOT_GIVEN: Any = object()


# SessionBase comes from Django, which has no type information: Any to mypy.
class SessionStore(SessionBase):  # type: ignore[misc]
    """A Django session engine on coatcheck: ``SESSION_ENGINE = "coatcheck.contrib.django"``.

    Sync methods run on the :class:`~coatcheck.SessionManager` of the current settings, the
    ``a*`` methods on its :class:`~coatcheck.AsyncSessionManager` (no thread), both on the store
    of ``settings.COATCHECK["STORE"]``. See docs/django.md.
    """

    #: Django's setter-validated key (SessionBase's property): the ticket, or None.
    _session_key: str | None

    def __init__(self, session_key: str | None = None) -> None:
        self._coatcheck: Session | None = None
        self._engine: Engine | None = None
        self._explicit = False
        self._settled = True
        # The last save created the record or moved it to a new id: nobody else knows it yet.
        self._written = False
        super().__init__(session_key)

    # -- the data: a coatcheck session --------------------------------------------------

    @property
    def _session_cache(self) -> Session:
        session = self._coatcheck
        if session is None:
            raise AttributeError("_session_cache")  # not loaded yet, as in SessionBase
        return session

    @_session_cache.setter
    def _session_cache(self, value: dict[str, Any]) -> None:
        # Code written for SessionBase assigns a dict; its keys replace the loaded ones,
        # tracked, so a merge replays the change.
        session = self._get_session()
        if value is not session:
            session.clear()
            session.update(value)

    @_session_cache.deleter
    def _session_cache(self) -> None:
        self._release()
        self._coatcheck = None

    @property
    def modified(self) -> bool:
        """Django's flag: the middleware saves the session when it is True.

        Set to True by the application (after changing a nested value in place), the keys
        whose values differ from the loaded record are saved as this request's changes.
        """
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = bool(value)
        self._explicit = bool(value)

    def _current_engine(self) -> Engine:
        if self._engine is None:
            self._engine = engine()
        return self._engine

    def _fresh(self) -> Session:
        # A ticket of None: no store operation, nothing to await.
        session = self._current_engine().manager.open(None)
        self._coatcheck = session
        self._settled = True
        return session

    def _opened(self, session: Session) -> Session:
        self._coatcheck = session
        # A stored session has a lock to release, or an expiry its load moved, unless saved.
        self._settled = session.is_new
        if session.is_new:
            self._session_key = None  # unknown, expired or forged: never adopted
        elif session.stale_ticket:
            self._modified = True  # signed with an older key: the save re-issues the cookie
        return session

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        session = self._coatcheck
        if session is not None:
            return session
        if no_load or self.session_key is None:
            return self._fresh()
        return self._opened(self._current_engine().manager.open(self.session_key))

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        session = self._coatcheck
        if session is not None:
            return session
        if no_load or self.session_key is None:
            return self._fresh()
        manager = self._current_engine().async_manager
        return self._opened(await manager.open(self.session_key))

    _session = property(_get_session)

    # -- the mapping methods that set Django's modified flag ----------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self._get_session()[key] = value
        self._modified = True

    async def aset(self, key: str, value: Any) -> None:
        """``session[key] = value`` on the async manager."""
        (await self._aget_session())[key] = value
        self._modified = True

    def __delitem__(self, key: str) -> None:
        del self._get_session()[key]
        self._modified = True

    def pop(self, key: str, default: Any = _NOT_GIVEN) -> Any:
        """Remove ``key`` and return its value (or ``default``), as ``dict.pop``."""
        session = self._get_session()
        self._modified = self._modified or dict.__contains__(session, key)
        return session.pop(key) if default is _NOT_GIVEN else session.pop(key, default)

    async def apop(self, key: str, default: Any = _NOT_GIVEN) -> Any:
        """:meth:`pop` on the async manager."""
        session = await self._aget_session()
        self._modified = self._modified or dict.__contains__(session, key)
        return session.pop(key) if default is _NOT_GIVEN else session.pop(key, default)

    def update(self, dict_: Any) -> None:
        """Set every key of ``dict_``."""
        self._get_session().update(dict_)
        self._modified = True

    async def aupdate(self, dict_: Any) -> None:
        """:meth:`update` on the async manager."""
        (await self._aget_session()).update(dict_)
        self._modified = True

    def clear(self) -> None:
        """Remove every key; the session stays, with its cookie (log out is :meth:`flush`).

        Unlike SessionBase's, it loads the session first: the removals are this request's
        changes, which a merge replays."""
        self._get_session().clear()
        self._modified = True

    # -- the store operations ----------------------------------------------------------

    def exists(self, session_key: str | None) -> bool:
        """Whether ``session_key`` names a live session (a read-only load: no lock, no touch)."""
        if not session_key:
            return False
        manager = self._current_engine().manager
        return not manager.open(session_key, read_only=True).is_new

    async def aexists(self, session_key: str | None) -> bool:
        """:meth:`exists` on the async manager."""
        if not session_key:
            return False
        manager = self._current_engine().async_manager
        return not (await manager.open(session_key, read_only=True)).is_new

    def load(self) -> Session:
        """Read the session from the store (again): the data, or a new empty session."""
        self._release()
        self._coatcheck = None
        return self._get_session()

    async def aload(self) -> Session:
        """:meth:`load` on the async manager."""
        await self._arelease()
        self._coatcheck = None
        return await self._aget_session()

    def create(self) -> None:
        """Store the current data (none, before any was set) as a new session with a new key."""
        data = self._detach()
        session = self._fresh()
        session.update(data)
        self._store(session)
        self._modified = True

    async def acreate(self) -> None:
        """:meth:`create` on the async manager."""
        data = await self._adetach()
        session = self._fresh()
        session.update(data)
        await self._astore(session)
        self._modified = True

    def save(self, must_create: bool = False) -> None:
        """Save the session: a new one is created (``CreateError`` with ``must_create`` for
        a stored one); a stored one whose record vanished raises ``UpdateError``."""
        session = self._get_session(no_load=must_create)
        if must_create and session.key is not None:
            raise CreateError
        created = session.key is None
        self._store(session)
        if created:
            self._modified = True  # as SessionBase's create(), which Django's engines call here

    async def asave(self, must_create: bool = False) -> None:
        """:meth:`save` on the async manager."""
        session = await self._aget_session(no_load=must_create)
        if must_create and session.key is not None:
            raise CreateError
        created = session.key is None
        await self._astore(session)
        if created:
            self._modified = True

    def delete(self, session_key: str | None = None) -> None:
        """Delete the session ``session_key`` names (by default this one) from the store."""
        key = self._storage_key(session_key)
        if key is not None:
            run_sync(delete_flow(key), self._current_engine().manager.store)

    async def adelete(self, session_key: str | None = None) -> None:
        """:meth:`delete` on the async manager."""
        key = self._storage_key(session_key)
        if key is not None:
            await run_async(delete_flow(key), self._current_engine().async_manager.store)

    def flush(self) -> None:
        """Log out: the stored session is deleted, and what follows is a new empty session."""
        self._release()
        self.delete()
        self._after_flush()

    async def aflush(self) -> None:
        """:meth:`flush` on the async manager."""
        await self._arelease()
        await self.adelete()
        self._after_flush()

    def cycle_key(self) -> None:
        """A new key for the same data, now (at log in): the old key stops working."""
        session = self._get_session()
        self._rotate(session)
        self._store(session, interrupted=DjangoSessionInterrupted)

    async def acycle_key(self) -> None:
        """:meth:`cycle_key` on the async manager."""
        session = await self._aget_session()
        self._rotate(session)
        await self._astore(session, interrupted=DjangoSessionInterrupted)

    @classmethod
    def clear_expired(cls) -> None:
        """Delete every expired session (``manage.py clearsessions``)."""
        engine().manager.cleanup()

    @classmethod
    async def aclear_expired(cls) -> None:
        """:meth:`clear_expired` on the async manager."""
        await engine().async_manager.cleanup()

    # -- for the middleware --------------------------------------------------------------

    def settle(self) -> None:
        """End the request for a session the middleware did not save: release its lock
        (``lock`` mode) and put right an expiry its load moved. Nothing to do otherwise."""
        self._release()

    # -- helpers -------------------------------------------------------------------------

    def _storage_key(self, session_key: str | None) -> str | None:
        session = self._coatcheck
        if session_key is None:
            if session is not None and session.key is not None:
                return session.key
            session_key = self.session_key
            if session_key is None:
                return None
        session_id, _ = self._current_engine().manager.core.tickets.read(session_key)
        return None if session_id is None else storage_key(session_id)

    def _after_flush(self) -> None:
        self._fresh()
        self._session_key = None
        self.accessed = True
        self._modified = True

    def _rotate(self, session: Session) -> None:
        if session.key is None:
            session.ensure_id()
        else:
            session.regenerate()

    def _detach(self) -> dict[str, Any]:
        session = self._coatcheck
        self._release()
        return {} if session is None else dict(dict.items(session))

    async def _adetach(self) -> dict[str, Any]:
        session = self._coatcheck
        await self._arelease()
        return {} if session is None else dict(dict.items(session))

    def _prepare(self, session: Session) -> bool:
        """What Django's SessionBase keeps in the data, turned into coatcheck's terms; True
        when the save will create the record or move it to a new id."""
        if session.key is None:
            session.ensure_id()  # Django stores a saved session even when it is empty
        elif self._written and not session.changes.content:
            # Django writes on every save(), so a record deleted since it was created here
            # raises UpdateError. A touch would not notice; a write of a record no other
            # request knows yet (its id is new) clobbers nothing.
            session.mark_modified()
        if self._explicit and session.stored is not None:
            codec = self._current_engine().manager.core.codec
            loaded = codec.decode(session.stored.payload).data.get(DEFAULT, {})
            for key in changed_keys(loaded, session):
                session.mark_modified(key)
            self._explicit = False
        apply_expiry(session)
        return session.key is None or session.regenerate_requested

    def _finish(self, outcome: SaveOutcome, moved: bool) -> None:
        self._written = moved
        if outcome.ticket is not None:
            self._session_key = outcome.ticket

    def _store(self, session: Session, interrupted: type[Exception] = UpdateError) -> None:
        moved = self._prepare(session)
        try:
            outcome = self._current_engine().manager.save(session)
        except SessionInterrupted as exc:
            raise interrupted_error(interrupted) from exc
        finally:
            self._settled = True
        self._finish(outcome, moved)

    async def _astore(self, session: Session, interrupted: type[Exception] = UpdateError) -> None:
        moved = self._prepare(session)
        try:
            outcome = await self._current_engine().async_manager.save(session)
        except SessionInterrupted as exc:
            raise interrupted_error(interrupted) from exc
        finally:
            self._settled = True
        self._finish(outcome, moved)

    def _release(self) -> None:
        session = self._coatcheck
        if session is not None and not self._settled:
            self._settled = True
            self._current_engine().manager.abandon(session)

    async def _arelease(self) -> None:
        session = self._coatcheck
        if session is not None and not self._settled:
            self._settled = True
            await self._current_engine().async_manager.abandon(session)
