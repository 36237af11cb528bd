"""examples/starlette_app.py, driven through Starlette's TestClient on its default SQLite
store (in a scratch working directory)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ._client import TestClient

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load(path: Path, name: str) -> ModuleType:
    """An example as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)
    example = load(EXAMPLES / "starlette_app.py", "coatcheck_example_starlette_app")
    with TestClient(example.create_app()) as c:
        yield c
    assert (tmp_path / "coatcheck-sessions.db").exists()  # the default store


def test_counter_login_websocket_logout(client: TestClient) -> None:
    assert "visit 1 " in client.get("/").text
    assert "visit 2 " in client.get("/").text
    anonymous = client.cookies["session"]
    response = client.post("/login", data={"name": "ada"}, follow_redirects=False)
    assert response.status_code == 303
    assert client.cookies["session"] != anonymous  # rotated
    assert "Logged in as <b>ada</b>" in client.get("/").text
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"user": "ada", "visits": 3}
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert "session" not in client.cookies
    assert client.get("/whoami").json() == {"user": None, "visits": 0}
