"""A delay proxy: a TCP relay on loopback that holds every chunk for RTT/2 in each direction.

A client that connects to the proxy is relayed to one upstream server.  Every chunk read
from either side is written to the other side ``rtt / 2`` seconds after it was read, in
the order it was read, so one request and its reply cost one round trip (``rtt``) on top
of what loopback costs.  End of stream is relayed the same way (half-close: a client that
shuts down its sending side still gets the replies), and the relayed connection closes
once both directions have ended or either side is lost.

What it does not model: bandwidth (only latency), packet loss, and the TCP handshake.
``connect()`` to the proxy returns at once and the greeting arrives RTT/2 later; on a real
network a client waits about 1.5 RTT more (SYN, SYN-ACK, and the ACK that lets the server
accept).  ``connect_delay`` holds the upstream connection for that long if wanted.

The event loop uses ``select(2)``, whose timeout is a ``timeval`` (microseconds): with
epoll, asyncio's timers are rounded up to whole milliseconds, which would add up to 1 ms
to every hop of a 10 ms hold.  ``select`` is limited to file descriptors below 1024,
plenty for a benchmark.

In-process use (the relay runs in a background thread with its own event loop)::

    with DelayProxy(("127.0.0.1", 2525), rtt=0.020) as proxy:
        smtplib.SMTP("127.0.0.1", proxy.port)

From the command line (runs until Ctrl-C)::

    python bench/proxy.py --rtt 20 127.0.0.1:2525 --listen 127.0.0.1:2526
    python bench/proxy.py --rtt 20 --self-check     # echo round trips through the proxy
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import selectors
import signal
import socket
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["DelayProxy", "echo_round_trips", "new_event_loop"]

HOST = "127.0.0.1"
# How long a started proxy may take to listen, and a stopped one to shut down.
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
# Self-check: how far the median echo round trip may sit above the nominal RTT.
SELF_CHECK_SLACK = 0.10  # 10 %: loopback, two relay hops and a Python echo server


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire to the microsecond (see the module docstring)."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


class _Side(asyncio.Protocol):
    """One of the two connections of a relayed pair.

    What this side reads goes into its peer's ``outbox`` and leaves through the peer's
    transport ``delay`` seconds later.  The outbox is a FIFO popped by each timer, so the
    order holds whatever order the timers run in.  ``None`` in an outbox is end of stream.
    """

    def __init__(self, relay: _Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.outbox: deque[bytes | None] = deque()
        self.eof_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self is self.relay.client:
            self.relay.accepted()

    def data_received(self, data: bytes) -> None:
        self._forward(data)

    def eof_received(self) -> bool:
        self._forward(None)
        return True  # keep our own sending side open: the other direction still flows

    def connection_lost(self, exc: Exception | None) -> None:
        # Lost (reset, or closed by us): the peer is closed once what it still holds for
        # the wire has left, RTT/2 from now, as a real network would deliver it.
        self.relay.loop.call_later(self.relay.delay, self.relay.close)

    # Flow control: when a side's socket buffer is full, stop reading from its peer.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def _forward(self, item: bytes | None) -> None:
        peer = self.peer
        assert peer is not None  # reading starts only once both sides are linked
        trace = self.relay.proxy.trace
        if trace is not None:
            trace.append((self.relay.loop.time(), "C" if self is self.relay.client else "S", item))
        peer.outbox.append(item)
        loop = self.relay.loop
        loop.call_at(loop.time() + self.relay.delay, peer._emit)

    def _emit(self) -> None:
        item = self.outbox.popleft()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if item is not None:
            transport.write(item)
            return
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone (reset): nothing more to relay
                self.relay.close()
                return
        self.eof_sent = True
        if self.peer is not None and self.peer.eof_sent:
            self.relay.close()  # both directions ended


class _Relay:
    """A client connection and its upstream connection."""

    def __init__(self, proxy: DelayProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.delay = proxy.rtt / 2
        self.proxy = proxy
        self.client = _Side(self)
        self.upstream = _Side(self)
        self.client.peer, self.upstream.peer = self.upstream, self.client
        self.closed = False

    def accepted(self) -> None:
        """The client is connected: connect upstream, reading nothing from it until then."""
        assert self.client.transport is not None
        self.client.transport.pause_reading()
        self.proxy._relays.add(self)
        task = self.loop.create_task(self._connect())
        self.proxy._tasks.add(task)
        task.add_done_callback(self.proxy._tasks.discard)

    async def _connect(self) -> None:
        try:
            if self.proxy.connect_delay:
                await asyncio.sleep(self.proxy.connect_delay)
            host, port = self.proxy.upstream
            await self.loop.create_connection(lambda: self.upstream, host, port)
        except OSError:
            self.close()
            return
        if self.client.transport is not None and not self.client.transport.is_closing():
            self.client.transport.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy._relays.discard(self)
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.close()  # what is buffered is still written first


class DelayProxy:
    """Relay ``host:port`` (0: any free port) to ``upstream``, adding ``rtt`` seconds of
    round-trip time: every chunk is held ``rtt / 2`` in each direction.

    >>> with DelayProxy(("127.0.0.1", 2525), rtt=0.02) as proxy:  # doctest: +SKIP
    ...     print(proxy.port)
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        rtt: float,
        *,
        host: str = HOST,
        port: int = 0,
        connect_delay: float = 0.0,
        trace: list[tuple[float, str, bytes | None]] | None = None,
    ) -> None:
        if rtt < 0 or connect_delay < 0:
            raise ValueError("rtt and connect_delay must not be negative")
        self.upstream = upstream
        self.rtt = rtt
        self.host = host
        self.port = port
        self.connect_delay = connect_delay
        #: When a list: every chunk read, as (loop.time(), "C" from a client or "S" from
        #: upstream, the bytes or None for end of stream), for transcripts.
        self.trace = trace
        self._server: asyncio.Server | None = None
        self._relays: set[_Relay] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- in a running event loop -------------------------------------------------------

    async def serve(self) -> int:
        """Start listening in the running loop; returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Relay(self, loop).client, self.host, self.port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def aclose(self) -> None:
        """Stop listening and close every relayed connection."""
        if self._server is not None:
            self._server.close()
        for relay in list(self._relays):
            relay.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- in a background thread ----------------------------------------------------------

    def start(self) -> int:
        """Run the proxy in a thread of its own; returns the port once it listens."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = self._loop = new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.serve())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self.aclose())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the delay proxy did not listen within {START_TIMEOUT} s")
        if failure:
            self._thread = None
            raise failure[0]
        return self.port

    def stop(self) -> None:
        """Stop a proxy started with ``start()``."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- self-check: a no-op echo through the proxy costs one RTT ----------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close


def echo_round_trips(rtt: float, count: int = 20) -> list[float]:
    """Seconds taken by each of ``count`` one-byte echo round trips through a proxy of
    ``rtt``, measured from a blocking socket in this thread (the proxy and the echo server
    run in a background thread).  Each should be ``rtt`` plus a fraction of a millisecond.
    """
    loop = new_event_loop()
    ready = threading.Event()
    ports: list[int] = []

    async def serve_echo() -> asyncio.Server:
        return await loop.create_server(_Echo, HOST, 0)

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve_echo())
        ports.append(int(server.sockets[0].getsockname()[1]))
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, name="echo", daemon=True)
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError("the echo server did not start")
        with DelayProxy((HOST, ports[0]), rtt) as proxy:
            times = []
            with socket.create_connection((HOST, proxy.port), timeout=5 + 10 * rtt) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(count + 1):  # the first one warms up
                    start = time.perf_counter()
                    sock.sendall(b"x")
                    if sock.recv(16) != b"x":
                        raise RuntimeError("the echo through the proxy came back wrong")
                    times.append(time.perf_counter() - start)
                # Order: a burst of numbered chunks comes back as it went (each chunk is
                # its own timer in each direction).
                burst = [b"%05d;" % k for k in range(200)]
                for chunk in burst:
                    sock.sendall(chunk)
                # Half-close: the proxy relays our end of stream, the echo server closes,
                # and that end of stream comes back after the echoed burst.
                sock.shutdown(socket.SHUT_WR)
                echoed = b""
                while data := sock.recv(65536):
                    echoed += data
                if echoed != b"".join(burst):
                    raise RuntimeError("the proxy reordered or lost data, or lost end of stream")
            return times[1:]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)


def self_check(rtt: float, count: int = 20, out: Callable[[str], object] = print) -> bool:
    """Print the echo round trips through a proxy of ``rtt``; true if the median is within
    ``SELF_CHECK_SLACK`` of it (and never below)."""
    times = echo_round_trips(rtt, count)
    median = statistics.median(times)
    ok = rtt <= median <= rtt * (1 + SELF_CHECK_SLACK) + 0.0005
    out(
        f"echo through the delay proxy ({rtt * 1000:g} ms RTT): median "
        f"{median * 1000:.2f} ms, min {min(times) * 1000:.2f}, max {max(times) * 1000:.2f} "
        f"over {len(times)} round trips: {'ok' if ok else 'OUT OF RANGE'}"
    )
    return ok


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or HOST, int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("upstream", nargs="?", type=_address, help="HOST:PORT to relay to")
    ap.add_argument("--rtt", type=float, default=20.0, help="round-trip time to add, ms")
    ap.add_argument(
        "--listen", type=_address, default=(HOST, 0), help="HOST:PORT (default: a free port)"
    )
    ap.add_argument("--connect-delay", type=float, default=0.0, help="hold connects, ms")
    ap.add_argument("--self-check", action="store_true", help="echo round trips and exit")
    args = ap.parse_args(argv)
    rtt = args.rtt / 1000
    if args.self_check:
        return 0 if self_check(rtt) else 1
    if args.upstream is None:
        ap.error("give the upstream HOST:PORT (or --self-check)")
    proxy = DelayProxy(
        args.upstream,
        rtt,
        host=args.listen[0],
        port=args.listen[1],
        connect_delay=args.connect_delay / 1000,
    )

    async def run() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        port = await proxy.serve()
        print(
            f"relaying {proxy.host}:{port} -> {args.upstream[0]}:{args.upstream[1]}, "
            f"+{args.rtt:g} ms RTT; Ctrl-C stops",
            flush=True,
        )
        await stop.wait()
        await proxy.aclose()

    loop = new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
