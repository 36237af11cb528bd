"""What every test shares: the ``server`` marker's enforcement and the frozen clock.

A test that talks to a server carries ``@pytest.mark.server(name)`` (directly, through its
module's ``pytestmark``, or through a ``pytest.param`` of ``tests.support`` backends), so
``pytest -m "not server"`` runs everything else on a machine with no server at all. The mark
is enforced: :func:`tests.support.servers.require_server` fails a test that asks for a server
it was not marked for.
"""

from __future__ import annotations

import pytest

from coatcheck.testing import FrozenClock
from tests.support import servers


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture of the test runs, module-scoped ones included.
    servers.declared.clear()
    servers.declared.update(mark.args[0] for mark in item.iter_markers("server") if mark.args)


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that stands still at a whole second near now, until the test moves it."""
    return FrozenClock()
