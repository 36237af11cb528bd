"""examples/django_project (its settings are this directory's Django configuration, see
conftest.py): log in and log out with django.contrib.auth, through Django's test client, on
coatcheck's engine and middleware."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from coatcheck.contrib.django import SessionStore

from .conftest import EXAMPLE, EngineOn


@pytest.fixture
def user() -> Iterator[None]:
    model = get_user_model()
    model.objects.create_user("ada", password="lovelace")
    yield
    model.objects.filter(username="ada").delete()


def csrf(client: Client) -> str:
    page = client.get("/").content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def session_cookie(client: Client) -> str:
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_the_example_uses_coatcheck() -> None:
    assert settings.SESSION_ENGINE == "coatcheck.contrib.django"
    assert "coatcheck.contrib.django.SessionMiddleware" in settings.MIDDLEWARE


def test_log_in_rotates_and_log_out_deletes(engine_on: EngineOn, store: str, user: None) -> None:
    engine_on(store, ABSOLUTE_TIMEOUT=24 * 60 * 60)
    client = Client(enforce_csrf_checks=True)
    assert client.get("/visits/").content.endswith(b"Visits: 1</p>")
    anonymous = session_cookie(client)
    wrong = client.post(
        "/login/", {"username": "ada", "password": "x", "csrfmiddlewaretoken": csrf(client)}
    )
    assert wrong.status_code == 401
    response = client.post(
        "/login/",
        {"username": "ada", "password": "lovelace", "csrfmiddlewaretoken": csrf(client)},
    )
    assert response.status_code == 302
    logged_in = session_cookie(client)
    assert logged_in != anonymous
    # The pre-login id is dead (session fixation), the data moved with the session.
    assert not SessionStore(anonymous).exists(anonymous)
    assert b"Hello ada" in client.get("/").content
    assert client.get("/visits/").content.endswith(b"Visits: 2</p>")
    # A stolen pre-login cookie gets nothing.
    thief = Client()
    thief.cookies[settings.SESSION_COOKIE_NAME] = anonymous
    assert b"Log in" in thief.get("/").content
    response = client.post("/logout/", {"csrfmiddlewaretoken": csrf(client)})
    assert response.status_code == 302
    assert not SessionStore(logged_in).exists(logged_in)
    assert b"Log in" in client.get("/").content
    # Replaying the logged-in cookie after logout: anonymous, a new session.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = logged_in
    assert b"Log in" in replay.get("/").content


def test_manage_py_check_passes(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "COATCHECK_STORE": f"sqlite:///{tmp_path / 's.db'}"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3] / "src")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
