"""The session protocol, written once: every decision, no I/O.

:class:`SessionCore` holds the rules — which ticket to trust, when a session has expired, what to
write and when, which headers to send. Its ``*_flow`` methods are generators that *yield* store
operations as ``(method_name, args)`` and receive their results; a short sync driver and a short
async driver (``coatcheck._sync.driver`` / ``coatcheck._async.driver``) run them against a store.
This is httpx's ``auth_flow`` idea: the sync and async managers cannot drift apart, because
neither contains any logic.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import random
import time
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from ..errors import (
    ConfigurationError,
    PayloadTooLarge,
    SerializationError,
    SessionConflict,
    SessionInterrupted,
    SessionLocked,
    StoreError,
)
from ..stores.base import LOCKED, LockRequest, Record, Slide
from .config import ConcurrencyMode, SessionConfig
from .cookies import cookie_values, delete_cookie_header, set_cookie_header
from .ids import fingerprint, id_pattern, new_session_id, new_token, storage_key
from .merge import Document, changed_keys, merge
from .session import DEFAULT_NAMESPACE, Reservation, Session
from .signing import Signer

__all__ = ["FORMAT_VERSION", "Op", "SaveOutcome", "SessionCore", "created_at", "security_log"]

#: Version of the stored payload envelope; a payload of another version is refused.
FORMAT_VERSION = 2

#: A store operation: the contract method to call and its positional arguments.
Op = tuple[str, tuple[Any, ...]]

#: Tampering and anomalies go here, one record per event, never with a raw id or a value.
security_log = logging.getLogger("coatcheck.security")
log = logging.getLogger("coatcheck")

# A fresh id colliding with a stored one is a 2**-128 event at worst; a store that keeps
# refusing creates is broken, and saying so beats looping.
_MODES = frozenset({"none", "merge", "lock"})
_CREATE_ATTEMPTS = 4
_MAX_TICKET_LENGTH = 4096
# Waiting on contention (a held lock, or a merge that keeps losing): poll quickly at first
# (locks are usually short), then back off.
_FIRST_LOCK_POLL = 0.002
_LAST_LOCK_POLL = 0.05


# Builds a named tuple without its Python-level __new__ (what _make() does, one call fewer).
_new_tuple = tuple.__new__


class _Corrupt(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def created_at(meta: dict[str, Any]) -> float:
    """The creation time kept in a decoded payload's metadata (whole milliseconds there)."""
    return float(meta["c"] / 1000)


def _returning(session: Session) -> Generator[Op, Any, Session]:
    """A flow that needs no store operation: it just returns ``session``."""
    yield from ()  # makes this a generator; yields nothing
    return session


class SaveOutcome(NamedTuple):
    """What a save means for the response.

    ``headers`` are the ``(name, value)`` pairs to add (Set-Cookie, Vary, Cache-Control);
    ``ticket`` is the new value the client must present from now on (None: unchanged);
    ``cleared`` says the client should forget its ticket. (A named tuple: it is made on every
    request, and a frozen dataclass costs several times more to build.)
    """

    headers: list[tuple[str, str]]
    ticket: str | None = None
    cleared: bool = False


