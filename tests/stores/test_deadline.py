"""The watchdog behind PostgreSQLStore's statement deadline, on a socket pair (no server)."""

from __future__ import annotations

import socket
import time

from coatcheck.stores._deadline import Watchdog


def test_a_statement_past_its_deadline_has_its_socket_cut() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        dog = Watchdog(0.2)
        started = time.monotonic()
        token = dog.arm(ours.fileno())
        assert ours.recv(1) == b""  # woken by the cut: the end of the stream, no reply
        assert 0.15 < time.monotonic() - started < 1.0
        assert dog.disarm(token) is True  # so the caller closes the connection


def test_a_statement_that_ends_in_time_is_left_alone() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        dog = Watchdog(0.1)
        for _ in range(3):  # later statements while the thread sleeps out the first deadline
            token = dog.arm(ours.fileno())
            server.sendall(b"ok")
            assert ours.recv(2) == b"ok"
            assert dog.disarm(token) is False
        time.sleep(0.3)  # every deadline passed after its statement ended
        server.sendall(b"still")
        assert ours.recv(5) == b"still"
        ours.sendall(b"open")
        assert server.recv(4) == b"open"
