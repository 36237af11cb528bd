"""The async store's own meta get (``mg <key> v c``) reads every reply a server may give.

A scripted server on a free port answers ``version`` as a 1.6.21 would and every ``mg`` with
the reply under test, so the reader meets what a real server seldom sends: its errors, a
value cut short by a closed connection, a value without its terminator, an unknown form.
Each is an error of the driver's kind (which the core reports as the store failing), never a
wrong value or a hang. No memcached is needed: the server is this test's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiomcache.exceptions import ClientException

from coatcheck.stores import Load
from coatcheck.stores._async.memcached import AsyncMemcachedStore


class _Scripted:
    def __init__(self) -> None:
        self.reply = b"EN\r\n"
        self.close_after = False
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if line.startswith(b"version"):
                    writer.write(b"VERSION 1.6.21\r\n")
                elif line.startswith(b"mg "):
                    writer.write(self.reply)
                    if self.close_after:
                        await writer.drain()
                        break
                else:
                    writer.write(b"ERROR\r\n")
                await writer.drain()
        finally:
            writer.close()


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[_Scripted]:
    script = _Scripted()
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    try:
        yield script
    finally:
        server.close()
        await server.wait_closed()


def _store(script: _Scripted) -> AsyncMemcachedStore:
    return AsyncMemcachedStore(url=f"memcached://127.0.0.1:{script.port}?timeout=2")


@pytest.mark.asyncio
async def test_a_miss_and_a_hit(scripted: _Scripted) -> None:
    store = _store(scripted)
    assert await store._mc.gets(b"k") is None
    scripted.reply = b"VA 3 c77\r\nabc\r\n"
    assert await store._mc.gets(b"k") == (b"abc", 77)
    scripted.reply = b"VA 0 c5\r\n\r\n"
    assert await store._mc.gets(b"k") == (b"", 5)
    await store.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "reply",
    [
        b"SERVER_ERROR out of memory storing object\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
        b"VA 3\r\nabc\r\n",  # no cas token: not the reply to what was asked
        b"HD c5\r\n",
        b"VA 3 c7\r\nabcXY",  # a value without its CRLF
    ],
    ids=["server-error", "client-error", "no-token", "other-code", "no-terminator"],
)
async def test_an_unexpected_reply_is_an_error(scripted: _Scripted, reply: bytes) -> None:
    scripted.reply = reply
    store = _store(scripted)
    with pytest.raises(ClientException):
        await asyncio.wait_for(store._mc.gets(b"k"), 5)
    await store.aclose()


@pytest.mark.asyncio
async def test_a_value_cut_short_is_a_lost_connection(scripted: _Scripted) -> None:
    scripted.reply, scripted.close_after = b"VA 10 c7\r\nabc", True
    store = _store(scripted)
    with pytest.raises(asyncio.IncompleteReadError):
        await asyncio.wait_for(store.load(Load("k", 0.0)), 5)
    await store.aclose()


@pytest.mark.asyncio
async def test_a_foreign_value_is_damage_not_a_record(scripted: _Scripted) -> None:
    scripted.reply = b"VA 15 c7\r\nnot one of ours\r\n"
    store = _store(scripted)
    result = await store.load(Load("k", 0.0))
    assert type(result).__name__ == "Damaged"
    await store.aclose()
