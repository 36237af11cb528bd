"""examples/fastapi_app.py, driven through Starlette's TestClient on its default SQLite store
(in a scratch working directory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contrib.starlette._client import TestClient
from tests.contrib.starlette.test_example import EXAMPLES, load


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)
    example = load(EXAMPLES / "fastapi_app.py", "coatcheck_example_fastapi_app")
    with TestClient(example.create_app()) as c:
        yield c
    assert (tmp_path / "coatcheck-sessions.db").exists()  # the default store


def test_counter_login_checkout_websocket_logout(client: TestClient) -> None:
    assert client.get("/").json() == {"user": None, "visits": 1}
    anonymous = client.cookies["session"]
    assert client.post("/login", json={"name": "ada"}).json() == {"user": "ada"}
    assert client.cookies["session"] != anonymous  # rotated
    assert client.get("/").json() == {"user": "ada", "visits": 2}
    assert client.post("/checkout").json() == {"orders": 1}
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"user": "ada", "visits": 2}
    assert client.post("/logout").json() == {"user": None}
    assert "session" not in client.cookies
    assert client.get("/").json() == {"user": None, "visits": 1}
