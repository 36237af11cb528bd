"""Fixtures of the MemcachedStore tests: a plain client and the URL of the shared server, a
key prefix of the test's own, a relay that counts round trips."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymemcache.client.base import Client

from .._support import key, unique
from ._probes import CountingRelay


@pytest.fixture
def raw(server: tuple[str, int]) -> Iterator[Client]:
    client = Client(server, default_noreply=False)
    yield client
    client.close()


@pytest.fixture
def url(server: tuple[str, int]) -> str:
    return f"memcached://{server[0]}:{server[1]}"


@pytest.fixture
def prefix(raw: Client) -> Iterator[str]:
    """A unique prefix; the keys these tests write under it are deleted afterwards."""
    value = unique("cc-test-") + ":"
    yield value
    for n in [*range(4), "counter"]:
        raw.delete(f"{value}{key(n)}")
        raw.delete(f"{value}{key(n)}:lock")


@pytest.fixture
def relay(server: tuple[str, int]) -> Iterator[CountingRelay]:
    counting = CountingRelay(server)
    yield counting
    counting.close()
