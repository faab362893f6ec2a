"""A scripted SMTP server for the pool's tests: many connections, faults on cue.

Each connection runs a small SMTP server (EHLO with PIPELINING, MAIL, RCPT, DATA, NOOP,
RSET, QUIT) in its own thread; the test scripts the faults with hooks that see the
connection number (from 1) and what came before:

- ``greeting(conn)``: the greeting line (a ``421`` one closes the connection);
- ``mail(conn, n)``: the reply to the *n*-th MAIL on the connection (``421`` closes);
- ``rcpt(address, index, seen)``: the reply to a RCPT, *index* its place in the
  transaction, *seen* how many RCPTs for this address came before;
- ``end_of_data(conn, n, recipients)``: the reply after the content, or None to drop the
  connection without one;
- ``idle_drop(conn, n)``: True to close the connection after its *n*-th message (the
  server dropping an idle client).

What arrived is recorded: ``deliveries`` (connection, sender, recipients, content, time),
``rcpts``, ``connections``, ``noops``, ``quits``, and the most connections open at once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

OK = b"250 2.0.0 Ok\r\n"


@dataclass
class Delivery:
    conn: int
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    at: float


@dataclass
class FaultServer:
    greeting: Callable[[int], bytes] = lambda conn: b"220 faults.example ESMTP\r\n"
    mail: Callable[[int, int], bytes] = lambda conn, n: OK
    rcpt: Callable[[str, int, int], bytes] = lambda address, index, seen: OK
    end_of_data: Callable[[int, int, tuple[str, ...]], bytes | None] = lambda conn, n, recipients: (
        b"250 2.0.0 Ok: queued\r\n"
    )
    idle_drop: Callable[[int, int], bool] = lambda conn, n: False

    deliveries: list[Delivery] = field(default_factory=list)
    rcpts: list[tuple[int, str, bytes]] = field(default_factory=list)
    connections: int = 0
    noops: int = 0
    quits: int = 0
    open_now: int = 0
    most_open: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultServer:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for sock in list(self._socks):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(10)
        self._listener.close()
        if self.errors and t is None:
            raise self.errors[0]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
                self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, number), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, conn: int) -> None:
        sock.settimeout(10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        try:
            self._session(sock, reader, conn)
        except (OSError, ValueError):
            pass  # the client went away, or the test ended
        except BaseException as exc:  # an assertion in a hook: report it in the test
            self.errors.append(exc)
        finally:
            with self._lock:
                self.open_now -= 1
            reader.close()
            sock.close()

    def _session(self, sock: socket.socket, reader: object, conn: int) -> None:
        readline = reader.readline  # type: ignore[attr-defined]
        greeting = self.greeting(conn)
        sock.sendall(greeting)
        if greeting.startswith(b"421"):
            return
        messages = 0
        sender = ""
        recipients: list[str] = []
        rcpt_index = 0
        while True:
            line = readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                sock.sendall(b"250-faults.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"HELO":
                sock.sendall(b"250 faults.example\r\n")
            elif verb == b"MAIL":
                reply = self.mail(conn, messages + 1)
                sock.sendall(reply)
                if reply.startswith(b"421"):
                    return
                sender = line.split(b":", 1)[1].strip().split(b" ")[0].strip(b"<>").decode()
                recipients, rcpt_index = [], 0
            elif verb == b"RCPT":
                address = line.split(b":", 1)[1].strip().split(b" ")[0].strip(b"<>").decode()
                with self._lock:
                    seen = self._seen.get(address, 0)
                    self._seen[address] = seen + 1
                reply = self.rcpt(address, rcpt_index, seen)
                rcpt_index += 1
                self.rcpts.append((conn, address, reply))
                if reply.startswith(b"2"):
                    recipients.append(address)
                sock.sendall(reply)
            elif verb == b"DATA":
                if not recipients:
                    sock.sendall(b"554 5.5.1 no valid recipients\r\n")
                    continue
                sock.sendall(b"354 go ahead\r\n")
                content = b""
                while True:
                    piece = readline()
                    if not piece:
                        return
                    if piece == b".\r\n":
                        break
                    content += piece
                messages += 1
                reply = self.end_of_data(conn, messages, tuple(recipients))
                with self._lock:
                    self.deliveries.append(
                        Delivery(conn, sender, tuple(recipients), content, time.monotonic())
                    )
                if reply is None:
                    return  # dropped after the content: the client never hears
                sock.sendall(reply)
                if self.idle_drop(conn, messages):
                    return
            elif verb == b"NOOP":
                with self._lock:
                    self.noops += 1
                sock.sendall(OK)
            elif verb == b"RSET":
                recipients = []
                sock.sendall(OK)
            elif verb == b"QUIT":
                with self._lock:
                    self.quits += 1
                sock.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                sock.sendall(b"502 5.5.2 unknown command\r\n")

    def delivered_to(self, address: str) -> list[Delivery]:
        return [d for d in self.deliveries if address in d.recipients]
