"""RedisStore's clients: one passed in stays open, one it built closes with it; URL options."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import pytest
import redis
import redis.asyncio

from coatcheck.errors import ConfigurationError
from coatcheck.stores import Create, Load
from coatcheck.stores._async.redis import AsyncRedisStore
from coatcheck.stores._sync.redis import RedisStore

from .._support import HOUR, NOW, key

pytestmark = pytest.mark.server("redis")


def connected(raw: redis.Redis, name: str, expected: bool) -> bool:
    """Whether a connection called ``name`` is (still) there; the server may take a moment to
    notice a close, so wait up to two seconds for the expected answer."""
    deadline = time.monotonic() + 2.0
    while True:
        found = any(c["name"] == name for c in raw.client_list())
        if found == expected or time.monotonic() > deadline:
            return found


def test_a_client_passed_in_stays_open(
    server: tuple[str, int], new_prefix: Callable[[], str]
) -> None:
    client = redis.Redis(host=server[0], port=server[1])
    before = client.client_id()
    store = RedisStore(client, prefix=new_prefix())
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    store.close()
    # Same server-side connection id: the pool was not disconnected.
    assert client.client_id() == before
    client.close()


def test_a_store_closes_the_client_it_built(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    name = f"cc-test-{uuid.uuid4().hex[:8]}"
    store = RedisStore.from_url(f"{url}?client_name={name}&prefix={new_prefix()}")
    assert store.load(Load(key(1), NOW)) is None
    assert connected(raw, name, True)
    store.close()
    assert not connected(raw, name, False)


@pytest.mark.asyncio
async def test_async_client_passed_in_stays_open(
    server: tuple[str, int], new_prefix: Callable[[], str]
) -> None:
    client = redis.asyncio.Redis(host=server[0], port=server[1])
    before = await client.client_id()
    store = AsyncRedisStore(client, prefix=new_prefix())
    assert await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    await store.aclose()
    assert await client.client_id() == before
    await client.aclose()


@pytest.mark.asyncio
async def test_async_store_closes_the_client_it_built(
    url: str, raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    name = f"cc-test-{uuid.uuid4().hex[:8]}"
    store = AsyncRedisStore.from_url(f"{url}?client_name={name}&prefix={new_prefix()}")
    assert await store.load(Load(key(1), NOW)) is None
    assert connected(raw, name, True)
    await store.aclose()
    assert not connected(raw, name, False)


def test_from_url_reads_its_options_and_never_names_the_password(
    server: tuple[str, int], raw: redis.Redis, new_prefix: Callable[[], str]
) -> None:
    prefix = new_prefix()
    store = RedisStore.from_url(
        f"redis://{server[0]}:{server[1]}/0?prefix={prefix}&socket_timeout=2"
    )
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert raw.exists(f"{prefix}{{{key(1)}}}") == 1
    store.close()
    secret = RedisStore.from_url("rediss://user:hunter2@cache.example:6380/3?prefix=app1:")
    assert secret.name == "rediss://cache.example:6380/3 prefix='app1:'"
    sock = RedisStore.from_url("unix:///nonexistent/redis.sock?db=2")
    assert sock.name == "unix:///nonexistent/redis.sock?db=2 prefix='coatcheck:'"
    with pytest.raises(sock.unavailable_errors):
        sock.load(Load(key(1), NOW))
    with pytest.raises(ConfigurationError):
        RedisStore.from_url("redis://localhost?socket_timeout=soon")


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({"socket_timeout": None, "socket_connect_timeout": None}, True),
        ({"socket_timeout": 2.0, "socket_connect_timeout": None}, True),  # connecting unbounded
        ({}, False),  # redis-py's own defaults bound both
        ({"socket_timeout": 2.0, "socket_connect_timeout": 2.0}, False),
    ],
)
def test_a_client_without_deadlines_is_named_in_a_warning(
    server: tuple[str, int],
    new_prefix: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
    options: dict[str, float | None],
    warned: bool,
) -> None:
    client = redis.Redis(host=server[0], port=server[1], **options)
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        RedisStore(client, prefix=new_prefix()).close()
        AsyncRedisStore(redis.asyncio.Redis(host=server[0], port=server[1], **options))
    lines = [r for r in caplog.records if "no socket_timeout" in r.getMessage()]
    assert len(lines) == (2 if warned else 0)
    client.close()
