"""The WSGI middleware in lock mode (the lock is always released, a held lock is a 503) and
with a mode per route."""

from __future__ import annotations

import logging

import pytest

from coatcheck import SessionManager
from coatcheck.errors import ConfigurationError
from coatcheck.testing import FrozenClock

from .._support import ProbeStore, session_config
from ._app import get, make_client

# -- lock mode: the lock is always released, and a held lock is a 503 ------------------------


def lock_manager(store: ProbeStore, clock: FrozenClock) -> SessionManager:
    # lock_wait=0: a held lock is reported at once instead of after a wait.
    return SessionManager(store, session_config(concurrency="lock", lock_wait=0), clock=clock)


def test_lock_mode_a_request_finding_the_session_locked_gets_503(
    store: ProbeStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    with make_client(lock_manager(store, clock)) as client:
        get(client, "/incr")
        with caplog.at_level(logging.INFO, logger="coatcheck"):
            assert get(client, "/nested").text == "503"
        assert any("lock" in r.getMessage() for r in caplog.records if r.name == "coatcheck")
        assert get(client, "/read").text == "1"  # the outer request's save released it


@pytest.mark.parametrize("path", ["/fail", "/boom", "/untouched"])
def test_lock_mode_an_unsaved_request_releases_the_lock(
    store: ProbeStore, clock: FrozenClock, path: str
) -> None:
    with make_client(lock_manager(store, clock)) as client:
        get(client, "/incr")
        if path == "/boom":
            with pytest.raises(RuntimeError):
                client.get(path)
        else:
            client.get(path)
        response = get(client, "/incr")
        assert response.status_code == 200
        assert response.text == "2"


# -- per-route modes ---------------------------------------------------------------------------


def read_only_reads(method: str, path: str) -> str | None:
    return "read-only" if method == "GET" and path == "/read" else None


def test_mode_for_read_only_route_is_not_blocked_by_a_lock_and_never_writes(
    store: ProbeStore, clock: FrozenClock
) -> None:
    with make_client(lock_manager(store, clock), mode_for=read_only_reads) as client:
        get(client, "/incr")
        # /nested holds the session lock while its inner /read runs: a read-only route
        # takes no lock, so it is served instead of getting a 503.
        assert get(client, "/nested").text == "200"
        clock.advance(120)  # past the 60 s access resolution
        writes = store.writes()
        assert get(client, "/read").text == "1"
        assert store.writes() == writes  # not even a touch


def test_mode_for_can_pick_lock_for_one_route(store: ProbeStore, clock: FrozenClock) -> None:
    manager = SessionManager(store, session_config(lock_wait=0), clock=clock)  # merge by default

    def lock_nested(method: str, path: str) -> str | None:
        return "lock" if path in ("/nested", "/read") else None

    with make_client(manager, mode_for=lock_nested) as client:
        get(client, "/incr")
        assert get(client, "/nested").text == "503"  # both routes lock: the inner one waits
    with make_client(manager) as client:
        get(client, "/incr")
        assert get(client, "/nested").text == "200"  # merge mode takes no lock


def test_mode_for_returning_nonsense_is_a_configuration_error(
    store: ProbeStore, clock: FrozenClock
) -> None:
    manager = SessionManager(store, session_config(), clock=clock)
    with (
        make_client(manager, mode_for=lambda method, path: "sometimes") as client,
        pytest.raises(ConfigurationError),
    ):
        client.get("/read")
