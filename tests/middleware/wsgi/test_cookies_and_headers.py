"""The WSGI middleware on what the client sends and the app sets: untrusted cookies, the id in a
request header, Vary and Cache-Control merged with the app's own."""

from __future__ import annotations

import logging

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck._sansio.ids import new_session_id
from coatcheck.errors import ConfigurationError
from coatcheck.testing import FrozenClock
from coatcheck.wsgi import SessionMiddleware

from .._support import MERGE_CASES, ProbeStore, assert_one_security_record, session_config
from ._app import demo_app, get, make_client

# -- untrusted cookies ------------------------------------------------------------------------


def test_two_different_session_cookies_give_a_fresh_session(
    client: httpx.Client,
    manager: SessionManager,
    store: ProbeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = get(client, "/incr").cookies["sid"]
    other = new_session_id()
    loads = store.calls["load"]
    with make_client(manager) as tossed, caplog.at_level(logging.INFO):
        response = get(tossed, "/read", headers={"Cookie": f"sid={real}; sid={other}"})
    assert response.text == "None"
    assert store.calls["load"] == loads  # refused before any lookup
    assert_one_security_record(caplog, "ambiguous-cookie", [real, other])


@pytest.mark.parametrize(
    ("ticket", "reason", "loads", "signed"),
    [
        (new_session_id(), "unknown-id", 1, False),
        ("not-a-session-id", "malformed-id", 0, False),
        ("A" * 5000, "malformed-id", 0, False),
        (new_session_id() + ".forgedsignature", "bad-signature", 0, True),
    ],
    ids=["unknown", "malformed", "oversized", "forged"],
)
def test_untrusted_cookie_gives_a_fresh_session_and_one_security_record(
    store: ProbeStore,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    ticket: str,
    reason: str,
    loads: int,
    signed: bool,
) -> None:
    manager = SessionManager(store, session_config(sign_cookie=signed), clock=clock)
    with make_client(manager) as client, caplog.at_level(logging.INFO):
        response = get(client, "/read", headers={"Cookie": f"sid={ticket}"})
        assert response.status_code == 200
        assert response.text == "None"
        assert store.calls["load"] == loads
        assert store.writes() == 0
        assert "set-cookie" not in response.headers
        assert_one_security_record(caplog, reason, [ticket, ticket[:43]])
        # A write after a refused ticket starts a new session with a ticket of our own.
        fresh = get(client, "/incr", headers={"Cookie": f"sid={ticket}"})
        assert fresh.text == "1"
        assert fresh.cookies["sid"] != ticket


# -- headers the application set itself -------------------------------------------------------


@pytest.mark.parametrize(("query", "vary", "cache_control"), MERGE_CASES)
def test_existing_vary_and_cache_control_are_merged(
    client: httpx.Client, query: str, vary: str, cache_control: str
) -> None:
    response = get(client, "/headers?" + query.replace(" ", "%20"))
    assert response.headers.get_list("vary") == [vary]
    assert response.headers.get_list("cache-control") == [cache_control]
    assert len(response.headers.get_list("set-cookie")) == 1


# -- the id in a request header instead of a cookie ------------------------------------------


def test_id_header_mode(manager: SessionManager, store: ProbeStore) -> None:
    with make_client(manager, id_header="X-Session-Id") as client:
        first = get(client, "/incr")
        ticket = first.headers["x-session-id"]
        assert ticket
        assert "set-cookie" not in first.headers
        assert first.headers["vary"] == "X-Session-Id"
        assert first.headers["cache-control"] == "no-store"

        second = get(client, "/incr", headers={"X-Session-Id": ticket})
        assert second.text == "2"
        assert "x-session-id" not in second.headers  # unchanged ticket: nothing to send
        assert second.headers["vary"] == "X-Session-Id"

        # A cookie means nothing in this mode.
        assert get(client, "/read", headers={"Cookie": f"sid={ticket}"}).text == "None"

        rotated = get(client, "/login", headers={"X-Session-Id": ticket})
        new = rotated.headers["x-session-id"]
        assert new and new != ticket
        assert get(client, "/read", headers={"X-Session-Id": new}).text == "2"

        gone = get(client, "/logout", headers={"X-Session-Id": new})
        assert gone.headers["x-session-id"] == ""
        assert "set-cookie" not in gone.headers
        assert len(store._entries) == 0


@pytest.mark.parametrize("name", ["Cookie", "set-cookie", "X Session", "X-Id\r\n", ""])
def test_id_header_must_be_a_free_header_name(manager: SessionManager, name: str) -> None:
    with pytest.raises(ConfigurationError):
        SessionMiddleware(demo_app([]), manager, id_header=name)
