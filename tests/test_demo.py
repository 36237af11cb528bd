"""The demo app, through httpx's WSGI transport and over a real socket."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck.demo import create_app, create_manager, make_demo_server

SECRET = "demo-test-secret-0123456789abcdef"
COOKIE = "coatcheck_demo"


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SessionManager]:
    manager = create_manager(f"sqlite:///{tmp_path / 'demo.db'}", SECRET)
    yield manager
    manager.close()


@pytest.fixture
def client(manager: SessionManager) -> Iterator[httpx.Client]:
    with new_client(manager) as client:
        yield client


def new_client(manager: SessionManager) -> httpx.Client:
    transport = httpx.WSGITransport(app=create_app(manager))
    return httpx.Client(transport=transport, base_url="http://127.0.0.1:8000")


def visits(response: httpx.Response) -> int:
    found = re.search(r"visited this page <strong>(\d+)</strong>", response.text)
    assert found, response.text
    return int(found.group(1))


def token(response: httpx.Response) -> str:
    found = re.search(r'name="token" value="([^"]+)"', response.text)
    assert found, response.text
    return found.group(1)


def log_in(client: httpx.Client, name: str = "alice") -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"token": token(form), "name": name})


def test_counter_increments_per_visit(client: httpx.Client) -> None:
    assert [visits(client.get("/")) for _ in range(3)] == [1, 2, 3]
    cookie = client.cookies[COOKIE]
    # The cookie was set once; later visits reuse the same ticket.
    assert client.get("/").headers.get("set-cookie") is None
    assert client.cookies[COOKIE] == cookie


def test_pages_are_html_with_a_strict_policy(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "Secure" not in set_cookie
    assert client.get("/nowhere").status_code == 404
    assert client.post("/").status_code == 405


def test_login_regenerates_the_id_and_the_old_cookie_is_dead(
    client: httpx.Client, manager: SessionManager
) -> None:
    client.get("/")
    before = client.cookies[COOKIE]
    response = log_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    after = client.cookies[COOKIE]
    assert after != before

    page = client.get("/")
    assert "Logged in as <strong>alice</strong>" in page.text
    assert visits(page) == 2  # data survived the new id

    with new_client(manager) as attacker:
        stale = attacker.get("/", headers={"Cookie": f"{COOKIE}={before}"})
        assert "You are not logged in" in stale.text
        assert visits(stale) == 1
        assert attacker.cookies[COOKIE] not in (before, after)


def test_flash_is_shown_once(client: httpx.Client) -> None:
    log_in(client)
    assert "Welcome, alice!" in client.get("/").text
    assert "Welcome, alice!" not in client.get("/").text


def test_user_input_is_escaped(client: httpx.Client) -> None:
    log_in(client, "<script>alert(1)</script>")
    page = client.get("/")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_note_form_token_is_required_and_single_use(client: httpx.Client) -> None:
    form = client.get("/note")
    first = token(form)

    missing = client.post("/note", data={"note": "no token"})
    assert missing.status_code == 400
    assert "form has expired" in missing.text
    forged = client.post("/note", data={"note": "forged", "token": "x" * 22})
    assert forged.status_code == 400

    saved = client.post("/note", data={"note": "buy <milk>", "token": first})
    assert saved.status_code == 303
    page = client.get("/")
    assert "buy &lt;milk&gt;" in page.text
    assert "Note saved." in page.text

    replay = client.post("/note", data={"note": "again", "token": first})
    assert replay.status_code == 400
    assert "again" not in client.get("/").text


def test_login_needs_a_token_too(client: httpx.Client) -> None:
    client.get("/")
    response = client.post("/login", data={"name": "mallory"})
    assert response.status_code == 400
    assert "You are not logged in" in client.get("/").text


def test_logout_destroys_the_session(client: httpx.Client, manager: SessionManager) -> None:
    log_in(client)
    home = client.get("/")
    old = client.cookies[COOKIE]

    refused = client.post("/logout", data={})
    assert refused.status_code == 400
    assert "Logged in as" in client.get("/").text

    home = client.get("/")
    response = client.post("/logout", data={"token": token(home)})
    assert response.status_code == 303
    assert response.headers["location"] == "/?bye=1"
    assert COOKIE not in client.cookies

    after = client.get("/?bye=1")
    assert "You have been logged out" in after.text
    assert "You are not logged in" in after.text
    assert visits(after) == 1
    assert "You have been logged out" not in client.get("/").text

    with new_client(manager) as replay:
        page = replay.get("/", headers={"Cookie": f"{COOKIE}={old}"})
        assert "You are not logged in" in page.text


def test_real_server_in_a_thread(manager: SessionManager) -> None:
    server = make_demo_server(create_app(manager), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            assert visits(client.get("/")) == 1
            assert visits(client.get("/")) == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_coatcheck_demo_command_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "COATCHECK_SECRET": SECRET}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coatcheck",
            "demo",
            "--port",
            "0",
            "--store",
            f"sqlite:///{tmp_path / 'demo.db'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A test run started in the background by a shell without job control inherits SIGINT
        # as ignored, and Python then installs no KeyboardInterrupt handler: give the demo the
        # default disposition, as a terminal would.
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the socket listens
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert found, banner + (proc.stderr.read() if proc.stderr else "")
        response = httpx.get(found.group(0), timeout=10)
        assert visits(response) == 1
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0
    assert "stopped" in out
    assert (tmp_path / "demo.db").exists()
