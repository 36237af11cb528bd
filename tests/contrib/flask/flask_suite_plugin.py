"""A pytest plugin for Flask's own test suite (run by test_flask_suite.py in a subprocess):
every Flask app gets coatcheck's session interface, on an SQLite file of its test's own.

Loaded with ``-p flask_suite_plugin``, this directory on ``PYTHONPATH``. Each test records how
many apps it made with coatcheck and how many sessions coatcheck opened for it (junit
properties), so the caller can tell that the interface under test really was coatcheck's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import _pytest.monkeypatch
import flask
import pytest

from coatcheck.contrib.flask import CoatcheckSessionInterface, FlaskSession, Session

# Flask's conftest.py names the "no value" marker as pytest 8 spelled it; pytest 9 has only
# NOTSET. The marker itself is the same object.
if not hasattr(_pytest.monkeypatch, "notset"):
    _pytest.monkeypatch.notset = _pytest.monkeypatch.NOTSET  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _coatcheck_sessions(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    url = "sqlite:///" + str(tmp_path_factory.mktemp("coatcheck") / "sessions.db")
    interfaces: list[CoatcheckSessionInterface] = []
    opened: list[FlaskSession] = []
    original_init = flask.Flask.__init__
    original_open = CoatcheckSessionInterface.open_session

    def init(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.config["SESSION_COATCHECK_STORE"] = url
        interfaces.append(Session().init_app(self))

    def open_session(self: CoatcheckSessionInterface, app: flask.Flask, req: Any) -> Any:
        session = original_open(self, app, req)
        if isinstance(session, FlaskSession):
            opened.append(session)
        return session

    monkeypatch.setattr(flask.Flask, "__init__", init)
    monkeypatch.setattr(CoatcheckSessionInterface, "open_session", open_session)
    yield
    request.node.user_properties.append(("coatcheck_apps", len(interfaces)))
    request.node.user_properties.append(("coatcheck_sessions", len(opened)))
    for interface in interfaces:
        interface.close()
