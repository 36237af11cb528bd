"""The WSGI middleware, request by request: lazy creation, what each kind of request costs the
store, rotation and destruction."""

from __future__ import annotations

import logging

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck.testing import FrozenClock

from .._support import ProbeStore, assert_one_security_record, attributes, session_config
from ._app import get, make_client

# -- lazy creation and the store traffic of each kind of request ------------------------------


def test_no_cookie_and_untouched_session_costs_nothing(
    client: httpx.Client, store: ProbeStore
) -> None:
    response = get(client, "/untouched")
    assert response.status_code == 200
    assert response.text == "hello"
    assert sum(store.calls.values()) == 0
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers
    assert "cache-control" not in response.headers


def test_a_write_sets_the_cookie_and_the_next_request_sees_the_data(
    client: httpx.Client, store: ProbeStore
) -> None:
    first = get(client, "/incr")
    assert first.text == "1"
    assert store.calls["load"] == 0  # no cookie: nothing to read
    assert store.calls["create"] == 1
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith("sid=")
    assert attributes(set_cookie) == {
        "Domain=testserver.local",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    }
    assert first.headers["vary"] == "Cookie"
    assert first.headers["cache-control"] == "no-store"

    second = get(client, "/incr")
    assert second.text == "2"
    assert store.calls["load"] == 1
    assert store.calls["update"] == 1
    assert "set-cookie" not in second.headers  # same ticket, browser-session cookie
    assert second.headers["vary"] == "Cookie"


def test_read_only_request_writes_nothing(
    client: httpx.Client, store: ProbeStore, clock: FrozenClock
) -> None:
    get(client, "/incr")
    writes = store.writes()
    response = get(client, "/read")
    assert response.text == "1"
    assert store.calls["load"] == 1
    assert store.writes() == writes
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"
    # Past the access-time resolution a read refreshes expiry, still no cookie: the memory
    # store slides it inside the load (slides_on_load), so no touch of its own.
    clock.advance(61)
    response = get(client, "/read")
    assert store.calls["touch"] == 0
    assert store.calls["update"] == 0
    idle = session_config().idle_timeout
    assert idle is not None
    assert store.count(clock() + idle - 1) == 1  # unslid, it would have expired 60 s earlier
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("path", ["/fail", "/unavailable"])
def test_5xx_response_saves_nothing(client: httpx.Client, store: ProbeStore, path: str) -> None:
    response = get(client, path)
    assert response.status_code >= 500
    assert store.writes() == 0
    assert "set-cookie" not in response.headers
    # With a stored session, the 5xx request's change is dropped too.
    get(client, "/incr")
    writes = store.writes()
    get(client, path)
    assert store.writes() == writes
    assert get(client, "/read").text == "1"


def test_application_exception_propagates_and_saves_nothing(
    client: httpx.Client, store: ProbeStore
) -> None:
    with pytest.raises(RuntimeError, match="application bug"):
        client.get("/boom")
    assert store.writes() == 0


# -- rotation and destruction -----------------------------------------------------------------


def test_login_regenerates_and_the_old_ticket_is_dead(
    client: httpx.Client,
    store: ProbeStore,
    manager: SessionManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = get(client, "/incr").cookies["sid"]
    response = get(client, "/login")
    new = response.cookies["sid"]
    assert new != old
    assert response.headers["cache-control"] == "no-store"
    assert get(client, "/read").text == "1"  # data kept under the new ticket

    with make_client(manager) as stranger, caplog.at_level(logging.INFO):
        replay = get(stranger, "/read", headers={"Cookie": f"sid={old}"})
    assert replay.text == "None"
    assert "set-cookie" not in replay.headers
    assert_one_security_record(caplog, "unknown-id", [old, new])


def test_destroy_sends_a_deleting_cookie_with_the_same_path_and_domain(
    client: httpx.Client, store: ProbeStore
) -> None:
    set_cookie = get(client, "/incr").headers["set-cookie"]
    response = get(client, "/logout")
    deleting = response.headers["set-cookie"]
    assert deleting.startswith("sid=;")
    assert "Max-Age=0" in deleting
    assert attributes(deleting) == attributes(set_cookie)
    assert response.headers["vary"] == "Cookie"
    assert response.headers["cache-control"] == "no-store"
    assert store.calls["delete"] == 1
    assert len(store._entries) == 0
    assert "sid" not in client.cookies
    assert get(client, "/read").text == "None"


def test_destroy_without_a_cookie_sends_only_vary(client: httpx.Client, store: ProbeStore) -> None:
    response = get(client, "/logout")
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"
    assert sum(store.calls.values()) == 0


def test_session_destroyed_by_a_concurrent_request_is_cleared(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = get(client, "/incr").cookies["sid"]
    with caplog.at_level(logging.INFO):
        response = get(client, "/race")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("sid=;")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert len(store._entries) == 0  # the late save did not resurrect it
    assert_one_security_record(caplog, "session-interrupted", [ticket])


def test_a_login_racing_a_logout_brings_nothing_back(
    client: httpx.Client, store: ProbeStore, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = get(client, "/incr").cookies["sid"]
    with caplog.at_level(logging.INFO):
        response = get(client, "/race-login")
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("sid=;")  # no new id handed out
    assert len(store._entries) == 0  # the rotation wrote nothing under a new id
    assert_one_security_record(caplog, "session-interrupted", [ticket])
