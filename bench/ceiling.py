"""Ceiling clients for bench/run.py: how fast could any Python client go on this machine?

``raw`` and ``raw-async`` are not SMTP clients.  They send pre-encoded bytes (MAIL, RCPT
and DATA pipelined in one write, then the content already in CRLF and dot-stuffed form),
count line feeds instead of parsing replies, and check nothing.  Whatever a real client
does costs time on top of them, so their ratios are an upper bound for smtpx:

- ``raw``: one blocking socket per connection (threads for several), like smtplib;
- ``raw-async``: asyncio with a ``Protocol`` whose ``data_received`` writes the next
  step itself, so no task is woken per reply: less event-loop work than any
  stream-based client.

Run them with ``--client raw raw-async``; they take the ``small`` and ``conns`` workloads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

WORKLOADS = ("small", "conns1", "conns8", "conns32")
CLIENTS = ("raw", "raw-async")


def _wire(sender: str, recipient: str, text: str) -> tuple[bytes, bytes]:
    """The pipelined command group and the encoded content of one message."""
    group = f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
    body = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    body = body.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return group, body + b".\r\n"


def _reply_done(buffer: bytes) -> bool:
    """A complete (possibly multiline) reply ends the buffer: set-up only, not timed."""
    if not buffer.endswith(b"\n"):
        return False
    last = buffer[:-1].rsplit(b"\n", 1)[-1]
    return last[3:4] in (b" ", b"\r", b"")


# --- blocking ---------------------------------------------------------------------------


class _RawConnection:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self._setup_reply()
        self.sock.sendall(b"EHLO bench.example.org\r\n")
        self._setup_reply()

    def _setup_reply(self) -> None:
        buffer = b""
        while not _reply_done(buffer):
            data = self.sock.recv(8192)
            if not data:
                raise ConnectionError("the server closed the connection")
            buffer += data

    def _lines(self, count: int) -> None:
        while count > 0:
            data = self.sock.recv(8192)
            if not data:
                raise ConnectionError("the server closed the connection")
            count -= data.count(b"\n")

    def send(self, group: bytes, content: bytes) -> None:
        self.sock.sendall(group)
        self._lines(3)
        self.sock.sendall(content)
        self._lines(1)

    def quit(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self._lines(1)
        self.sock.close()


def sync_run(host: str, workload: str, port: int, sz: dict[str, int], ctx: dict[str, Any]) -> int:
    wires = [_wire(ctx["sender"], "rcpt@example.org", m) for m in ctx["msgs"]]
    warm = ctx["warm"]
    if workload == "small":
        n = 20 if warm else sz["small_msgs"]
        c = _RawConnection(host, port)
        for i in range(n):
            c.send(*wires[i % len(wires)])
        c.quit()
        return n
    nconn = int(workload[5:])
    total = 4 * nconn if warm else sz["conns_msgs"]
    clients = [_RawConnection(host, port) for _ in range(nconn)]
    share = [total // nconn + (1 if k < total % nconn else 0) for k in range(nconn)]

    def worker(c: _RawConnection, count: int) -> None:
        for i in range(count):
            c.send(*wires[i % len(wires)])

    run_threads(ctx, worker, list(zip(clients, share, strict=True)))
    for c in clients:
        c.quit()
    return total


def run_threads(ctx: dict[str, Any], worker: Any, jobs: list[tuple[Any, int]]) -> None:
    """One thread per (connection, count) job, timed from the first start to the last
    join (``ctx["t0"]``, ``ctx["t1"]``); the first error in a thread is raised here."""
    errors: list[BaseException] = []

    def guarded(c: Any, count: int) -> None:
        try:
            worker(c, count)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=job) for job in jobs]
    ctx["t0"] = time.perf_counter()  # connections are open; time the sending
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctx["t1"] = time.perf_counter()
    if errors:
        raise errors[0]


# --- asyncio ----------------------------------------------------------------------------


class _RawProtocol(asyncio.Protocol):
    """Counts line feeds; when the replies a step waits for are in, writes the next step."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""  # set-up replies only
        self.waiter: asyncio.Future[None] | None = None
        self.wires: list[tuple[bytes, bytes]] = []
        self.left = 0  # messages still to send
        self.index = 0
        self.want = 0  # line feeds still due for the current step
        self.content_next = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.left:
            self.buffer += data  # greeting, EHLO, QUIT
            if _reply_done(self.buffer) and self.waiter and not self.waiter.done():
                self.buffer = b""
                self.waiter.set_result(None)
            return
        self.want -= data.count(b"\n")
        if self.want > 0:
            return
        assert self.transport is not None
        if self.content_next:  # MAIL, RCPT and DATA answered: the content
            self.content_next = False
            self.want = 1
            self.transport.write(self.wires[self.index % len(self.wires)][1])
            return
        self.index += 1
        self.left -= 1
        if self.left:
            self.start_message()
        elif self.waiter and not self.waiter.done():
            self.waiter.set_result(None)

    def start_message(self) -> None:
        assert self.transport is not None
        self.content_next = True
        self.want = 3
        self.transport.write(self.wires[self.index % len(self.wires)][0])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection lost"))

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def send_all(self, wires: list[tuple[bytes, bytes]], count: int) -> None:
        if not count:
            return
        self.wires, self.left, self.index = wires, count, 0
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.start_message()
        await waiter

    async def command(self, line: bytes) -> None:
        assert self.transport is not None
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(line)
        await waiter


async def _open(host: str, port: int) -> _RawProtocol:
    loop = asyncio.get_running_loop()
    protocol = _RawProtocol()
    protocol.waiter = loop.create_future()
    await loop.create_connection(lambda: protocol, host, port)
    await protocol.waiter  # greeting
    await protocol.command(b"EHLO bench.example.org\r\n")
    return protocol


async def _close(protocol: _RawProtocol) -> None:
    await protocol.command(b"QUIT\r\n")
    assert protocol.transport is not None
    protocol.transport.close()


async def async_run(
    host: str, workload: str, port: int, sz: dict[str, int], ctx: dict[str, Any]
) -> int:
    wires = [_wire(ctx["sender"], "rcpt@example.org", m) for m in ctx["msgs"]]
    warm = ctx["warm"]
    if workload == "small":
        n = 20 if warm else sz["small_msgs"]
        p = await _open(host, port)
        await p.send_all(wires, n)
        await _close(p)
        return n
    nconn = int(workload[5:])
    total = 4 * nconn if warm else sz["conns_msgs"]
    protocols = await asyncio.gather(*(_open(host, port) for _ in range(nconn)))
    share = [total // nconn + (1 if k < total % nconn else 0) for k in range(nconn)]
    ctx["t0"] = time.perf_counter()
    await asyncio.gather(*(p.send_all(wires, k) for p, k in zip(protocols, share, strict=True)))
    ctx["t1"] = time.perf_counter()
    for p in protocols:
        await _close(p)
    return total
