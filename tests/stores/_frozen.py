"""Private servers a test can freeze (SIGSTOP) and thaw (SIGCONT), and the time a failure takes.

A frozen server is the outage no timeout of the server's own can end: the kernel keeps its
connections open and still completes new handshakes, but nothing answers. Each server here
belongs to the module that started it (PostgreSQL and MariaDB in a throwaway data directory);
the shared servers are never stopped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from coatcheck.stores import AsyncStore, Store

from ._own_server import OwnServer, require_binaries

__all__ = ["TIMES", "FreezableServer", "fails_in_time", "freezable_server", "frozen"]

#: Time to the failure (or the 503) per store and flavour, as the freeze tests measured it;
#: printed at the end of the session (tests/stores/conftest.py).
TIMES: dict[str, float] = {}


class FreezableServer(OwnServer):
    """An :class:`OwnServer` that :meth:`freeze` stops with its children (PostgreSQL runs a
    process per connection) and :meth:`thaw` resumes."""

    def __init__(self, command: list[str], *, user: str | None = None) -> None:
        super().__init__(command)
        self._user = user
        self._frozen = False

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            user=self._user,
        )
        deadline = time.monotonic() + 20.0
        while not self.ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self._command[0]} did not start")
            time.sleep(0.05)

    def ready(self) -> bool:
        """Whether the server answers; a TCP handshake is not enough for the SQL servers."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def freeze(self) -> None:
        assert self._process is not None
        pids = self._signal(signal.SIGSTOP)  # the parent first: it forks no more children then
        self._frozen = True
        # A signal is delivered asynchronously: wait until every thread has stopped.
        deadline = time.monotonic() + 2.0
        while not all(_stopped(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.005)

    def thaw(self) -> None:
        if self._process is not None and self._frozen:
            self._signal(signal.SIGCONT)
        self._frozen = False

    def _signal(self, signum: int) -> list[int]:
        # The whole tree: PostgreSQL's children each call setsid(), so no group holds them.
        assert self._process is not None
        pids = [self._process.pid]
        os.kill(pids[0], signum)
        for pid in _children(pids[0]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
                pids.append(pid)
        return pids

    def stop(self) -> None:
        if self._process is not None:
            self.thaw()
            self._signal(signal.SIGKILL)
            self._process.wait(timeout=10)
            self._process = None


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (or the process is gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] not in ("T", "t"):
                    return False
    except FileNotFoundError:
        return True
    return True


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # pid (comm) state ppid ...: comm may hold spaces, so split after it.
                    ppid = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent:
                found.append(int(entry))
    return found


class _PostgreSQL(FreezableServer):
    def ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres").close()
        except psycopg.OperationalError:
            return False
        return True


class _MariaDB(FreezableServer):
    def ready(self) -> bool:
        import pymysql

        try:
            conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        except pymysql.err.OperationalError:
            return False
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS test")
        conn.close()
        return True


def _postgres_binary(name: str) -> str:
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    found = shutil.which(name) or (installed[-1] if installed else None)
    if found is None:
        require_binaries(name)  # skips, or fails under CI
    assert found is not None
    return found


@contextmanager
def freezable_server(kind: str) -> Iterator[FreezableServer]:
    """A private ``redis``, ``memcached``, ``postgresql`` or ``mysql`` (MariaDB) server."""
    root = os.geteuid() == 0
    server: FreezableServer
    with tempfile.TemporaryDirectory(prefix="coatcheck-frozen-") as scratch:
        if kind == "redis":
            require_binaries("redis-server")
            server = FreezableServer(
                ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", ""]
            )
        elif kind == "memcached":
            require_binaries("memcached")
            command = ["memcached", "-l", "127.0.0.1", "-p", "{port}", "-U", "0"]
            server = FreezableServer(command + (["-u", "nobody"] if root else []))
        elif kind == "postgresql":
            user = "postgres" if root else None
            os.chmod(scratch, 0o777)  # noqa: S103 - a throwaway directory the server user writes
            data = os.path.join(scratch, "data")
            initdb = [_postgres_binary("initdb"), "-D", data, "-A", "trust", "-U", "postgres"]
            subprocess.run([*initdb, "--no-sync"], check=True, capture_output=True, user=user)
            server = _PostgreSQL(
                [
                    _postgres_binary("postgres"),
                    "-D",
                    data,
                    "-p",
                    "{port}",
                    "-k",
                    scratch,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                user=user,
            )
        elif kind == "mysql":
            require_binaries("mariadbd", "mariadb-install-db")
            as_mysql = ["--user=mysql"] if root else []
            data = os.path.join(scratch, "data")
            if root:
                shutil.chown(scratch, "mysql")
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={data}",
                    *as_mysql,
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
            )
            server = _MariaDB(
                [
                    "mariadbd",
                    "--no-defaults",
                    f"--datadir={data}",
                    "--port={port}",
                    *as_mysql,
                    "--bind-address=127.0.0.1",
                    f"--socket={scratch}/sock",
                    "--skip-log-bin",
                    "--skip-grant-tables",
                    "--innodb-buffer-pool-size=16M",
                ]
            )
        else:
            raise ValueError(kind)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def frozen(server: FreezableServer) -> Iterator[None]:
    """The block runs with ``server`` frozen; it resumes after, whatever happens."""
    server.freeze()
    try:
        yield
    finally:
        server.thaw()


@contextmanager
def fails_in_time(name: str, store: Store | AsyncStore, *, under: float) -> Iterator[None]:
    """The block must fail with one of ``store``'s unavailable errors in under ``under``
    seconds; the time it took goes in :data:`TIMES` as ``name``."""
    started = time.monotonic()
    with pytest.raises(store.unavailable_errors):
        yield
    took = TIMES[name] = time.monotonic() - started
    assert took < under, f"{name}: {took:.2f} s, over {under} s"
