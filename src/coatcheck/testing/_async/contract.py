"""The asyncio store contract suite: every rule of :mod:`coatcheck.stores.base`, as pytest tests.

Subclass :class:`AsyncStoreContract` in a test module and give it a ``store`` fixture that
yields a fresh, empty store of yours (and disposes of it afterwards); pytest then runs every
contract test against it. See :mod:`coatcheck.testing.contract`.
"""

from __future__ import annotations

import pytest

from .line_contract import AsyncLineContract
from .lock_contract import AsyncLockContract
from .record_contract import AsyncRecordContract

__all__ = ["AsyncStoreContract"]


class AsyncStoreContract(AsyncRecordContract, AsyncLockContract, AsyncLineContract):
    """Every contract test, for an asyncio store.

    Needs a ``store`` fixture (function scope) yielding an empty store that no other test
    shares. Override :meth:`expires_natively` for a backend that drops expired records by
    itself (its ``clear_expired`` returns 0).
    """

    @pytest.fixture
    def expires_natively(self) -> bool:
        """Whether the backend expires records itself (Redis, memcached): default False."""
        return False
