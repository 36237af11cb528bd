"""The ASGI middleware, request by request, on a Starlette app: lazy creation, what each kind of
request costs the store, rotation and destruction."""

from __future__ import annotations

import logging

import httpx
import pytest

from coatcheck import AsyncSessionManager
from coatcheck.testing import FrozenClock

from .._support import AsyncProbeStore, assert_one_security_record, attributes, session_config
from ._app import get, make_client

# -- lazy creation and the store traffic of each kind of request ------------------------------


@pytest.mark.asyncio
async def test_no_cookie_and_untouched_session_costs_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    response = await get(client, "/untouched")
    assert response.text == "hello"
    assert sum(store.calls.values()) == 0
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers
    assert "cache-control" not in response.headers


@pytest.mark.asyncio
async def test_a_write_sets_the_cookie_and_the_next_request_sees_the_data(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    first = await get(client, "/incr")
    assert first.text == "1"
    assert store.calls["load"] == 0
    assert store.calls["create"] == 1
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith("sid=")
    assert attributes(set_cookie) == {
        "Domain=testserver.local",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    }
    assert first.headers["vary"] == "Cookie"
    assert first.headers["cache-control"] == "no-store"

    second = await get(client, "/incr")
    assert second.text == "2"
    assert store.calls["load"] == 1
    assert store.calls["update"] == 1
    assert "set-cookie" not in second.headers
    assert second.headers["vary"] == "Cookie"


@pytest.mark.asyncio
async def test_read_only_request_writes_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore, clock: FrozenClock
) -> None:
    await get(client, "/incr")
    writes = store.writes()
    response = await get(client, "/read")
    assert response.text == "1"
    assert store.writes() == writes
    assert "set-cookie" not in response.headers
    assert response.headers["vary"] == "Cookie"
    clock.advance(61)
    response = await get(client, "/read")
    # The memory store slides the expiry inside the load (slides_on_load): no touch.
    assert store.calls["touch"] == 0
    assert store.calls["update"] == 0
    idle = session_config().idle_timeout
    assert idle is not None
    assert await store.count(clock() + idle - 1) == 1  # unslid, it expired 60 s earlier
    assert "set-cookie" not in response.headers


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_response_saves_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore, status: int
) -> None:
    response = await get(client, f"/fail?status={status}")
    assert response.status_code == status
    assert store.writes() == 0
    assert "set-cookie" not in response.headers
    await get(client, "/incr")
    writes = store.writes()
    await get(client, f"/fail?status={status}")
    assert store.writes() == writes
    assert (await get(client, "/read")).text == "1"


@pytest.mark.asyncio
async def test_application_exception_propagates_and_saves_nothing(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    with pytest.raises(RuntimeError, match="application bug"):
        await client.get("/boom")
    assert store.writes() == 0


# -- rotation and destruction -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_login_regenerates_and_the_old_ticket_is_dead(
    client: httpx.AsyncClient,
    manager: AsyncSessionManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = (await get(client, "/incr")).cookies["sid"]
    response = await get(client, "/login")
    new = response.cookies["sid"]
    assert new != old
    assert (await get(client, "/read")).text == "1"
    async with make_client(manager) as stranger:
        with caplog.at_level(logging.INFO):
            replay = await get(stranger, "/read", headers={"Cookie": f"sid={old}"})
    assert replay.text == "None"
    assert "set-cookie" not in replay.headers
    assert_one_security_record(caplog, "unknown-id", [old, new])


@pytest.mark.asyncio
async def test_destroy_sends_a_deleting_cookie_with_the_same_path_and_domain(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    set_cookie = (await get(client, "/incr")).headers["set-cookie"]
    response = await get(client, "/logout")
    deleting = response.headers["set-cookie"]
    assert deleting.startswith("sid=;")
    assert "Max-Age=0" in deleting
    assert attributes(deleting) == attributes(set_cookie)
    assert response.headers["vary"] == "Cookie"
    assert response.headers["cache-control"] == "no-store"
    assert len(store._entries) == 0
    assert "sid" not in client.cookies


@pytest.mark.asyncio
async def test_destroy_without_a_cookie_sends_only_vary(
    client: httpx.AsyncClient, store: AsyncProbeStore
) -> None:
    response = await get(client, "/logout")
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"
    assert sum(store.calls.values()) == 0


@pytest.mark.asyncio
async def test_session_destroyed_by_a_concurrent_request_is_cleared(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = (await get(client, "/incr")).cookies["sid"]
    with caplog.at_level(logging.INFO):
        response = await get(client, "/race")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("sid=;")
    assert len(store._entries) == 0
    assert_one_security_record(caplog, "session-interrupted", [ticket])


@pytest.mark.asyncio
async def test_a_login_racing_a_logout_brings_nothing_back(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = (await get(client, "/incr")).cookies["sid"]
    with caplog.at_level(logging.INFO):
        response = await get(client, "/race-login")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("sid=;")  # no new id handed out
    assert len(store._entries) == 0  # the rotation wrote nothing under a new id
    assert_one_security_record(caplog, "session-interrupted", [ticket])
