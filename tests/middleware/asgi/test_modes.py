"""The ASGI middleware in lock mode: the lock is always released, and a held lock is a 503."""

from __future__ import annotations

import logging

import httpx
import pytest

from coatcheck import AsyncSessionManager
from coatcheck.asgi import SessionMiddleware
from coatcheck.testing import FrozenClock

from .._support import AsyncProbeStore, session_config
from ._app import get, make_client, starlette_app, websocket

# -- lock mode: the lock is always released, and a held lock is a 503 ------------------------


def lock_manager(store: AsyncProbeStore, clock: FrozenClock) -> AsyncSessionManager:
    return AsyncSessionManager(store, session_config(concurrency="lock", lock_wait=0), clock=clock)


@pytest.mark.asyncio
async def test_lock_mode_a_request_finding_the_session_locked_gets_503(
    store: AsyncProbeStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_client(lock_manager(store, clock)) as client:
        await get(client, "/incr")
        with caplog.at_level(logging.INFO, logger="coatcheck"):
            assert (await get(client, "/nested")).text == "503"
        assert any("lock" in r.getMessage() for r in caplog.records if r.name == "coatcheck")
        assert (await get(client, "/read")).text == "1"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/fail", "/boom", "/untouched"])
async def test_lock_mode_an_unsaved_request_releases_the_lock(
    store: AsyncProbeStore, clock: FrozenClock, path: str
) -> None:
    async with make_client(lock_manager(store, clock)) as client:
        await get(client, "/incr")
        if path == "/boom":
            with pytest.raises(RuntimeError):
                await client.get(path)
        else:
            await client.get(path)
        response = await get(client, "/incr")
        assert response.status_code == 200
        assert response.text == "2"


@pytest.mark.asyncio
async def test_lock_mode_a_websocket_holds_no_lock(
    store: AsyncProbeStore, clock: FrozenClock
) -> None:
    manager = lock_manager(store, clock)
    async with make_client(manager) as client:
        ticket = (await get(client, "/incr")).cookies["sid"]
        peer: list[httpx.AsyncClient] = [client]
        app = SessionMiddleware(starlette_app(peer), manager)
        sent = await websocket(app, f"sid={ticket}", path="/ws-nested")
        assert sent[1]["text"] == "200 2"  # an HTTP request during the connection went through
