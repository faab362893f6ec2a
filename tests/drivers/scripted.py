"""A scripted loopback server: a handler function plays the server's side, line by line.

Tests write the server half of a conversation as plain code (read a line, check it, send
bytes), so every deliberate difference can be shown against exact bytes on the wire.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Peer:
    """The server's view of one connection."""

    sock: socket.socket
    received: list[bytes] = field(default_factory=list)
    _buffer: bytes = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        """One line, CRLF included; b"" when the client closed."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        line += b"\n"
        self.received.append(line)
        return line

    def expect(self, prefix: bytes) -> bytes:
        """Read a line and check that it starts with *prefix* (case-insensitive)."""
        line = self.readline()
        assert line.lower().startswith(prefix.lower()), (line, prefix)
        return line

    def read_content(self) -> bytes:
        """The DATA content up to and including the terminator line."""
        content = b""
        while not content.endswith(b"\r\n.\r\n"):
            line = self.readline()
            if not line:
                break
            content += line
        return content

    def starttls(self, context: ssl.SSLContext) -> None:
        assert not self._buffer, "client sent bytes before the TLS handshake"
        self.sock = context.wrap_socket(self.sock, server_side=True)

    def greet_and_ehlo(self, *extensions: bytes) -> None:
        """Greeting, then answer EHLO offering *extensions*."""
        self.send(b"220 test.example ESMTP\r\n")
        self.expect(b"ehlo ")
        lines = [b"test.example", *extensions]
        reply = b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1]
        self.send(reply + b"\r\n")


@contextmanager
def scripted_server(
    handler: Callable[[Peer], None], *, wrap: ssl.SSLContext | None = None
) -> Iterator[tuple[int, list[Peer]]]:
    """Run *handler* for one connection on an ephemeral loopback port.

    Yields the port and a list that holds the Peer once connected.  Errors in the handler
    (failed asserts on what the client sent) are raised in the test when the block ends.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    peers: list[Peer] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            errors.append(exc)
            return
        conn.settimeout(10)
        try:
            if wrap is not None:
                conn = wrap.wrap_socket(conn, server_side=True)
            peer = Peer(conn)
            peers.append(peer)
            handler(peer)
        except BaseException as exc:
            errors.append(exc)
        finally:
            (peers[0].sock if peers else conn).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, peers
    finally:
        thread.join(15)
        listener.close()
    if errors:
        raise errors[0]
