"""A loopback TCP relay to a real server that can drop its connections on demand.

A server closes a client that stays idle too long (Postfix: ``421 4.4.2 ... Error: timeout
exceeded`` after ``smtpd_timeout``, 300 s).  ``drop_all()`` does that at once: each open
connection gets that reply (as the server would send it) and is closed, so a test sees the
drop without waiting minutes.  ``connections`` counts the connections made through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

__all__ = ["Relay"]

IDLE_CLOSE = b"421 4.4.2 localhost.test Error: timeout exceeded\r\n"
CHUNK = 65536
ACCEPT_TIMEOUT = 0.2  # seconds: how often the accept loop checks for stop()


class Relay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(ACCEPT_TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.connections = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Self:
        self._accepter.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._accepter.join(5)
        self.drop_all(reply=b"")
        self.listener.close()
        for thread in self._threads:
            thread.join(5)

    def drop_all(self, reply: bytes = IDLE_CLOSE) -> int:
        """Close every relayed connection, after sending *reply* to the client."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server in pairs:
            with contextlib.suppress(OSError):
                if reply:
                    client.sendall(reply)
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        return len(pairs)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.upstream, timeout=10)
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._pairs.append((client, server))
            for source, target in ((client, server), (server, client)):
                thread = threading.Thread(target=self._pump, args=(source, target), daemon=True)
                thread.start()
                self._threads.append(thread)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
