"""Counting what a store operation costs on the wire: round trips, SQL statements, fsyncs.

The store benchmark builds a second store and raw floor pointed at a :class:`RelayCounter`, a
TCP relay that records each client turn (everything the client sends before the server
answers: one round trip, whatever driver, pool or script is behind it) and names the commands
in it by decoding enough of the protocol (GET, EVALSHA, gets, cas, SELECT, UPDATE, ...). For
SQLite a :class:`ListCounter` collects the statements a trace callback sees, for the file store
the ``os.fsync`` calls (:func:`counting_fsyncs`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

__all__ = ["Counter", "ListCounter", "RelayCounter", "counting_fsyncs", "first_word"]


def first_word(sql: bytes) -> str:
    words = sql.split(None, 1)
    return words[0].split(b"(", 1)[0].decode("ascii", "replace").upper() if words else "?"


class _Decoder:
    """Names the commands in one client turn of a protocol; ``?`` when it cannot tell."""

    def __call__(self, data: bytes) -> list[str]:
        try:
            return self.decode(data) or ["?"]
        except (ValueError, IndexError, UnicodeDecodeError):
            return ["?"]

    def decode(self, data: bytes) -> list[str]:
        raise NotImplementedError


class _RedisDecoder(_Decoder):
    def decode(self, data: bytes) -> list[str]:
        out, i = [], 0
        while i < len(data) and data[i : i + 1] == b"*":
            j = data.index(b"\r\n", i)
            count, i = int(data[i + 1 : j]), j + 2
            args = []
            for _ in range(count):
                j = data.index(b"\r\n", i)
                size, i = int(data[i + 1 : j]), j + 2
                args.append(data[i : i + size])
                i += size + 2
            out.append(args[0].decode().upper())
        return out


class _MemcachedDecoder(_Decoder):
    STORAGE = frozenset({"set", "add", "replace", "append", "prepend", "cas"})

    def decode(self, data: bytes) -> list[str]:
        out, i = [], 0
        while (j := data.find(b"\r\n", i)) >= 0:
            words, i = data[i:j].split(), j + 2
            if words:
                command = words[0].decode()
                out.append(command)
                if command in self.STORAGE:
                    i += int(words[4]) + 2  # skip the data block
                elif command == "ms":  # meta set: ms <key> <datalen> <flags>*
                    i += int(words[2]) + 2
        return out


class _MySQLDecoder(_Decoder):
    COMMANDS: ClassVar[dict[int, str]] = {
        1: "QUIT",
        14: "PING",
        22: "STMT_PREPARE",
        23: "STMT_EXECUTE",
    }

    def decode(self, data: bytes) -> list[str]:
        out, i = [], 0
        while i + 4 <= len(data):
            size = int.from_bytes(data[i : i + 3], "little")
            payload, i = data[i + 4 : i + 4 + size], i + 4 + size
            if payload:
                command = payload[0]
                out.append(
                    first_word(payload[1:])
                    if command == 3  # COM_QUERY
                    else self.COMMANDS.get(command, f"cmd{command}")
                )
        return out


class _PostgreSQLDecoder(_Decoder):
    """Simple queries name themselves; a Bind names the statement its Parse (maybe long ago) had."""

    def __init__(self) -> None:
        self.statements: dict[bytes, str] = {}
        self.started = False

    def decode(self, data: bytes) -> list[str]:
        if not self.started:  # SSLRequest / StartupMessage have no type byte
            self.started = int.from_bytes(data[4:8], "big") == 196608
            return ["connect"]
        out, i, parsed = [], 0, ""
        while i + 5 <= len(data):
            kind, size = data[i : i + 1], int.from_bytes(data[i + 1 : i + 5], "big")
            body, i = data[i + 5 : i + 1 + size], i + 1 + size
            if kind == b"Q":
                out.append(first_word(body))
            elif kind == b"P":
                name, rest = body.split(b"\0", 1)
                self.statements[name] = parsed = first_word(rest.split(b"\0", 1)[0])
            elif kind == b"B":
                statement = body.split(b"\0", 2)[1]
                out.append(self.statements.get(statement, "?"))
                parsed = ""
            elif kind == b"X":
                out.append("Terminate")
        if parsed:  # a Parse on its own: psycopg preparing a statement it has run 5 times
            out.append(f"prepare {parsed}")
        return out


DECODERS: dict[str, Callable[[], _Decoder]] = {
    "redis": _RedisDecoder,
    "memcached": _MemcachedDecoder,
    "mysql": _MySQLDecoder,
    "postgresql": _PostgreSQLDecoder,
}


class Counter:
    """Counts what an operation costs: ``mark()`` before, ``since(mark)`` after."""

    unit = ""

    def mark(self) -> int:
        return 0

    def since(self, mark: int) -> list[str]:
        """One label per round trip (statement, fsync) since ``mark``."""
        return []

    def close(self) -> None:
        return None


class _Turn:
    __slots__ = ("client_turn", "decoder", "pending")

    def __init__(self, decoder: _Decoder) -> None:
        self.decoder = decoder
        self.client_turn = False
        self.pending = bytearray()


class RelayCounter(Counter):
    """A TCP relay to a server that records every client turn, named by the protocol decoder.

    A turn is what the client sends before the server answers: one round trip, however many
    commands it pipelines. It is recorded when the answer starts, which is before the client
    can have read it, so an operation's turns are all recorded when it returns.
    """

    unit = "round trips"

    def __init__(self, target: tuple[str, int], protocol: str) -> None:
        self._target = target
        self._decoder = DECODERS[protocol]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._turns: list[str] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target)
            except OSError:
                return
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            turn = _Turn(self._decoder())
            for src, dst, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, turn, from_client), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, turn: _Turn, from_client: bool) -> None:
        try:
            while chunk := src.recv(1 << 16):
                with self._lock:
                    if from_client:
                        turn.client_turn = True
                        turn.pending += chunk
                    elif turn.client_turn:
                        turn.client_turn = False
                        self._turns.append("+".join(turn.decoder(bytes(turn.pending))))
                        turn.pending.clear()
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def mark(self) -> int:
        with self._lock:
            return len(self._turns)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self._turns[mark:]

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()


class ListCounter(Counter):
    """Counts the labels appended to ``events`` (SQL statements, fsync calls)."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.events: list[str] = []

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int) -> list[str]:
        return self.events[mark:]

    def trace(self, sql: str) -> None:
        """A ``sqlite3`` trace callback: counts the statement by its first word."""
        self.events.append(first_word(sql.encode()))


@contextmanager
def counting_fsyncs(counter: ListCounter) -> Iterator[None]:
    """Count ``os.fsync`` calls (the file store calls it as ``os.fsync``)."""
    real = os.fsync

    def fsync(fd: Any) -> None:
        counter.events.append("fsync")
        real(fd)

    os.fsync = fsync
    try:
        yield
    finally:
        os.fsync = real
