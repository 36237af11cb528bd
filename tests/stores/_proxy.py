"""A TCP forwarder a test can switch off and on, to simulate an outage of a shared server.

Stopping it drops every forwarded connection and refuses new ones, as a crashed server would;
starting it listens on the same port again. The real server never notices anything but a
client going away, so no test ever stops a service other tests share.

It also counts round trips in :attr:`TCPProxy.turns`, whatever the protocol: a turn starts
when a client sends after the server last spoke (or first), so everything a client sends
before it reads an answer is one turn, however many packets or statements it holds. Each
forwarded connection keeps its own state, so a pool's connections do not blur one another.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

__all__ = ["TCPProxy"]


class TCPProxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` until :meth:`stop`; :meth:`start` resumes."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        #: Client-to-server turns over every connection so far (see the module docstring).
        self.turns = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()

    def __enter__(self) -> TCPProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen (again) on :attr:`port`."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        """Refuse new connections and cut every open one, both ways."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _shut(listener)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
            threads, self._threads = self._threads, []
        for sock in sockets:
            _shut(sock)
        for thread in threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
            # One flag per connection: did the client speak last?
            state = {"client_last": False}
            self._spawn(self._pump, client, server, state, True)
            self._spawn(self._pump, server, client, state, False)

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
    # shutdown() wakes a thread blocked in recv() on the same socket; close() alone may not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
