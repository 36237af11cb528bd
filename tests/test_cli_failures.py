"""How ``coatcheck`` and its demo fail: one line naming the cause and the fix, an exit status
of its own, never a traceback. Run as a real process, on real sockets and pipes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck._cli_support import DEFAULT_STORE, EPILOG
from coatcheck.cli import build_parser

SECRET = "cli-failure-secret-0123456789abcdef"


def coatcheck(
    *argv: str, cwd: Path, env: dict[str, str] | None = None, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    """``coatcheck ARGV`` in a fresh interpreter; ``prelude`` runs first (to hide a driver)."""
    code = f"{prelude}\nimport sys\nfrom coatcheck.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=cwd,
        env=env if env is not None else _env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COATCHECK_STORE"}
    return {**env, "COATCHECK_SECRET": SECRET, **extra}


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("coatcheck: ")
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_the_exit_statuses_are_in_the_help() -> None:
    help_text = build_parser().format_help()
    assert "exit status:" in help_text
    for line in EPILOG.splitlines()[4:]:
        assert line in help_text
    for code in ("2", "3", "4", "5", "6", "141"):
        assert re.search(rf"^  {code} +\S", help_text, re.MULTILINE), code


def test_demo_on_a_port_in_use_exits_6(tmp_path: Path, listening: int) -> None:
    done = coatcheck("demo", "--port", str(listening), cwd=tmp_path)
    err = one_line_error(done, 6)
    assert f"cannot listen on 127.0.0.1:{listening}: the port is already in use" in err
    assert "pass another --port (0 picks a free one)" in err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_demo_on_a_port_out_of_range_is_a_usage_error(tmp_path: Path, port: str) -> None:
    done = coatcheck("demo", "--port", port, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"argument --port: '{port}' is not a port number (0 to 65535)" in done.stderr


def test_demo_on_an_unknown_host_exits_6(tmp_path: Path) -> None:
    done = coatcheck("demo", "--host", "no-such-host.invalid", "--port", "0", cwd=tmp_path)
    assert "unknown host 'no-such-host.invalid'; pass --host" in one_line_error(done, 6)


def test_a_closed_pipe_says_so_in_one_line_and_exits_141(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert coatcheck("init", "--store", url, cwd=tmp_path).returncode == 0
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes: `| head -0`, in effect
    try:
        done = subprocess.run(
            [sys.executable, "-m", "coatcheck", "stats", "--store", url],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            # Python ignores SIGPIPE itself; a shell may have left it ignored or not.
            preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN),
        )
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr.count("\n") == 1 and "output closed early" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_stats_through_head_prints_one_line_and_no_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert coatcheck("init", "--store", url, cwd=tmp_path).returncode == 0
    command = f"{sys.executable} -m coatcheck stats --store '{url}' | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.startswith("store:") and done.stdout.count("\n") == 1
    # When head closed the pipe before a write: 141 and the one line; else the command was done.
    if done.returncode == 141:
        assert done.stderr.count("\n") == 1 and "output closed early" in done.stderr
    else:
        assert (done.returncode, done.stderr) == (0, "")


def test_stats_before_init_says_to_run_init(tmp_path: Path) -> None:
    done = coatcheck("stats", cwd=tmp_path)  # the default store: nothing made it yet
    err = one_line_error(done, 5)
    assert "has no session table yet" in err
    assert err.endswith(f"create it with: coatcheck init --store '{DEFAULT_STORE}'\n")


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("redis://127.0.0.1:6379/0", "redis", "redis"),
        ("memcached://127.0.0.1:11211", "pymemcache", "memcached"),
        ("postgresql://127.0.0.1/test", "psycopg", "postgresql"),
        ("mariadb://root@127.0.0.1/test", "pymysql", "mysql"),
    ],
)
def test_a_missing_driver_names_the_extra_exit_4(
    tmp_path: Path, url: str, module: str, extra: str
) -> None:
    hide = f"sys.modules[{module!r}] = None"  # import fails, as when it is not installed
    for command in ("stats", "demo"):
        done = coatcheck(command, "--store", url, cwd=tmp_path, prelude=f"import sys; {hide}")
        err = one_line_error(done, 4)
        assert f"needs a driver that is not installed (no module named {module!r})" in err
        assert err.endswith(f"install it with: pip install 'coatcheck[{extra}]'\n")


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
def test_an_unreachable_server_exits_3_for_stats_and_demo(tmp_path: Path, scheme: str) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"{scheme}://127.0.0.1:{port}" + ("/0" if scheme == "redis" else "")
    for command in ("stats", "demo"):
        err = one_line_error(coatcheck(command, "--store", url, cwd=tmp_path), 3)
        assert "is unavailable" in err
        assert err.endswith("start it, or pass another --store\n")


def test_stats_after_the_demo_counts_the_demos_sessions(tmp_path: Path) -> None:
    """Neither given --store: the demo and the other commands share one default store."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "coatcheck", "demo", "--port", "0"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert found, banner
        for _ in range(2):  # two visitors, two sessions
            with httpx.Client(timeout=10) as client:
                assert client.get(found.group(0)).status_code == 200
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0
    done = coatcheck("stats", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"sessions": 2' in done.stdout


@pytest.mark.server("memcached")
def test_a_too_old_memcached_names_both_versions(tmp_path: Path) -> None:
    from tests.stores._own_server import OwnServer, _existing_user
    from tests.stores.memcached._old_release import OLD_VERSION, old_memcached

    command = [str(old_memcached()), "-l", "127.0.0.1", "-p", "{port}", "-U", "0"]
    if os.geteuid() == 0:
        command += ["-u", _existing_user("memcache", "nobody")]
    server = OwnServer(command)
    server.start()
    try:
        done = coatcheck("stats", "--store", f"memcached://127.0.0.1:{server.port}", cwd=tmp_path)
    finally:
        server.stop()
    err = one_line_error(done, 3)
    assert f"the server runs memcached {OLD_VERSION}; coatcheck needs memcached 1.6.10" in err
    assert "upgrade memcached" in err
