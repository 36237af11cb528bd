"""The memcached version check: the oldest server whose meta set the store can use is 1.6.10.

The reading and comparing of ``version`` replies first (no server), then the stores against
the shared server (which passes) and against a real memcached 1.6.9 (which is refused with
both versions named, before the store sends it a meta set it would reject).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from coatcheck.errors import StoreError, StoreIncompatible
from coatcheck.stores import Create, Load, Record, Update
from coatcheck.stores._async.memcached import AsyncMemcachedStore
from coatcheck.stores._memcache import MINIMUM_VERSION, check_version, parse_version
from coatcheck.stores._sync.memcached import MemcachedStore

from .._own_server import OwnServer, _existing_user
from .._support import HOUR, NOW, key
from ._old_release import OLD_VERSION, old_memcached

SERVER = "memcached://127.0.0.1:1"


@pytest.mark.parametrize(
    ("reply", "version"),
    [
        (b"1.6.18", (1, 6, 18)),  # what pymemcache and aiomcache hand back
        (b"VERSION 1.6.9", (1, 6, 9)),  # the line on the wire
        ("1.6.21-rc1", (1, 6, 21)),
        (b" 1.10.0\r\n", (1, 10, 0)),
        (b"mcrouter 41.0", None),
        (b"", None),
        (b"1.6", None),
    ],
)
def test_version_replies_are_read(reply: bytes | str, version: tuple[int, int, int]) -> None:
    assert parse_version(reply) == version


@pytest.mark.parametrize("reply", [b"1.6.10", b"1.6.18", b"1.7.0", b"2.0.0", b"1.10.1"])
def test_new_enough_servers_pass(reply: bytes) -> None:
    check_version(SERVER, reply)


@pytest.mark.parametrize("reply", [b"1.6.9", b"1.6.0", b"1.5.22", b"1.4.39", b"0.9.99"])
def test_older_servers_are_refused_naming_both_versions(reply: bytes) -> None:
    with pytest.raises(StoreIncompatible) as caught:
        check_version(SERVER, reply)
    error = caught.value
    assert isinstance(error, StoreError)
    assert (error.store, error.found, error.required) == (
        SERVER,
        f"memcached {reply.decode()}",
        "memcached 1.6.10",
    )
    assert str(error).startswith(f"session store {SERVER} cannot be used: the server runs ")
    assert f"memcached {reply.decode()}; coatcheck needs memcached 1.6.10 or later" in str(error)


def test_a_reply_that_names_no_version_is_not_judged() -> None:
    # A proxy in front of memcached, say: the meta set's own answer will tell.
    check_version(SERVER, b"mcrouter 41.0")


def test_the_minimum_is_the_one_the_readme_states() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert "memcached 1.6.10 or later" in readme
    assert MINIMUM_VERSION == (1, 6, 10)


# -- real servers ------------------------------------------------------------------------------


@pytest.mark.server("memcached")
def test_the_shared_server_passes(server: tuple[str, int]) -> None:
    client = Client(server)
    reply = client.version()
    client.close()
    found = parse_version(reply)
    assert found is not None and found >= MINIMUM_VERSION, reply
    check_version(f"memcached://{server[0]}:{server[1]}", reply)
    prefix = f"cc-version-{os.getpid()}:"
    store = MemcachedStore(url=f"memcached://{server[0]}:{server[1]}", prefix=prefix)
    assert store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    record = store.load(Load(key(1), NOW))
    assert isinstance(record, Record)
    update = Update(key(1), b"y", NOW, NOW + HOUR, NOW, expected_version=1, handle=record.handle)
    assert store.update(update) == 2  # the meta set, answered with its new token
    store.close()


@pytest.fixture
def old_server() -> Iterator[OwnServer]:
    command = [str(old_memcached()), "-l", "127.0.0.1", "-p", "{port}", "-U", "0"]
    if os.geteuid() == 0:  # memcached refuses to run as root without a user to become
        command += ["-u", _existing_user("memcache", "nobody")]
    server = OwnServer(command)
    server.start()
    yield server
    server.stop()


def _raw(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(4096)


@pytest.mark.server("memcached")
def test_a_1_6_9_server_is_refused_before_any_meta_set(old_server: OwnServer) -> None:
    port = old_server.port
    assert _raw(port, b"version\r\n") == f"VERSION {OLD_VERSION}\r\n".encode()
    # What the store would meet without the check: 1.6.9 cannot parse the meta set.
    assert _raw(port, b"ms k 1 C1 T60 c\r\nx\r\n").startswith(b"CLIENT_ERROR invalid flag")

    url = f"memcached://127.0.0.1:{port}"
    store = MemcachedStore(url=url)
    for attempt in range(2):  # refused again: a failed check is not remembered as a pass
        with pytest.raises(StoreIncompatible) as caught:
            store.load(Load(key(attempt), NOW))
        assert (caught.value.found, caught.value.required) == (
            f"memcached {OLD_VERSION}",
            "memcached 1.6.10",
        )
        assert caught.value.store == url
    store.close()
    # A client passed in is checked too, before its first command.
    client = Client(("127.0.0.1", port))
    with pytest.raises(StoreIncompatible):
        MemcachedStore(client).create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    client.close()


@pytest.mark.server("memcached")
@pytest.mark.asyncio
async def test_the_async_store_refuses_a_1_6_9_server(old_server: OwnServer) -> None:
    store = AsyncMemcachedStore(url=f"memcached://127.0.0.1:{old_server.port}")
    with pytest.raises(StoreIncompatible) as caught:
        await store.create(Create(key(1), b"x", NOW, NOW + HOUR, NOW))
    assert caught.value.found == f"memcached {OLD_VERSION}"
    await store.aclose()
