"""A TCP relay that counts round trips: client-to-server turns, whatever the protocol.

A turn starts when the client sends after the server last spoke (or first): everything a client
sends before it reads an answer is one turn, however many packets or statements it holds. Each
forwarded connection keeps its own state, so a pool's connections do not blur one another.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

__all__ = ["TurnCounter"]


class TurnCounter:
    """Forward ``127.0.0.1:<port>`` to ``target`` and count the turns in :attr:`turns`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.turns = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TurnCounter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        _shut(self._listener)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target, timeout=5)
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            # One flag per connection: did the client speak last?
            state = {"client_last": False}
            for args in ((client, server, state, True), (server, client, state, False)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, state: dict[str, bool], client: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if client and not state["client_last"]:
                        self.turns += 1
                    # Before forwarding: the peer can only answer after it has the data.
                    state["client_last"] = client
                sink.sendall(data)
        except OSError:
            pass
        _shut(source)
        _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
