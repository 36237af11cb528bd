"""Fixtures for the tests of every store: the server a test is marked for, a table of its own,
a relay that can cut the connection to the server, a port that never answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.servers import require_server

from ._frozen import TIMES
from ._proxy import TCPProxy
from ._support import unique


@pytest.fixture
def server(request: pytest.FixtureRequest) -> tuple[str, int]:
    """The address of the shared server named by the test's ``server`` mark (its module's
    ``pytestmark``), so the fixture can never ask for another server than the mark says."""
    names = {mark.args[0] for mark in request.node.iter_markers("server") if mark.args}
    if len(names) != 1:
        pytest.fail(f"the server fixture needs exactly one @pytest.mark.server(name), not {names}")
    return require_server(names.pop())


@pytest.fixture
def table() -> str:
    """A SQL table name no other test uses (the SQL stores' ``raw`` fixtures drop it after)."""
    return unique("cc_test_")


@pytest.fixture
def proxy(server: tuple[str, int]) -> Iterator[TCPProxy]:
    """A relay to the test's server: stopping it is an outage only this test sees."""
    with TCPProxy(server) as relay:
        yield relay


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The time each frozen store took to fail (tests/stores/_frozen.py), when any was run."""
    if TIMES:
        terminalreporter.section("time to fail on a frozen server")
        for name, seconds in sorted(TIMES.items()):
            terminalreporter.write_line(f"{name:<45} {seconds:6.3f} s")
