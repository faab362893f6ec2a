"""Bare pipelined clients for bench/rtt.py: the fewest round trips the RFCs allow.

Like ``bench/ceiling.py`` for loopback, these are not SMTP clients: they send pre-encoded
bytes and read nothing of the replies beyond the reply codes (a code of 4xx or 5xx stops
the run, so that a figure never comes from a refused exchange).  They set the floor a real
client's round trips per message are measured against, in the same run, on the same
server:

- ``data``: MAIL, RCPT and DATA in one write, then the content (RFC 2920): 2 round trips
  per message, the shape of one ``sendmail`` on a server without CHUNKING.
- ``pipe``: the same, but the end of each content goes in one write with the next
  message's MAIL, RCPT and DATA (RFC 2920 section 3.1): 1 round trip per message (plus
  one for the first group), the floor without CHUNKING for a client that knows the next
  message.
- ``bdat1``: MAIL, RCPT and ``BDAT n LAST`` with the content in one write (RFC 3030 with
  RFC 2920), one transaction at a time: 1 round trip per message.
- ``bdat8``: the same with 8 transactions in flight: a new one is written as soon as one
  is answered.

With ``quit`` the QUIT command goes in the write of the last message.  ``session`` is a
whole session at its floor: greeting, EHLO, then (with TLS) STARTTLS, the handshake,
EHLO and AUTH PLAIN with its initial response, each waited for; then MAIL, RCPT,
``BDAT n LAST`` with the content, and QUIT in one write.
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Sequence

__all__ = ["KINDS", "Bare", "encode"]

KINDS = ("data", "pipe", "bdat1", "bdat8")
READ_SIZE = 65536


def encode(text: str) -> bytes:
    """The content in CRLF, dot-stuffed form, without the final ``.`` line."""
    body = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    body = body.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body


class Bare:
    """One connection; ``send(kind, ...)`` runs one of the loops above."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.surplus = 0  # replies read beyond those asked for: the next ones' replies
        self.replies(1)  # greeting
        self.command(b"EHLO bench.example.org\r\n")
        if context is not None:
            self.command(b"STARTTLS\r\n")
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
            self.command(b"EHLO bench.example.org\r\n")
        if auth is not None:
            token = base64.b64encode(b"\0" + auth[0].encode() + b"\0" + auth[1].encode())
            self.command(b"AUTH PLAIN " + token + b"\r\n")

    def command(self, line: bytes) -> None:
        self.sock.sendall(line)
        self.replies(1)

    def replies(self, count: int) -> None:
        """Read ``count`` replies (a multiline reply counts once); raise on 4xx/5xx."""
        count -= self.surplus
        while count > 0:
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                if line[3:4] == b"-":
                    continue  # a continuation line
                if line[:1] not in (b"2", b"3"):
                    raise RuntimeError(f"the server refused: {line!r}")
                count -= 1
        self.surplus = -count

    def close(self) -> None:
        self.sock.close()

    # --- the loops: envelope (MAIL + RCPT lines) and encoded content per message --------

    def send(
        self,
        kind: str,
        envelopes: Sequence[bytes],
        contents: Sequence[bytes],
        count: int,
        *,
        quit: bool = False,
    ) -> None:
        """Send ``count`` messages (cycling through ``envelopes``/``contents``)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        n = len(envelopes)
        quit_line = b"QUIT\r\n" if quit else b""
        if kind == "data":
            for i in range(count):
                self.sock.sendall(envelopes[i % n] + b"DATA\r\n")
                self.replies(2 + 1)
                last = i == count - 1
                self.sock.sendall(contents[i % n] + b".\r\n" + (quit_line if last else b""))
                self.replies(1 + (quit and last))
        elif kind == "pipe":
            self.sock.sendall(envelopes[0] + b"DATA\r\n")
            self.replies(2 + 1)
            for i in range(count):
                if i + 1 < count:
                    after, want = envelopes[(i + 1) % n] + b"DATA\r\n", 1 + 3
                else:
                    after, want = quit_line, 1 + quit
                self.sock.sendall(contents[i % n] + b".\r\n" + after)
                self.replies(want)
        else:
            window = 1 if kind == "bdat1" else 8
            wires = [
                envelopes[k] + b"BDAT %d LAST\r\n" % len(contents[k]) + contents[k]
                for k in range(n)
            ]
            sent = done = 0
            while done < count:
                batch = []
                while sent < count and sent - done < window:
                    batch.append(wires[sent % n])
                    sent += 1
                if batch:
                    if sent == count:
                        batch.append(quit_line)
                    self.sock.sendall(b"".join(batch))
                self.replies(3)  # MAIL, RCPT and BDAT of the oldest in flight
                done += 1
                # Replies already read for later transactions: they are done too, and
                # their successors go out in one write.
                more = min(self.surplus // 3, count - done)
                done += more
                self.surplus -= 3 * more
            if quit:
                self.replies(1)
        if quit:
            self.sock.close()


def envelope(sender: str, recipient: str) -> bytes:
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\n".encode()
