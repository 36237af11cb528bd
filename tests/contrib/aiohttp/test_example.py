"""examples/aiohttp_app.py, driven through aiohttp's test client on its default SQLite store
(in a scratch working directory)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from ._app import AIOHTTP_SESSION_KEYS, client

pytestmark = [pytest.mark.asyncio, AIOHTTP_SESSION_KEYS]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
COOKIE = "AIOHTTP_SESSION"


def load(path: Path, name: str) -> ModuleType:
    """An example as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_counter_login_remember_logout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSION_STORE", raising=False)
    example = load(EXAMPLES / "aiohttp_app.py", "coatcheck_example_aiohttp_app")
    async with client(example.create_app()) as c:
        assert "visit 1 " in await (await c.get("/")).text()
        assert "visit 2 " in await (await c.get("/")).text()
        jar = c.session.cookie_jar
        anonymous = jar.filter_cookies(c.make_url("/"))[COOKIE].value
        response = await c.post(
            "/login", data={"name": "ada", "remember": "on"}, allow_redirects=False
        )
        assert response.status == 303
        assert "Max-Age=2592000" in response.headers["Set-Cookie"]
        assert jar.filter_cookies(c.make_url("/"))[COOKIE].value != anonymous  # rotated
        assert "Logged in as <b>ada</b>" in await (await c.get("/")).text()
        # The anonymous session is gone: its ticket gives a fresh session.
        jar.clear()
        jar.update_cookies({COOKIE: anonymous})
        assert await (await c.get("/whoami")).json() == {"user": None, "visits": 0}
        jar.clear()
        await c.post("/login", data={"name": "bob"}, allow_redirects=False)
        assert (await c.post("/logout", allow_redirects=False)).status == 303
        assert COOKIE not in jar.filter_cookies(c.make_url("/"))
        assert await (await c.get("/whoami")).json() == {"user": None, "visits": 0}
    assert (tmp_path / "coatcheck-sessions.db").exists()  # the default store
