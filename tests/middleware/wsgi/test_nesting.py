"""Through the WSGI middleware: a value nested too deeply is a clear error at save, never a
session deleted as corrupt at a later load, however many middlewares wrap the app."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from coatcheck import SerializationError, SessionManager
from coatcheck._sansio.tagging import MAX_DEPTH

from .._support import BASE_URL, CLIENT_ADDR, ProbeStore
from ._app import TEXT, StartResponse, wrap

#: The deepest a value in the default namespace may nest: the stored document and its
#: namespace are two levels of the limit.
ROOM = MAX_DEPTH - 2


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while type(value) is list:
        depth += 1
        value = value[0] if value else None
    return depth


def tree_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/store?depth=N`` stores a list nested N deep under "tree"; ``/depth`` answers how
    deep the stored one is."""
    session = environ["coatcheck.session"]
    if environ["PATH_INFO"] == "/store":
        session["tree"] = nested(int(parse_qs(environ["QUERY_STRING"])["depth"][0]))
    start_response("200 OK", list(TEXT))
    return [str(depth_of(session.get("tree"))).encode()]


def layered(app: Any, layers: int) -> Any:
    """``app`` inside ``layers`` pass-through WSGI middlewares: each a frame deeper."""
    for _ in range(layers):

        def layer(environ: dict[str, Any], start_response: Any, inner: Any = app) -> Any:
            return inner(environ, start_response)

        app = layer
    return app


def client_for(manager: SessionManager, layers: int, cookies: httpx.Cookies) -> httpx.Client:
    app = layered(wrap(tree_app, manager), layers)
    transport = httpx.WSGITransport(app=app, remote_addr=CLIENT_ADDR)
    return httpx.Client(transport=transport, base_url=BASE_URL, cookies=cookies)


@pytest.mark.parametrize(("save_layers", "load_layers"), [(0, 400), (400, 0), (400, 400)])
def test_the_deepest_value_a_save_accepts_loads_under_any_middleware_stack(
    manager: SessionManager, store: ProbeStore, save_layers: int, load_layers: int
) -> None:
    with client_for(manager, save_layers, httpx.Cookies()) as client:
        assert client.get(f"/store?depth={ROOM}").text == str(ROOM)
        cookies = client.cookies
    with client_for(manager, load_layers, cookies) as client:
        assert client.get("/depth").text == str(ROOM)
    assert store.calls["delete"] == 0


@pytest.mark.parametrize("depth", [ROOM + 1, 600])  # 600 used to save, and not load under 400
@pytest.mark.parametrize("layers", [0, 400])
def test_a_value_too_deep_fails_at_save_and_the_stored_session_stays(
    manager: SessionManager, store: ProbeStore, layers: int, depth: int
) -> None:
    cookies = httpx.Cookies()
    with client_for(manager, layers, cookies) as client:
        assert client.get("/store?depth=3").text == "3"
        writes = store.writes()
        with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} deep") as raised:
            client.get(f"/store?depth={depth}")
        assert raised.value.key == "tree"
        assert store.writes() == writes  # nothing written
        # The session from before the failed request is there, intact, not deleted as corrupt.
        assert client.get("/depth").text == "3"
    assert store.calls["delete"] == 0
