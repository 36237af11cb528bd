"""The ASGI middleware when the store fails (a 503, never a lost write), and on real stores."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from coatcheck import AsyncSessionManager
from coatcheck._sansio.ids import new_session_id
from coatcheck.stores import AsyncRedisStore, AsyncSQLiteStore

from .._support import AsyncProbeStore, session_config
from ._app import get, make_client

# -- the store failing ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_store_down_when_loading_gives_503_and_keeps_the_cookie(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    await get(client, "/incr")
    ticket = client.cookies["sid"]
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = await get(client, "/incr")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("text/plain")
    assert "set-cookie" not in response.headers
    assert client.cookies["sid"] == ticket
    failures = [r for r in caplog.records if r.name == "coatcheck"]
    assert len(failures) == 1
    assert failures[0].store == "probe+memory://"  # type: ignore[attr-defined]
    assert "unavailable" in failures[0].getMessage()
    store.down = False
    assert (await get(client, "/incr")).text == "2"


@pytest.mark.asyncio
async def test_store_down_when_saving_gives_503_without_the_app_body(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = await get(client, "/incr")
    assert response.status_code == 503
    assert response.content.startswith(b"Service Unavailable")
    assert "set-cookie" not in response.headers
    assert any(r.name == "coatcheck" for r in caplog.records)
    store.down = False
    assert (await get(client, "/incr")).text == "1"


@pytest.mark.asyncio
async def test_other_store_error_also_gives_503_logged_as_an_error(
    client: httpx.AsyncClient, store: AsyncProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def corrupt_database(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    store.create = corrupt_database  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = await get(client, "/incr")
    assert response.status_code == 503
    assert "set-cookie" not in response.headers
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert record.levelno == logging.ERROR


# -- other real stores --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    store = AsyncSQLiteStore(tmp_path / "sessions.db")
    await store.create_tables()
    try:
        manager = AsyncSessionManager(store, session_config())
        async with make_client(manager) as client:
            assert (await get(client, "/untouched")).status_code == 200
            assert (await get(client, "/incr")).text == "1"
            assert (await get(client, "/read")).text == "1"
            assert (await get(client, "/incr")).text == "2"
            old = client.cookies["sid"]
            assert (await get(client, "/login")).cookies["sid"] != old
            assert (await get(client, "/read")).text == "2"
            gone = await get(client, "/logout")
            assert gone.headers["set-cookie"].startswith("sid=;")
            assert await store.count(time.time()) == 0
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_redis_store_at_a_closed_port_gives_503(caplog: pytest.LogCaptureFixture) -> None:
    store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0?socket_timeout=2")
    try:
        manager = AsyncSessionManager(store, session_config())
        async with make_client(manager) as client:
            with caplog.at_level(logging.INFO, logger="coatcheck"):
                response = await get(client, "/read", headers={"Cookie": f"sid={new_session_id()}"})
            assert response.status_code == 503
            assert "set-cookie" not in response.headers
            assert (await get(client, "/untouched")).status_code == 200
    finally:
        await store.aclose()
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert "redis://127.0.0.1:1/0" in record.getMessage()
