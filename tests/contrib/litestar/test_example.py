"""examples/litestar_app.py, driven through Litestar's TestClient on its default SQLite store
(in a scratch working directory)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from litestar import Litestar
from litestar.testing import TestClient

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """An example as a module (examples/ is not a package), in ``sys.modules`` for the test:
    Litestar reads the handlers' annotations in their module's namespace."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Litestar]]:
    monkeypatch.chdir(tmp_path)
    example = load(EXAMPLES / "litestar_app.py", "coatcheck_example_litestar_app", monkeypatch)
    with TestClient(example.create_app(), base_url="http://testserver.local") as c:
        yield c
    assert (tmp_path / "coatcheck-sessions.db").exists()  # the default store


def test_counter_login_checkout_websocket_logout(client: TestClient[Litestar]) -> None:
    assert "visit 1 " in client.get("/").text
    assert "visit 2 " in client.get("/").text
    anonymous = client.cookies["session"]
    assert client.get("/whoami").json()["session_id"] == anonymous
    form = {"content-type": "application/x-www-form-urlencoded"}
    response = client.post("/login", content="name=ada", headers=form, follow_redirects=False)
    assert response.status_code == 303
    assert client.cookies["session"] != anonymous  # rotated
    assert "Logged in as <b>ada</b>" in client.get("/").text
    assert client.post("/checkout").json() == {"orders": 1, "mode": "lock"}
    assert client.post("/checkout").json() == {"orders": 2, "mode": "lock"}
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"user": "ada", "visits": 3}
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert "session" not in client.cookies
    after = client.get("/whoami")
    # A fresh session: it has its id, kept only if something is stored in it.
    assert after.json()["user"] is None and after.json()["visits"] == 0
    assert after.json()["session_id"] not in (None, anonymous)
    assert "set-cookie" not in after.headers
