"""Every store the contract suite runs against, built fresh and isolated for each test.

To add a store: put its name in ``BACKENDS`` and a branch in ``async_store_for`` that builds it
with a table, key prefix or directory of its own and removes that again afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from coatcheck.stores import AsyncStore

__all__ = ["BACKENDS", "NATIVE_TTL", "async_store_for"]

BACKENDS = ["memory", "file", "sqlite"]

# Stores whose server drops expired records by itself: clear_expired() returns 0 there.
NATIVE_TTL: set[str] = set()


@asynccontextmanager
async def async_store_for(name: str, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    """Build the named store, isolated from every other test, and dispose of it afterwards."""
    unique = uuid.uuid4().hex[:12]
    store: AsyncStore
    # Imports stay inside the branches: a store's driver loads only when its tests run.
    if name == "memory":
        from coatcheck.stores._async.memory import AsyncMemoryStore

        store = AsyncMemoryStore()
    elif name == "file":
        from coatcheck.stores._async.files import AsyncFileStore

        store = AsyncFileStore(tmp_path / f"sessions-{unique}")
    elif name == "sqlite":
        from coatcheck.stores._async.sqlite import AsyncSQLiteStore

        sqlite_store = AsyncSQLiteStore(tmp_path / f"sessions-{unique}.db")
        await sqlite_store.create_tables()
        store = sqlite_store
    else:
        raise ValueError(f"unknown backend {name}")
    try:
        yield store
    finally:
        await store.aclose()
