"""The ASGI middleware on what the client sends and the app sets: untrusted cookies, the id in a
request header, Vary and Cache-Control merged with the app's own."""

from __future__ import annotations

import logging

import httpx
import pytest

from coatcheck import AsyncSessionManager
from coatcheck._sansio.ids import new_session_id
from coatcheck.testing import FrozenClock

from .._support import MERGE_CASES, AsyncProbeStore, assert_one_security_record, session_config
from ._app import get, make_client

# -- untrusted cookies ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_two_different_session_cookies_give_a_fresh_session(
    client: httpx.AsyncClient,
    manager: AsyncSessionManager,
    store: AsyncProbeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = (await get(client, "/incr")).cookies["sid"]
    other = new_session_id()
    loads = store.calls["load"]
    async with make_client(manager) as tossed:
        with caplog.at_level(logging.INFO):
            response = await get(tossed, "/read", headers={"Cookie": f"sid={real}; sid={other}"})
    assert response.text == "None"
    assert store.calls["load"] == loads
    assert_one_security_record(caplog, "ambiguous-cookie", [real, other])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("ticket", "reason", "loads", "signed"),
    [
        (new_session_id(), "unknown-id", 1, False),
        ("not-a-session-id", "malformed-id", 0, False),
        ("A" * 5000, "malformed-id", 0, False),
        (new_session_id() + ".forgedsignature", "bad-signature", 0, True),
    ],
    ids=["unknown", "malformed", "oversized", "forged"],
)
async def test_untrusted_cookie_gives_a_fresh_session_and_one_security_record(
    store: AsyncProbeStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    ticket: str,
    reason: str,
    loads: int,
    signed: bool,
) -> None:
    manager = AsyncSessionManager(store, session_config(sign_cookie=signed), clock=clock)
    async with make_client(manager) as client:
        with caplog.at_level(logging.INFO):
            response = await get(client, "/read", headers={"Cookie": f"sid={ticket}"})
        assert response.text == "None"
        assert store.calls["load"] == loads
        assert store.writes() == 0
        assert "set-cookie" not in response.headers
        assert_one_security_record(caplog, reason, [ticket, ticket[:43]])
        fresh = await get(client, "/incr", headers={"Cookie": f"sid={ticket}"})
        assert fresh.text == "1"
        assert fresh.cookies["sid"] != ticket


# -- headers the application set itself -------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("query", "vary", "cache_control"), MERGE_CASES)
async def test_existing_vary_and_cache_control_are_merged(
    client: httpx.AsyncClient, query: str, vary: str, cache_control: str
) -> None:
    response = await get(client, "/headers?" + query.replace(" ", "%20"))
    assert response.headers.get_list("vary") == [vary]
    assert response.headers.get_list("cache-control") == [cache_control]
    assert len(response.headers.get_list("set-cookie")) == 1
    assert all(name == name.lower() for name, _ in response.headers.raw)


# -- the id in a request header instead of a cookie ------------------------------------------


@pytest.mark.asyncio
async def test_id_header_mode(manager: AsyncSessionManager, store: AsyncProbeStore) -> None:
    async with make_client(manager, id_header="X-Session-Id") as client:
        first = await get(client, "/incr")
        ticket = first.headers["x-session-id"]
        assert ticket
        assert "set-cookie" not in first.headers
        assert first.headers["vary"] == "X-Session-Id"
        assert first.headers["cache-control"] == "no-store"

        second = await get(client, "/incr", headers={"X-Session-Id": ticket})
        assert second.text == "2"
        assert "x-session-id" not in second.headers
        assert (await get(client, "/read", headers={"Cookie": f"sid={ticket}"})).text == "None"

        rotated = await get(client, "/login", headers={"X-Session-Id": ticket})
        new = rotated.headers["x-session-id"]
        assert new and new != ticket
        gone = await get(client, "/logout", headers={"X-Session-Id": new})
        assert gone.headers["x-session-id"] == ""
        assert "set-cookie" not in gone.headers
        assert len(store._entries) == 0
