"""Session stores, imported lazily so a driver loads only when its store is used.

``store_from_url("sqlite:///sessions.db")`` and ``async_store_from_url(...)`` build a store from a
URL; each store class also takes its options (or a ready client) as constructor arguments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import (
    LOCKED,
    AsyncStore,
    ClearExpired,
    Create,
    Damaged,
    Delete,
    Load,
    Locked,
    LockRequest,
    Record,
    Slide,
    Store,
    StoreStats,
    Touch,
    Unlock,
    Update,
)

if TYPE_CHECKING:
    from ._async.files import AsyncFileStore
    from ._async.memcached import AsyncMemcachedStore
    from ._async.memory import AsyncMemoryStore
    from ._async.mysql import AsyncMySQLStore
    from ._async.postgresql import AsyncPostgreSQLStore
    from ._async.redis import AsyncRedisStore
    from ._async.sqlite import AsyncSQLiteStore
    from ._sync.files import FileStore
    from ._sync.memcached import MemcachedStore
    from ._sync.memory import MemoryStore
    from ._sync.mysql import MySQLStore
    from ._sync.postgresql import PostgreSQLStore
    from ._sync.redis import RedisStore
    from ._sync.sqlite import SQLiteStore

    def _conformance(
        stores: tuple[
            AsyncFileStore,
            AsyncMemcachedStore,
            AsyncMemoryStore,
            AsyncMySQLStore,
            AsyncPostgreSQLStore,
            AsyncRedisStore,
            AsyncSQLiteStore,
        ],
        sync_stores: tuple[
            FileStore,
            MemcachedStore,
            MemoryStore,
            MySQLStore,
            PostgreSQLStore,
            RedisStore,
            SQLiteStore,
        ],
    ) -> tuple[tuple[AsyncStore, ...], tuple[Store, ...]]:
        """Never called: mypy checks here that every store meets its contract protocol."""
        return stores, sync_stores


__all__ = [
    "LOCKED",
    "AsyncFileStore",
    "AsyncMemcachedStore",
    "AsyncMemoryStore",
    "AsyncMySQLStore",
    "AsyncPostgreSQLStore",
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "AsyncStore",
    "ClearExpired",
    "Create",
    "Damaged",
    "Delete",
    "FileStore",
    "Load",
    "LockRequest",
    "Locked",
    "MemcachedStore",
    "MemoryStore",
    "MySQLStore",
    "PostgreSQLStore",
    "Record",
    "RedisStore",
    "SQLiteStore",
    "Slide",
    "Store",
    "StoreStats",
    "Touch",
    "Unlock",
    "Update",
    "async_store_from_url",
    "store_from_url",
]

# class name -> module under _async/_sync; the sync class drops the "Async" prefix.
_MODULES: dict[str, str] = {
    "MemoryStore": "memory",
    "FileStore": "files",
    "SQLiteStore": "sqlite",
    "PostgreSQLStore": "postgresql",
    "MySQLStore": "mysql",
    "RedisStore": "redis",
    "MemcachedStore": "memcached",
}

# URL scheme -> class name
_SCHEMES: dict[str, str] = {
    "memory": "MemoryStore",
    "file": "FileStore",
    "sqlite": "SQLiteStore",
    "postgresql": "PostgreSQLStore",
    "postgres": "PostgreSQLStore",
    "mysql": "MySQLStore",
    "mariadb": "MySQLStore",
    "redis": "RedisStore",
    "rediss": "RedisStore",
    "unix": "RedisStore",
    "memcached": "MemcachedStore",
}


def _load_class(name: str) -> Any:
    is_async = name.startswith("Async")
    base = name[5:] if is_async else name
    module = _MODULES.get(base)
    if module is None:
        raise AttributeError(f"module 'coatcheck.stores' has no attribute {name!r}")
    flavour = "_async" if is_async else "_sync"
    return getattr(importlib.import_module(f"{__name__}.{flavour}.{module}"), name)


def __getattr__(name: str) -> Any:
    return _load_class(name)


def _class_for_url(url: str, is_async: bool) -> Any:
    scheme = urlsplit(url).scheme.lower()
    name = _SCHEMES.get(scheme)
    if name is None:
        known = ", ".join(sorted(_SCHEMES))
        raise ConfigurationError(f"unknown store URL scheme {scheme!r}; known: {known}")
    return _load_class(("Async" if is_async else "") + name)


def store_from_url(url: str) -> Store:
    """Build a synchronous store from a URL such as ``sqlite:///sessions.db``."""
    store: Store = _class_for_url(url, False).from_url(url)
    return store


def async_store_from_url(url: str) -> AsyncStore:
    """Build an asyncio store from a URL such as ``redis://127.0.0.1:6379/0``."""
    store: AsyncStore = _class_for_url(url, True).from_url(url)
    return store
