"""The session protocol, written once: every decision, no I/O.

:class:`SessionCore` holds the rules: which ticket to trust, when a session has expired, what to
write and when, which headers to send. Its ``*_flow`` methods are generators that yield store
operations (:mod:`coatcheck._sansio.ops`) and receive their results; a short sync driver and a
short async driver (``coatcheck._sync.driver`` / ``coatcheck._async.driver``) run them against a
store. This is httpx's ``auth_flow`` idea: the sync and async managers cannot drift apart,
because neither contains any logic.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable

from ..errors import (
    ConfigurationError,
    SessionLocked,
    StoreError,
)
from .config import ConcurrencyMode, SessionConfig, check_mode
from .contention import Patience
from .cookies import cookie_values
from .document import AGENT, LIFETIME, REMOTE_ADDR, Codec, Corrupt, Document
from .ids import agent_digest, new_token
from .namespaces import Reservation
from .ops import (
    LOCKED,
    Damaged,
    Delete,
    Flow,
    Load,
    LockRequest,
    Record,
    Sleep,
    Slide,
    Unlock,
    damage,
    wrong_answer,
)
from .saving import SaveRules
from .session import Session
from .tickets import Tickets
from .timing import Clock, Lifetime
from .tuples import build
from .writes import Writes

__all__ = ["SessionCore"]

log = logging.getLogger("coatcheck")


def _returning(session: Session) -> Flow[Session]:
    """A flow that needs no store operation: it just returns ``session``."""
    yield from ()  # makes this a generator; yields nothing
    return session


class SessionCore(SaveRules):
    """The sans-I/O session rules behind :class:`~coatcheck.SessionManager` and its async twin."""

    def __init__(
        self,
        config: SessionConfig,
        clock: Callable[[], float] | None = None,
        store_name: str = "(unnamed store)",
        monotonic: Callable[[], float] = time.monotonic,
        slides_on_load: bool = False,
        session_class: type[Session] = Session,
    ) -> None:
        if not (isinstance(session_class, type) and issubclass(session_class, Session)):
            raise ConfigurationError("session_class must be a subclass of coatcheck.Session")
        self.config = config
        self._build = session_class.build
        self.store_name = store_name
        self.clock = Clock(clock)
        self.lifetime = Lifetime(config.idle_timeout, config.absolute_timeout)
        self.codec = Codec(config.serializer, config.max_payload_bytes)
        self.tickets = Tickets(config)
        self._monotonic = monotonic
        self._bound = config.bind_remote_addr or config.bind_user_agent
        self._empties = config.destroy_when_emptied
        # With a store that slides on load (its slides_on_load), the idle timeout's touch rides
        # on the load's round trip instead of costing the save one of its own. Not with a
        # binding: a request refused for another address or User-Agent must not keep the
        # session alive either.
        self._slides = slides_on_load and not self._bound and config.idle_timeout is not None
        self._reservations: dict[str, Reservation] = {}
        self._writes = Writes(
            config, self.codec, self.lifetime, self.tickets, store_name, monotonic
        )

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        """The current time as sessions see it (see :class:`~coatcheck._sansio.timing.Clock`)."""
        return self.clock.now()

    def adjust_time(self, delta: float) -> None:
        """The wall clock was moved by ``delta`` seconds; keep session ages as they were."""
        self.clock.adjust(delta)

    # -- reserved namespaces ---------------------------------------------------------------

    def reserve(self, name: str) -> Reservation:
        """Reserve a namespace: others may read it; only the returned object lets code write it."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a namespace name is a non-empty str")
        if name in self._reservations:
            raise ConfigurationError(f"namespace {name!r} is already reserved")
        reservation = Reservation(name)
        self._reservations[name] = reservation
        return reservation

    def release(self, name: str) -> None:
        """Free a reserved namespace so anyone may write it again."""
        self._reservations.pop(name, None)

    # -- opening ---------------------------------------------------------------------------

    def fresh(
        self,
        now: float,
        remote_addr: str | None,
        user_agent: str | None,
        had_ticket: bool = False,
        mode: ConcurrencyMode | None = None,
        read_only: bool = False,
    ) -> Session:
        """A new, unsaved session; it costs nothing until it holds data."""
        # Stored in whole milliseconds (an int encodes and decodes several times faster than
        # a float); the session sees the same rounded value now as after any later load.
        document = Document.new(int(now * 1000))
        if remote_addr is not None:
            document.meta[REMOTE_ADDR] = remote_addr
        if self.config.bind_user_agent:
            document.meta[AGENT] = agent_digest(user_agent)
        return self._build(
            document=document,
            accessed_at=now,
            reservations=self._reservations,
            concurrency=mode or self.config.concurrency,
            read_only=read_only,
            had_ticket=had_ticket,
            defaults=self.lifetime,
            id_bytes=self.config.id_bytes,
        )

    def _mode(self, concurrency: ConcurrencyMode | None) -> ConcurrencyMode:
        """The request's concurrency mode: its override, checked, or the configured one."""
        return check_mode(concurrency) if concurrency else self.config.concurrency

    def cookie_open_flow(
        self,
        cookie_header: str | None,
        remote_addr: str | None = None,
        user_agent: str | None = None,
        concurrency: ConcurrencyMode | None = None,
        read_only: bool = False,
        lock_wait: float | None = None,
    ) -> Flow[Session]:
        """:meth:`open_flow` for the session cookie found in a raw ``Cookie`` header.

        Two different values under the session cookie's name (cookie tossing from a sibling
        domain) are ambiguous: the request gets a fresh session and a security log line.
        """
        values = cookie_values(cookie_header, self.config.cookie.name) if cookie_header else None
        if not values:
            return self.open_flow(None, remote_addr, user_agent, concurrency, read_only)
        if len(values) > 1 and len(set(values)) > 1:
            mode = self._mode(concurrency)
            self.tickets.security_event("ambiguous-cookie", values[0])
            now = self.clock.now()
            return _returning(self.fresh(now, remote_addr, user_agent, True, mode, read_only))
        return self.open_flow(
            values[0], remote_addr, user_agent, concurrency, read_only, lock_wait=lock_wait
        )

    def lock_key(
        self,
        presented: str | None,
        concurrency: ConcurrencyMode | None,
        read_only: bool,
        *,
        header: bool = False,
    ) -> str | None:
        """The storage key whose lock an open of ``presented`` (a ticket, or with ``header`` a
        raw ``Cookie`` header) takes, or None when it takes none; logs nothing."""
        # (An invalid override is not "lock": the open that follows refuses it.)
        if read_only or (concurrency or self.config.concurrency) != "lock" or not presented:
            return None
        if header:
            values = cookie_values(presented, self.config.cookie.name)
            if not values or len(set(values)) > 1:
                return None
            presented = values[0]
        return self.tickets.key_of(presented)

    def open_flow(
        self,
        ticket: str | None,
        remote_addr: str | None = None,
        user_agent: str | None = None,
        concurrency: ConcurrencyMode | None = None,
        read_only: bool = False,
        lock_wait: float | None = None,
    ) -> Flow[Session]:
        """Turn what the client presented into a session (Aquarium's strict ``open``).

        An unknown, expired, malformed or forged ticket yields a fresh session; no record is
        ever created for an id the client chose. ``concurrency`` overrides the configured mode
        for this request; ``read_only`` promises no writes, so no lock is taken and nothing is
        saved or touched. ``lock_wait`` is what is left of the configured one (the manager
        queued the request in its process first).
        """
        mode = self._mode(concurrency)
        now = self.clock.now()
        if ticket is None or ticket == "":
            return self.fresh(now, remote_addr, user_agent, False, mode, read_only)
        if not isinstance(ticket, str):
            raise TypeError(f"a session ticket is a str or None, not {type(ticket).__name__}")
        session_id, stale, key = self.tickets.admit(ticket)
        if session_id is None or key is None:
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        slide = None
        if self._slides and not read_only:
            idle = self.lifetime.idle
            slide = build(Slide, (now, now + idle, now - self.config.access_resolution, now - idle))
        lock_token = new_token() if mode == "lock" and not read_only else None
        if lock_token is None:
            load = build(Load, (key, now, None, slide))
            record = yield load
            if not (record is None or isinstance(record, (Record, Damaged))):
                raise wrong_answer(self.store_name, load, record)
        else:
            record = yield from self._load_locked(key, now, lock_token, slide, lock_wait)
        if record is None:
            self.tickets.security_event("unknown-id", ticket)
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        if isinstance(record, Damaged):
            yield from self._discard(key, ticket, record.reason)
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        try:
            reason = damage(record)
            if reason is not None:
                raise Corrupt(reason)
            document = self.codec.decode(record.payload)
        except Corrupt as corrupt:
            yield from self._discard(key, ticket, corrupt.reason)
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        created = document.created_at
        # The session's own timeouts, when it has some (Session.set_lifetime), else the
        # manager's: one rule either way.
        own = document.meta.get(LIFETIME)
        lifetime = self.lifetime if own is None else self.lifetime.own(own)
        if now >= record.expires_at or now >= lifetime.deadline(created, record.accessed_at):
            # lemon: an expired session found on access is destroyed at once. Dead by the
            # store's own deadline too: stores with native expiry would have dropped it.
            log.info("session expired; deleted on access")
            # At the version seen: a save that got in meanwhile (a worker whose clock or
            # timeouts disagree) is not this request's to throw away.
            delete = Delete(key, record.version, record.handle)
            deleted = yield delete
            if not isinstance(deleted, bool):
                raise wrong_answer(self.store_name, delete, deleted)
            if not deleted and lock_token is not None:
                yield Unlock(key, lock_token)  # the newer record keeps living: not locked by us
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        if self._bound and not self._binding_holds(document, remote_addr, user_agent):
            # Refuse the request, keep the original: destroying it would let anyone who can
            # replay a cookie from elsewhere log its owner out.
            self.tickets.security_event("binding-mismatch", ticket)
            if lock_token is not None:
                yield Unlock(key, lock_token)
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        # A load with a slide leaves the request's own time as the stored access time exactly
        # when it slid (or when it was already current, where sliding changes nothing).
        slid = slide is not None and record.accessed_at == now
        if slid and record.expires_at != lifetime.deadline(created, now):
            # The load slid the record by the manager's idle timeout to somewhere else than
            # this session's deadline: past the absolute one, or off its own lifetime. An
            # access time that is due for a touch makes the save put the expiry right.
            record = Record(
                record.payload, record.version, -math.inf, record.expires_at, record.handle
            )
            slid = False
        session = self._build(
            document=document,
            accessed_at=now,
            reservations=self._reservations,
            concurrency=mode,
            read_only=read_only,
            had_ticket=True,
            session_id=session_id,
            key=key,
            stored=record,
            lock_token=lock_token,
            stale_ticket=stale,
            ticket=None if stale else ticket,
            slid=slid,
            defaults=self.lifetime,
            id_bytes=self.config.id_bytes,
        )
        if self.config.regenerate_every_request and not read_only:
            session.regenerate()
        return session

    def _discard(self, key: str, ticket: str, reason: str) -> Flow[None]:
        # Untrusted input, not a store failure: logged, whatever the key holds deleted (a
        # plain delete works on any value), and the request gets a fresh session.
        self.tickets.security_event(reason, ticket)
        yield Delete(key)

    def _binding_holds(
        self, document: Document, remote_addr: str | None, user_agent: str | None
    ) -> bool:
        config, meta = self.config, document.meta
        if config.bind_remote_addr and meta.get(REMOTE_ADDR) != remote_addr:
            return False
        return not (config.bind_user_agent and meta.get(AGENT) != agent_digest(user_agent))

    def _load_locked(
        self, key: str, now: float, lock_token: str, slide: Slide | None, wait: float | None
    ) -> Flow[Record | Damaged | None]:
        """Load a record and take its lock, waiting while another request holds it.

        ``slide`` stays the one made at the open's ``now`` across retries: it is the session's
        access time, while the lock's expiry follows the clock. ``wait`` is what is left of
        ``lock_wait`` after this process's own queue (:mod:`coatcheck._gates`); the time spent
        there counts as waiting for the store's next-in-line order too
        (:mod:`coatcheck._sansio.line`).
        """
        limit = self.config.lock_wait if wait is None else wait
        since = now - (self.config.lock_wait - limit)
        lock = LockRequest(lock_token, self.config.lock_timeout, since)
        patience = Patience(self._monotonic, limit)
        while True:
            op = Load(key, now, lock, slide)
            result = yield op
            if result is None or isinstance(result, (Record, Damaged)):
                return result
            if result is not LOCKED:
                raise wrong_answer(self.store_name, op, result)
            if patience.exhausted():
                # Give up the claim on the next turn, or the waiters behind would wait for
                # this one until its claim went stale (which is also what happens if the
                # store fails now: the answer stays SessionLocked).
                with contextlib.suppress(StoreError):
                    yield Unlock(key, lock_token)
                raise SessionLocked(
                    f"another request held the session lock for over {self.config.lock_wait} s"
                )
            yield Sleep(patience.pause(), key, lock_token)
            now = self.clock.now()
