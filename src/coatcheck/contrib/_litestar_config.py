"""The settings of :class:`~coatcheck.contrib.litestar.CoatcheckSessionConfig`: Litestar's
``ServerSideSessionConfig`` fields with their meaning and defaults, coatcheck's after them, and
the manager they make.

A dataclass that is not frozen, as Litestar's configs are (their users, and Litestar's own
tests, set a field after construction). The settings are checked when the config is built and
read again when the first request builds the manager: a field changed after that first request
changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from litestar.enums import ScopeType
from litestar.exceptions import ImproperlyConfiguredException
from litestar.types import Scopes

from .._async.manager import AsyncSessionManager
from .._sansio.config import ConcurrencyMode, ConflictPolicy, SessionConfig
from .._sansio.cookies import MAX_COOKIE_AGE, CookieConfig
from .._sansio.serializers import JSONSerializer, Serializer
from ..stores.base import AsyncStore

__all__ = ["DEFAULT_STORE", "FROM_MAX_AGE", "Settings"]

#: The store used when none is given: an SQLite file in the working directory.
DEFAULT_STORE = "sqlite:///coatcheck-sessions.db"
_TWO_WEEKS = 14 * 24 * 3600


class _Default(enum.Enum):
    FROM_MAX_AGE = "from max_age"


#: ``idle_timeout``'s default: ``max_age``, the store expiry Litestar gives a session.
FROM_MAX_AGE = _Default.FROM_MAX_AGE


@dataclass
class Settings:
    """The fields; see :class:`~coatcheck.contrib.litestar.CoatcheckSessionConfig`."""

    # -- Litestar's ServerSideSessionConfig, same names, meaning and defaults ----------------
    key: str = "session"
    max_age: int = _TWO_WEEKS
    scopes: Scopes = field(default_factory=lambda: {ScopeType.HTTP, ScopeType.WEBSOCKET})
    path: str = "/"
    domain: str | None = None
    secure: bool = False
    httponly: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    exclude: str | list[str] | None = None
    exclude_opt_key: str = "skip_session"
    session_id_bytes: int = 32
    renew_on_access: bool = False
    # -- coatcheck's ------------------------------------------------------------------------
    store: AsyncStore | str | None = None
    secret: str | bytes | Sequence[str | bytes] | None = None
    concurrency: ConcurrencyMode = "merge"
    mode_opt_key: str = "session_mode"
    idle_timeout: float | Literal[_Default.FROM_MAX_AGE] | None = FROM_MAX_AGE
    absolute_timeout: float | None = None
    partitioned: bool = False
    cache_control: str = "no-store"
    destroy_when_emptied: bool = True
    create_tables: bool | None = None
    clock: Callable[[], float] | None = None
    serializer: Serializer | None = None
    merge_conflict: ConflictPolicy = "last-writer"
    lock_timeout: float = 30.0
    lock_wait: float = 10.0
    access_resolution: float = 60.0
    max_payload_bytes: int | None = 256 * 1024
    bind_remote_addr: bool = False
    bind_user_agent: bool = False
    regenerate_every_request: bool = False
    cleanup_probability: float = 0.0
    # The manager, built by the first request (an async store is reached from the event loop).
    _manager: AsyncSessionManager | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _tables_pending: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Litestar's own checks, with Litestar's exception (its users catch that one).
        if len(self.key) < 1 or len(self.key) > 256:
            raise ImproperlyConfiguredException("key must be a string with a length between 1-256")
        if self.max_age < 1:
            raise ImproperlyConfiguredException("max_age must be greater than 0")
        # Everything else fails here, at start-up, rather than on the first request.
        self.session_config()

    def session_config(self) -> SessionConfig:
        """The :class:`~coatcheck.SessionConfig` these fields describe."""
        secret = self.secret
        keys: Sequence[str | bytes] = (
            () if secret is None else [secret] if isinstance(secret, (str, bytes)) else secret
        )
        idle = self.max_age if self.idle_timeout is FROM_MAX_AGE else self.idle_timeout
        return SessionConfig(
            idle_timeout=idle,
            absolute_timeout=self.absolute_timeout,
            secret_keys=list(keys),
            sign_cookie=bool(keys),
            id_bytes=self.session_id_bytes,
            concurrency=self.concurrency,
            cookie=CookieConfig(
                name=self.key,
                path=self.path,
                domain=self.domain,
                secure=self.secure,
                httponly=self.httponly,
                samesite=self.samesite,
                partitioned=self.partitioned,
                # Browsers keep a cookie 400 days at most; the server-side timeout still holds.
                max_age=min(int(self.max_age), MAX_COOKIE_AGE),
                cache_control=self.cache_control,
            ),
            serializer=JSONSerializer() if self.serializer is None else self.serializer,
            destroy_when_emptied=self.destroy_when_emptied,
            merge_conflict=self.merge_conflict,
            lock_timeout=self.lock_timeout,
            lock_wait=self.lock_wait,
            access_resolution=self.access_resolution,
            max_payload_bytes=self.max_payload_bytes,
            bind_remote_addr=self.bind_remote_addr,
            bind_user_agent=self.bind_user_agent,
            regenerate_every_request=self.regenerate_every_request,
            cleanup_probability=self.cleanup_probability,
        )

    @property
    def manager(self) -> AsyncSessionManager:
        """The session manager, built from the fields on first use and kept."""
        manager = self._manager
        if manager is None:
            store = self.store
            owned = store is None or isinstance(store, str)
            manager = AsyncSessionManager(
                DEFAULT_STORE if store is None else store, self.session_config(), clock=self.clock
            )
            self._tables_pending = owned if self.create_tables is None else self.create_tables
            self._manager = manager
        return manager

    async def ready_manager(self) -> AsyncSessionManager:
        """:attr:`manager`, its store's tables created on first use when asked to."""
        manager = self.manager
        if self._tables_pending:
            create: Callable[[], Any] | None = getattr(manager.store, "create_tables", None)
            if create is not None:
                # A StoreError propagates: this request is answered 503, the next one tries
                # again.
                await create()
            self._tables_pending = False
        return manager

    async def aclose(self) -> None:
        """Close the store the config built from a URL (for ``on_shutdown``); a store object
        passed in is the caller's to close. The next request builds a new manager."""
        manager, self._manager = self._manager, None
        if manager is not None and (self.store is None or isinstance(self.store, str)):
            await manager.aclose()
