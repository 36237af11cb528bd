"""What the Flask integration tests share: an app on a real store, closed after the test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import pytest

from coatcheck.contrib.flask import CoatcheckSessionInterface, Session
from coatcheck.testing import FrozenClock
from tests.support.servers import require_server

AppFactory = Callable[..., flask.Flask]

#: The stores every store-parametrised test runs on.
STORES = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.server("redis"))]


def store_url(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    host, port = require_server("redis")
    return f"redis://{host}:{port}/0?prefix=coatcheck-flask-{uuid.uuid4().hex}:"


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL: memory, SQLite, Redis."""
    return store_url(request.param, tmp_path)


@pytest.fixture
def make_app(tmp_path: Path, clock: FrozenClock) -> Iterator[AppFactory]:
    """``make_app(store=URL or store, mode_for=None, **config)``: a testing app with a secret
    key and coatcheck installed (on the frozen clock), closed after the test."""
    interfaces: list[CoatcheckSessionInterface] = []

    def make(store: Any = "memory://", mode_for: Any = None, **config: Any) -> flask.Flask:
        app = flask.Flask(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(TESTING=True, SECRET_KEY="a test secret, 32 bytes or more!")
        app.config.update(SESSION_COATCHECK_STORE=store, **config)
        interfaces.append(Session(clock=clock, mode_for=mode_for).init_app(app))
        return app

    yield make
    for interface in interfaces:
        interface.close()


def cookie(response: Any, name: str = "session") -> str | None:
    """The value a response sets for cookie ``name`` ("" when it deletes it), or None."""
    for header in response.headers.getlist("Set-Cookie"):
        key, _, rest = header.partition("=")
        if key == name:
            return rest.partition(";")[0]
    return None
