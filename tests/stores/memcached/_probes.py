"""What the MemcachedStore tests look through: a relay that counts round trips, and records
without the store's handle."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable

from coatcheck.stores import Record

__all__ = ["CountingRelay", "async_trips", "plain", "trips"]


def plain(record: object) -> tuple[object, ...]:
    """A loaded record's payload, version and times, without the store's handle."""
    assert isinstance(record, Record)
    return tuple(record[:4])


class CountingRelay:
    """A TCP relay to memcached that counts round trips: client turns the server answered.

    A turn is everything a client sends before the server answers; it is counted, with the first
    word it sent (``gets``, ``ms``, ``add``...), when the answer starts, which is before the
    client can have read it: when an operation returns, its turns are all counted.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.sent: list[str] = []
        self.connections = 0
        self.open = 0
        self._sockets: list[socket.socket] = []
        self.replying = threading.Event()  # clear it to hold the server's replies back
        self.replying.set()
        self.requested = threading.Event()  # set whenever a client sends something
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target)
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open += 1
                self._sockets += [client, upstream]
            turn: list[bytes] = []  # what the client sent since the server last answered
            for src, dst, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, turn, from_client), daemon=True
                ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, turn: list[bytes], from_client: bool
    ) -> None:
        try:
            while chunk := src.recv(1 << 16):
                if not from_client:
                    self.replying.wait()
                with self._lock:
                    if from_client:
                        self.requested.set()
                        turn.append(chunk)
                    elif turn:
                        self.sent.append(b"".join(turn).split(None, 1)[0].decode())
                        turn.clear()
                dst.sendall(chunk)
        except OSError:
            pass
        if from_client:
            with self._lock:
                self.open -= 1
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def since(self, mark: int) -> list[str]:
        """The commands of the round trips after ``mark`` (a length of :attr:`sent`)."""
        with self._lock:
            return self.sent[mark:]

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def trips(relay: CountingRelay, operation: Callable[[], object]) -> list[str]:
    """The commands ``operation`` sent, one per round trip."""
    mark = len(relay.sent)
    operation()
    return relay.since(mark)


async def async_trips(
    relay: CountingRelay, operation: Callable[[], Awaitable[object]]
) -> list[str]:
    mark = len(relay.sent)
    await operation()
    return relay.since(mark)
