"""examples/quart_app.py, driven through Quart's test client on its default SQLite store."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "quart_app.py"


@pytest.fixture
def example() -> Iterator[ModuleType]:
    name = "coatcheck_example_quart_app"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]


async def text(response: object) -> str:
    return await response.get_data(as_text=True)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.asyncio
async def test_quart_example(example: ModuleType, tmp_path: Path) -> None:
    app = example.create_app(instance_path=str(tmp_path), TESTING=True)
    try:
        client = app.test_client()
        assert "visit 1 " in await text(await client.get("/"))
        assert "visit 2 " in await text(await client.get("/"))
        login = await client.post("/login", form={"name": "Ada"}, follow_redirects=True)
        page = await text(login)
        assert "Welcome, Ada." in page and "Logged in as <b>Ada</b>" in page
        assert "visit 3 " in page
        assert await text(await client.get("/whoami")) == "Ada"
        page = await text(await client.post("/logout", follow_redirects=True))
        assert "Logged out." in page and "Not logged in" in page and "visit 1 " in page
        assert "Welcome" not in await text(await client.get("/"))
        assert (tmp_path / "coatcheck-sessions.db").is_file()
    finally:
        await app.extensions["coatcheck"].aclose()
