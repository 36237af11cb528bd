"""The store contract suite, for any store: prove a store of your own with coatcheck's own tests.

Every store in :mod:`coatcheck.stores` passes this suite; a third-party store that passes it
too meets the contract of :mod:`coatcheck.stores.base` (exact compare-and-set, no resurrection,
locks, slides, cleanup, opaque handles, hostile keys). It needs pytest, and pytest-asyncio
for the asyncio flavour (``pip install 'coatcheck[testing]'``)::

    import pytest
    from coatcheck.testing.contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            store = MyStore(tmp_path / "sessions")  # empty, and this test's alone
            yield store
            store.close()

        @pytest.fixture
        def expires_natively(self):
            return False  # True when the backend drops expired records by itself

:class:`AsyncStoreContract` is the same for an asyncio store, with a ``pytest_asyncio.fixture``
yielding it. Each test creates the records it needs, at times near the real clock.
"""

from __future__ import annotations

from ._async.contract import AsyncStoreContract
from ._sync.contract import StoreContract

__all__ = ["AsyncStoreContract", "StoreContract"]
