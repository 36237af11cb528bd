"""Session settings: one frozen dataclass, checked when it is built."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeGuard, get_args

from ..errors import ConfigurationError
from .cookies import CookieConfig
from .serializers import JSONSerializer, Serializer

__all__ = [
    "MODES",
    "POLICIES",
    "ConcurrencyMode",
    "ConflictPolicy",
    "SessionConfig",
    "check_mode",
    "is_mode",
]

#: What happens when two requests on one session run at once (see SessionConfig.concurrency).
ConcurrencyMode = Literal["none", "merge", "lock"]
#: Every concurrency mode: the names above, spelled once.
MODES: frozenset[str] = frozenset(get_args(ConcurrencyMode))
#: What a merge does with a key both requests changed: ours wins, or SessionConflict.
ConflictPolicy = Literal["last-writer", "raise"]
POLICIES: frozenset[str] = frozenset(get_args(ConflictPolicy))


def is_mode(value: object) -> TypeGuard[ConcurrencyMode]:
    """Whether ``value`` names a concurrency mode."""
    return value in MODES


def check_mode(value: object, setting: str = "concurrency") -> ConcurrencyMode:
    """``value`` as a concurrency mode; ConfigurationError naming ``setting`` when it is none."""
    if not is_mode(value):
        raise ConfigurationError(f"{setting} must be one of {', '.join(sorted(MODES))}")
    return value


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything a :class:`~coatcheck.SessionManager` needs to know, besides its store.

    Times are in seconds. ``None`` turns a timeout off; at least one must stay on, since a
    server-side session with no end is a standing credential.
    """

    #: Sliding timeout: the session dies this long after its last use.
    idle_timeout: float | None = 30 * 60
    #: Hard cap from creation, however active the session is.
    absolute_timeout: float | None = 12 * 60 * 60
    #: A read-only request refreshes the stored access time only when it is older than this
    #: (Quixote's access-time resolution), so most reads write nothing.
    access_resolution: float = 60.0
    #: Random bytes in a session id (256 bits by default; never fewer than 128).
    id_bytes: int = 32
    #: Secret keys, newest first. With ``sign_cookie`` the cookie value carries an HMAC and a
    #: forged id is refused without a store lookup. They also key the log fingerprints.
    secret_keys: Sequence[str | bytes] = ()
    sign_cookie: bool = False
    cookie: CookieConfig = field(default_factory=CookieConfig)
    serializer: Serializer = field(default_factory=JSONSerializer)
    #: Largest encoded session accepted at save; ``PayloadTooLarge`` above it.
    max_payload_bytes: int | None = 256 * 1024
    #: Refuse the session when the client's address or User-Agent differs from the one that
    #: created it (the request gets a fresh session; the original is left alone).
    bind_remote_addr: bool = False
    bind_user_agent: bool = False
    #: Issue a new id on every request that uses a stored session (web.py's ``regenerate_id``).
    regenerate_every_request: bool = False
    #: Chance per saved request of also purging expired sessions (lemon's ``cleanup``):
    #: 0 never, 1 always, 0.01 one request in a hundred.
    cleanup_probability: float = 0.0
    #: What happens when two requests on one session run at once (overridable per request):
    #: ``merge`` replays this request's changes key by key on top of a concurrent save;
    #: ``lock`` holds a per-session lock from load to save; ``none`` lets the last writer win.
    #: In every mode a destroyed or rotated session stays dead.
    concurrency: ConcurrencyMode = "merge"
    #: In ``merge`` mode, when both requests changed the same key: ours wins, or raise
    #: ``SessionConflict``.
    merge_conflict: ConflictPolicy = "last-writer"
    #: In ``lock`` mode: how long a lock lives if its holder dies, and how long a request waits
    #: for a held lock before ``SessionLocked``. ``lock_wait`` also bounds how long a ``merge``
    #: save keeps retrying against concurrent writers before ``SessionConflict``.
    lock_timeout: float = 30.0
    lock_wait: float = 10.0
    #: Destroy a stored session that a request left with nothing in it (no key in any
    #: namespace, no user, no flash message or form token), as if it called ``destroy()``:
    #: the record is deleted and the client told to drop its cookie. Off by default, where only
    #: ``destroy()`` deletes; the Flask, Quart, Starlette and FastAPI integrations turn it on,
    #: because their users log out with ``session.clear()``.
    destroy_when_emptied: bool = False

    def __post_init__(self) -> None:
        if self.idle_timeout is None and self.absolute_timeout is None:
            raise ConfigurationError("idle_timeout and absolute_timeout cannot both be off")
        for name in ("idle_timeout", "absolute_timeout"):
            value = getattr(self, name)
            # 0 is a session that has expired by its next request (Starlette's max_age=0).
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, or None")
        if not (0 <= self.access_resolution < math.inf):
            raise ConfigurationError("access_resolution must be >= 0")
        if self.id_bytes < 16:
            raise ConfigurationError("id_bytes must be at least 16 (128 bits)")
        if not (0.0 <= self.cleanup_probability <= 1.0):
            raise ConfigurationError("cleanup_probability must be between 0 and 1")
        if self.sign_cookie and not self.secret_keys:
            raise ConfigurationError("sign_cookie needs at least one secret key")
        if isinstance(self.secret_keys, (str, bytes)):
            raise ConfigurationError("secret_keys is a sequence of keys, newest first")
        if self.max_payload_bytes is not None and self.max_payload_bytes <= 0:
            raise ConfigurationError("max_payload_bytes must be positive or None")
        check_mode(self.concurrency)
        if self.merge_conflict not in POLICIES:
            raise ConfigurationError(f"merge_conflict must be one of {', '.join(sorted(POLICIES))}")
        if not (0 < self.lock_timeout < math.inf) or not (0 <= self.lock_wait < math.inf):
            raise ConfigurationError("lock_timeout must be positive and lock_wait >= 0")
        if not callable(getattr(self.serializer, "dumps", None)) or not callable(
            getattr(self.serializer, "loads", None)
        ):
            raise ConfigurationError("serializer needs dumps(obj) -> bytes and loads(bytes)")
