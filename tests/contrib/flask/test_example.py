"""examples/flask_app.py, driven through Flask's test client on its default SQLite store."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flask_app.py"


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example() -> Iterator[ModuleType]:
    yield load(EXAMPLE, "coatcheck_example_flask_app")
    del sys.modules["coatcheck_example_flask_app"]


def test_flask_example(example: ModuleType, tmp_path: Path) -> None:
    app = example.create_app(instance_path=str(tmp_path), TESTING=True)
    try:
        client = app.test_client()
        assert "visit 1 " in client.get("/").text
        assert "visit 2 " in client.get("/").text
        before = client.get_cookie("session")
        assert before is not None
        page = client.post("/login", data={"name": "Ada"}, follow_redirects=True).text
        assert "Welcome, Ada." in page and "Logged in as <b>Ada</b>" in page
        assert "visit 3 " in page  # the data survived the new id
        after = client.get_cookie("session")
        assert after is not None and after.value != before.value
        assert client.get("/whoami").text == "Ada"
        page = client.post("/logout", follow_redirects=True).text
        assert "Logged out." in page and "Not logged in" in page and "visit 1 " in page
        assert "Welcome" not in client.get("/").text  # a flash shows once
        assert (tmp_path / "coatcheck-sessions.db").is_file()
        stale = app.test_client()
        stale.set_cookie("session", after.value)
        assert stale.get("/whoami").text == ""  # the logged-in id died at log out
    finally:
        app.extensions["coatcheck"].close()
