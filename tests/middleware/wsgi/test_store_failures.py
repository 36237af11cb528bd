"""The WSGI middleware when the store fails (a 503, never a lost write), and on real stores."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck._sansio.ids import new_session_id
from coatcheck.stores import RedisStore, SQLiteStore

from .._support import ProbeStore, session_config
from ._app import get, make_client

# -- the store failing ------------------------------------------------------------------------


def test_store_down_when_loading_gives_503_and_keeps_the_cookie(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    get(client, "/incr")
    ticket = client.cookies["sid"]
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = get(client, "/incr")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("text/plain")
    assert "set-cookie" not in response.headers
    assert client.cookies["sid"] == ticket
    failures = [r for r in caplog.records if r.name == "coatcheck"]
    assert len(failures) == 1
    assert failures[0].store == "probe+memory://"  # type: ignore[attr-defined]
    assert "probe+memory://" in failures[0].getMessage()
    assert "unavailable" in failures[0].getMessage()

    store.down = False  # the server is back: no restart needed
    assert get(client, "/incr").text == "2"


def test_store_down_when_saving_gives_503_without_the_app_body(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.down = True
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = get(client, "/incr")
    assert response.status_code == 503
    assert b"Service Unavailable" in response.content
    assert "set-cookie" not in response.headers
    assert "sid" not in client.cookies
    assert any(r.name == "coatcheck" and r.store == "probe+memory://" for r in caplog.records)  # type: ignore[attr-defined]
    store.down = False
    assert get(client, "/incr").text == "1"


def test_other_store_error_also_gives_503_logged_as_an_error(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    def corrupt_database(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    store.create = corrupt_database  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="coatcheck"):
        response = get(client, "/incr")
    assert response.status_code == 503
    assert "set-cookie" not in response.headers
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert record.levelno == logging.ERROR
    assert "probe+memory://" in record.getMessage()


# -- other real stores --------------------------------------------------------------------------


def test_sqlite_store_round_trip_and_statements(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.db")
    store.create_tables()
    try:
        manager = SessionManager(store, session_config())
        with make_client(manager) as client:
            assert get(client, "/untouched").status_code == 200  # opens no connection
            assert get(client, "/incr").text == "1"
            seen: list[str] = []
            with store._db.connection() as conn:  # the pool's one connection
                conn.set_trace_callback(seen.append)
            assert get(client, "/read").text == "1"
            assert [s.split()[0] for s in seen] == ["SELECT"]  # a read is one SELECT
            seen.clear()
            assert get(client, "/incr").text == "2"
            assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"]
            seen.clear()
            assert get(client, "/logout").headers["set-cookie"].startswith("sid=;")
            assert [s.split()[0] for s in seen] == ["SELECT", "DELETE"]
            assert store.count(time.time()) == 0
    finally:
        store.close()


def test_redis_store_at_a_closed_port_gives_503(caplog: pytest.LogCaptureFixture) -> None:
    # A real driver, whose server is down: nothing listens on port 1.
    store = RedisStore.from_url("redis://127.0.0.1:1/0?socket_timeout=2")
    try:
        manager = SessionManager(store, session_config())
        with make_client(manager) as client, caplog.at_level(logging.INFO, logger="coatcheck"):
            response = get(client, "/read", headers={"Cookie": f"sid={new_session_id()}"})
            assert response.status_code == 503
            assert "set-cookie" not in response.headers
            assert get(client, "/untouched").status_code == 200  # no cookie: no store call
    finally:
        store.close()
    (record,) = [r for r in caplog.records if r.name == "coatcheck"]
    assert "redis://127.0.0.1:1/0" in record.getMessage()