class SessionCore:
    """The sans-I/O session rules behind :class:`~coatcheck.SessionManager` and its async twin."""

    def __init__(
        self,
        config: SessionConfig,
        clock: Callable[[], float] | None = None,
        store_name: str = "(unnamed store)",
        monotonic: Callable[[], float] = time.monotonic,
        slides_on_load: bool = False,
    ) -> None:
        self.config = config
        # With a store that slides on load (its slides_on_load), the idle timeout's touch rides
        # on the load's round trip instead of costing the save one of its own.
        # Not with a binding: a request refused for another address or User-Agent must not
        # keep the session alive either.
        bound = config.bind_remote_addr or config.bind_user_agent
        self._slide_idle = config.idle_timeout if slides_on_load and not bound else None
        self._monotonic = monotonic
        self.store_name = store_name
        self._clock = clock or time.time
        self._offset = 0.0
        keys = list(config.secret_keys)
        self._signer = (
            Signer(keys, purpose=f"cookie:{config.cookie.name}") if config.sign_cookie else None
        )
        # Log fingerprints are keyed so a log reader cannot confirm a guessed id; without a
        # configured secret the key lives only as long as the process.
        fp_seed = keys[0] if keys else os.urandom(32)
        fp_bytes = fp_seed.encode() if isinstance(fp_seed, str) else fp_seed
        self._fp_key = hmac.new(fp_bytes, b"coatcheck:log-fingerprint", hashlib.sha256).digest()
        self._reservations: dict[str, Reservation] = {}
        name = getattr(config.serializer, "format_name", type(config.serializer).__name__)
        self._prefix = f"cc{FORMAT_VERSION}:{name}:".encode()
        self._dumps = config.serializer.dumps
        self._loads = config.serializer.loads
        # The id allow-list (ids.is_valid_session_id) as the bare regex: the ticket is a str.
        self._id_fullmatch = id_pattern(config.id_bytes).fullmatch
        self._cookie_name = config.cookie.name
        # Read on every request; a frozen config lets them be looked up once.
        self._bound = config.bind_remote_addr or config.bind_user_agent
        self._resolution = config.access_resolution
        self._regenerate_always = config.regenerate_every_request
        self._max_payload = config.max_payload_bytes
        self._cookie = config.cookie
        self._prefix_length = len(self._prefix)
        # A timeout that is off never comes: infinity keeps deadline() branch-free.
        self._idle = math.inf if config.idle_timeout is None else config.idle_timeout
        self._absolute = math.inf if config.absolute_timeout is None else config.absolute_timeout

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        """The current time as sessions see it: the clock, corrected by :meth:`adjust_time`."""
        return self._clock() - self._offset

    def adjust_time(self, delta: float) -> None:
        """The wall clock was moved by ``delta`` seconds; keep session ages as they were.

        Aquarium's ``adjustTime``: after the system clock jumps forward a day, sessions must not
        all expire at once. Each process that serves sessions must call this.
        """
        if not math.isfinite(delta):
            raise ConfigurationError("adjust_time needs a finite number of seconds")
        self._offset += delta

    def deadline(self, created_at: float, accessed_at: float) -> float:
        """When a session created and last used at these times expires."""
        idle = accessed_at + self._idle
        hard = created_at + self._absolute
        return idle if idle < hard else hard

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

    # -- tickets (what the client presents) ------------------------------------------------

    def ticket_for(self, session_id: str) -> str:
        """The value to hand the client for ``session_id`` (signed when signing is on)."""
        return self._signer.sign(session_id) if self._signer else session_id

    def security_event(self, reason: str, ticket: str | None = None) -> None:
        """Log one tampering/anomaly event with a reason code and only a keyed fingerprint."""
        fp = fingerprint(ticket[:_MAX_TICKET_LENGTH], self._fp_key) if ticket else "-"
        security_log.warning(
            "session refused: %s (fingerprint %s)",
            reason,
            fp,
            extra={"reason": reason, "session_fingerprint": fp},
        )

    # -- payloads --------------------------------------------------------------------------

    def encode(self, session: Session) -> bytes:
        """The stored form of a session; raises SerializationError or PayloadTooLarge.

        One flat document: the metadata's keys (``c`` created, ``r`` address, ``u`` user, ...)
        beside ``""``, the default namespace, and ``n``, the other namespaces, each only when
        not empty. Flat because every nested dict costs the encoder and the decoder time on
        every request; user data cannot reach the top level, so it cannot pose as metadata.
        """
        data = session._data
        document = dict(session._meta)
        default = data[DEFAULT_NAMESPACE]
        if default:
            document[DEFAULT_NAMESPACE] = default
        if len(data) > 1:
            others = {ns: values for ns, values in data.items() if values and ns}
            if others:
                document["n"] = others
        try:
            body = self._dumps(document)
        except Exception as exc:
            raise self._name_culprit(session, exc) from exc
        payload = self._prefix + body
        limit = self._max_payload
        if limit is not None and len(payload) > limit:
            raise PayloadTooLarge(len(payload), limit)
        return payload

    def _name_culprit(self, session: Session, exc: Exception) -> SerializationError:
        # Find the first key whose value the serializer refuses, so the error can name it.
        for ns, values in session._data.items():
            for key, value in values.items():
                try:
                    self._dumps({key: value})
                except Exception:
                    label = key if ns == DEFAULT_NAMESPACE else f"{ns}/{key}"
                    return SerializationError(str(exc) or type(exc).__name__, key=label)
        return SerializationError(f"session metadata cannot be encoded: {exc}")

    def decode(self, payload: bytes) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """The data and metadata of a stored payload; raises _Corrupt on anything unexpected."""
        if not payload.startswith(self._prefix):
            raise _Corrupt("foreign-format" if payload.startswith(b"cc") else "corrupt-payload")
        try:
            document = self._loads(payload[self._prefix_length :])
        except Exception:
            raise _Corrupt("corrupt-payload") from None
        if type(document) is not dict:
            raise _Corrupt("corrupt-payload")
        # What encode() wrote: the namespaces come out, and what is left is the metadata.
        default = document.pop(DEFAULT_NAMESPACE, None)
        others = document.pop("n", None)
        if type(document.get("c")) is not int:
            raise _Corrupt("corrupt-payload")
        if default is None:
            default = {}
        elif type(default) is not dict:
            raise _Corrupt("corrupt-payload")
        if others is None:
            return {DEFAULT_NAMESPACE: default}, document
        if type(others) is not dict or DEFAULT_NAMESPACE in others:
            raise _Corrupt("corrupt-payload")
        for values in others.values():
            if type(values) is not dict:
                raise _Corrupt("corrupt-payload")
        return {DEFAULT_NAMESPACE: default, **others}, document

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
        created_ms = int(now * 1000)
        meta: dict[str, Any] = {"c": created_ms}
        if remote_addr is not None:
            meta["r"] = remote_addr
        if self.config.bind_user_agent:
            meta["a"] = self._agent_digest(user_agent)
        return Session(
            None,
            {DEFAULT_NAMESPACE: {}},
            meta,
            created_ms / 1000,
            now,
            self._reservations,
            mode or self.config.concurrency,
            read_only,
            had_ticket,
        )

    def _agent_digest(self, user_agent: str | None) -> str:
        # Only a digest is kept: the binding needs equality, not the string itself.
        return hashlib.sha256((user_agent or "").encode("utf-8", "replace")).hexdigest()[:16]

    def _mode(self, concurrency: ConcurrencyMode | None) -> ConcurrencyMode:
        """The request's concurrency mode: its override, checked, or the configured one (which
        SessionConfig checked already)."""
        if not concurrency:
            return self.config.concurrency
        if concurrency not in _MODES:
            raise ConfigurationError("concurrency must be 'none', 'merge' or 'lock'")
        return concurrency

    def cookie_open_flow(
        self,
        cookie_header: str | None,
        remote_addr: str | None = None,
        user_agent: str | None = None,
        concurrency: ConcurrencyMode | None = None,
        read_only: bool = False,
    ) -> Generator[Op, Any, Session]:
        """:meth:`open_flow` for the session cookie found in a raw ``Cookie`` header.

        Two different values under the session cookie's name (cookie tossing from a sibling
        domain) are ambiguous: the request gets a fresh session and a security log line.
        """
        values = cookie_values(cookie_header, self._cookie_name) if cookie_header else None
        if not values:
            return self.open_flow(None, remote_addr, user_agent, concurrency, read_only)
        if len(values) > 1 and len(set(values)) > 1:
            mode = self._mode(concurrency)
            self.security_event("ambiguous-cookie", values[0])
            session = self.fresh(self.now(), remote_addr, user_agent, True, mode, read_only)
            return _returning(session)
        return self.open_flow(values[0], remote_addr, user_agent, concurrency, read_only)

    def open_flow(
        self,
        ticket: str | None,
        remote_addr: str | None = None,
        user_agent: str | None = None,
        concurrency: ConcurrencyMode | None = None,
        read_only: bool = False,
    ) -> Generator[Op, Any, Session]:
        """Turn what the client presented into a session (Aquarium's strict ``open``).

        An unknown, expired, malformed or forged ticket yields a fresh session; no record is
        ever created for an id the client chose. ``concurrency`` overrides the configured mode
        for this request; ``read_only`` promises no writes, so no lock is taken and nothing is
        saved or touched.
        """
        mode = self._mode(concurrency)
        now = self._clock() - self._offset  # self.now(), inlined: this runs on every request
        if ticket is None or ticket == "":
            return self.fresh(now, remote_addr, user_agent, False, mode, read_only)
        if not isinstance(ticket, str):
            raise TypeError(f"a session ticket is a str or None, not {type(ticket).__name__}")
        session_id = ticket
        stale_signature = False
        if self._signer is not None:
            verified = self._signer.verify(ticket[:_MAX_TICKET_LENGTH])
            if verified is None or len(ticket) > _MAX_TICKET_LENGTH:
                self.security_event("bad-signature", ticket)
                return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
            session_id, newest = verified
            stale_signature = not newest
        if self._id_fullmatch(session_id) is None:
            self.security_event("malformed-id", ticket)
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        key = storage_key(session_id)
        lock_token: str | None = None
        slide = None
        if self._slide_idle is not None and not read_only:
            idle = self._slide_idle
            # Slide(...) without its Python-level __new__: this runs on every request.
            slide = _new_tuple(Slide, (now, now + idle, now - self._resolution, now - idle))
        if mode == "lock" and not read_only:
            lock_token = new_token()
            record = yield from self._load_locked(key, now, lock_token, slide)
        else:
            record = yield ("load", (key, now, None, slide))
        if record is None:
            self.security_event("unknown-id", ticket)
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        try:
            data, meta = self.decode(record.payload)
        except _Corrupt as corrupt:
            self.security_event(corrupt.reason, ticket)
            yield ("delete", (key,))
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        created_at = meta["c"] / 1000  # created_at(meta), inlined on the hot path
        expires = record.accessed_at + self._idle  # self.deadline(), inlined likewise
        hard = created_at + self._absolute
        if now >= (expires if expires < hard else hard):
            # lemon: an expired session found on access is destroyed at once.
            log.info("session expired; deleted on access")
            yield ("delete", (key,))
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        cfg = self.config
        if self._bound and (
            (cfg.bind_remote_addr and meta.get("r") != remote_addr)
            or (cfg.bind_user_agent and meta.get("a") != self._agent_digest(user_agent))
        ):
            # Refuse the request, keep the original: destroying it would let anyone who can
            # replay a cookie from elsewhere log its owner out.
            self.security_event("binding-mismatch", ticket)
            if lock_token is not None:
                yield ("unlock", (key, lock_token))
            return self.fresh(now, remote_addr, user_agent, True, mode, read_only)
        stored_accessed_at = record.accessed_at  # now when the load slid it: no touch
        if (
            slide is not None
            and stored_accessed_at == now
            and record.expires_at > self.deadline(created_at, now)
        ):
            # The slide ran past the absolute deadline; the save's touch (forced here) puts the
            # record's expiry back to the deadline.
            stored_accessed_at = -math.inf
        session = Session(
            session_id,
            data,
            meta,
            created_at,
            now,
            self._reservations,
            mode,
            read_only,
            True,
            key,
            record.version,
            stored_accessed_at,
            record.payload,
            lock_token,
            stale_signature,
        )
        if self._regenerate_always and not read_only:
            session.regenerate()
        return session

    def _load_locked(
        self, key: str, now: float, lock_token: str, slide: Slide | None
    ) -> Generator[Op, Any, Any]:
        """Load a record and take its lock, waiting (with back-off) while another holds it.

        ``slide`` stays the one made at the open's ``now`` across retries: it is the session's
        access time, while the lock's expiry follows the clock.
        """
        request = LockRequest(lock_token, self.config.lock_timeout)
        give_up = self._monotonic() + self.config.lock_wait
        delay = _FIRST_LOCK_POLL
        while True:
            record = yield ("load", (key, now, request, slide))
            if record is not LOCKED:
                return record
            if self._monotonic() >= give_up:
                raise SessionLocked(
                    f"another request held the session lock for over {self.config.lock_wait} s"
                )
            yield ("sleep", (delay,))
            delay = min(delay * 2, _LAST_LOCK_POLL)
            now = self.now()

    # -- saving ----------------------------------------------------------------------------

    def save_flow(self, session: Session) -> Generator[Op, Any, SaveOutcome]:
        """Write what the request changed, and say which headers the response needs.

        Whatever happens, a lock this request holds is released.
        """
        if session.lock_token is None:
            return self._save(session)  # nothing to release: skip the guard (hot path)
        return self._save_releasing(session)

    def _save_releasing(self, session: Session) -> Generator[Op, Any, SaveOutcome]:
        try:
            return (yield from self._save(session))
        except BaseException:
            if session.lock_token is not None and session.key is not None:
                yield ("unlock", (session.key, session.lock_token))
            raise
        finally:
            session.lock_token = None

    def abandon_flow(self, session: Session) -> Generator[Op, Any, None]:
        """Drop this request's changes (an error response) and release its lock, if any."""
        if session.lock_token is not None and session.key is not None:
            yield ("unlock", (session.key, session.lock_token))
        session.lock_token = None

    def _save(self, session: Session) -> Generator[Op, Any, SaveOutcome]:
        now = self._clock() - self._offset  # self.now(), inlined: this runs on every request
        cfg = self.config
        headers: list[tuple[str, str]] = []
        ticket: str | None = None
        cleared = False
        key = session.key
        unlock = session.lock_token

        # The session's own fields rather than its properties: one call fewer each.
        if session.read_only:
            pass
        elif session._destroyed:
            if key is not None:
                yield ("delete", (key,))
            if session.had_ticket:
                headers.append(("Set-Cookie", delete_cookie_header(cfg.cookie)))
                cleared = True
        elif key is None or session._regenerate:
            if key is not None or session.has_info():
                payload = self.encode(session)
                expires_at = self.deadline(session.created_at, now)
                session_id = yield from self._create(payload, now, expires_at)
                if key is not None:
                    yield ("delete", (key,))
                session._adopt(session_id, storage_key(session_id))
                ticket = self.ticket_for(session_id)
        elif session._changed or session._meta_changed or session._whole:
            expires_at = now + self._idle  # self.deadline(), inlined
            hard = session.created_at + self._absolute
            if hard < expires_at:
                expires_at = hard
            payload = self.encode(session)
            expected = None if session.concurrency == "none" else session.version
            version = yield ("update", (key, payload, now, expires_at, now, expected, unlock))
            if version is None:
                version = yield from self._resolve_conflict(session, key, now, expected)
            session.version = version
            if session.stale_ticket or self._cookie.max_age is not None:
                ticket = self.ticket_for(session.id or "")
        else:
            stored = session.stored_accessed_at
            if stored is not None and now - stored >= self._resolution:
                expires_at = self.deadline(session.created_at, now)
                touched = yield ("touch", (key, now, expires_at, now, unlock))
                if touched and cfg.cookie.max_age is not None:
                    ticket = self.ticket_for(session.id or "")
            elif unlock is not None:
                yield ("unlock", (key, unlock))
            if session.stale_ticket:
                ticket = self.ticket_for(session.id or "")
        session.lock_token = None

        if ticket is not None:
            headers.append(("Set-Cookie", set_cookie_header(cfg.cookie, ticket)))
        if headers:
            headers.append(("Cache-Control", cfg.cookie.cache_control))
        if headers or session.accessed:
            headers.append(("Vary", "Cookie"))
        probability = cfg.cleanup_probability
        # random() is fine here: this picks which request does housekeeping, nothing secret.
        if probability and (probability >= 1.0 or random.random() < probability):  # noqa: S311
            yield ("clear_expired", (now,))
        return _new_tuple(SaveOutcome, (headers, ticket, cleared))  # SaveOutcome(...), faster

    def _resolve_conflict(
        self, session: Session, key: str, now: float, expected: int | None
    ) -> Generator[Op, Any, int]:
        """The update found no record, or a newer version: merge and retry, or give up.

        No record means the session was destroyed or rotated meanwhile, and writing it back
        would resurrect it. A newer version (``merge``/``lock`` mode) is merged key by key and
        the write retried, with back-off once it keeps losing, for at most ``lock_wait``.
        """
        expires_at = self.deadline(session.created_at, now)
        give_up = None
        attempt = 0
        while True:
            record = None if expected is None else (yield ("load", (key, now, None)))
            if record is None:
                self.security_event("session-interrupted", session.id)
                raise SessionInterrupted(
                    "the session was destroyed or rotated by another request; changes dropped"
                )
            self._merge_newer(session, record)
            payload = self.encode(session)
            expected = record.version
            attempt += 1
            if attempt > 1:
                # Losing twice in a row means writers in lock-step: a random, growing pause
                # lets one of them through (exponential back-off with full jitter).
                if give_up is None:
                    give_up = self._monotonic() + self.config.lock_wait
                elif self._monotonic() >= give_up:
                    raise SessionConflict([])
                ceiling = min(_FIRST_LOCK_POLL * 2 ** (attempt - 2), _LAST_LOCK_POLL)
                yield ("sleep", (random.uniform(0, ceiling),))  # noqa: S311 - timing jitter
            op = ("update", (key, payload, now, expires_at, now, expected, session.lock_token))
            version: int | None = yield op
            if version is not None:
                return version

    def _merge_newer(self, session: Session, record: Record) -> None:
        try:
            theirs = Document(*self.decode(record.payload))
            base = Document(*self.decode(session._base_payload or b""))
        except _Corrupt:
            raise SessionInterrupted(
                "the stored session changed into something unreadable"
            ) from None
        ours = Document(session._data, session._meta)
        keys = changed_keys(ours, base, session._changed, session._whole)
        merged = merge(ours, base, theirs, keys, session._meta_changed)
        if merged.conflicts and self.config.merge_conflict == "raise":
            raise SessionConflict(merged.conflicts)
        session._rebase(merged.document.data, merged.document.meta, record.payload, keys)

    def _create(self, payload: bytes, now: float, expires_at: float) -> Generator[Op, Any, str]:
        for _ in range(_CREATE_ATTEMPTS):
            session_id = new_session_id(self.config.id_bytes)
            created = yield ("create", (storage_key(session_id), payload, now, expires_at, now))
            if created:
                return session_id
        raise StoreError(self.store_name, f"{_CREATE_ATTEMPTS} fresh ids in a row already existed")

    def cleanup_flow(self) -> Generator[Op, Any, int]:
        """Purge every expired session; returns how many the store removed."""
        removed: int = yield ("clear_expired", (self.now(),))
        return removed
