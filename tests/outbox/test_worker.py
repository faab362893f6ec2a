"""Workers against the embedded server (``smtpx.testing.SinkServer``): blocking and
asyncio, a server down for a while, and real SIGKILLs of a worker process at the two
moments that matter (before the content went, and after it went but before the record)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import smtpx
from smtpx.outbox import Outbox, RetryPolicy, Schedule
from smtpx.testing import SinkServer

SRC = str(Path(smtpx.__file__).resolve().parents[1])
FAST = RetryPolicy(
    default=Schedule(first=0.2, factor=2.0, maximum=0.8),
    schedules={"connection": Schedule(first=0.2, factor=2.0, maximum=0.8)},
    jitter=0.1,
)
BAD = "bad@example.org"


def body(n: int) -> bytes:
    return f"Subject: outbox-{n}\r\n\r\nmessage {n}\r\n".encode()


def copies(server: SinkServer) -> Counter[tuple[str, str]]:
    """(subject, recipient) -> how many times the server received it."""
    found: Counter[tuple[str, str]] = Counter()
    for m in server.messages:
        subject = m.content.split(b"\r\n", 2)[1].decode()
        for rcpt in m.rcpt_tos:
            found[subject, rcpt] += 1
    return found


@pytest.fixture
def server() -> Iterator[SinkServer]:
    with SinkServer(refuse_at_rcpt=[BAD]) as sink:
        yield sink


def url(server: SinkServer) -> str:
    return f"smtp://{server.host}:{server.port}"


@pytest.mark.parametrize("front", ["sync", "async"])
def test_a_worker_drains_the_outbox_into_the_server(
    tmp_path: Path, server: SinkServer, front: str
) -> None:
    with Outbox(tmp_path / "o.db", policy=FAST) as outbox:
        items = [(body(n), "a@example.org", ["b@example.org", "c@example.org"]) for n in range(40)]
        items[7] = (body(7), "a@example.org", ["b@example.org", BAD])
        ids = outbox.put_many(items)
        if front == "sync":
            report = outbox.run(url=url(server), policy="compat", batch_size=15, timeout=10)
        else:
            report = asyncio.run(
                outbox.arun(url=url(server), policy="compat", batch_size=15, timeout=10)
            )
        assert report.batches == 3 and report.attempts == 40
        assert report.recipients == {"delivered": 79, "refused": 1}
        assert outbox.counts() == {"delivered": 39, "refused": 1}
        got = copies(server)
        assert len(got) == 79 and set(got.values()) == {1}
        assert ("Subject: outbox-7", BAD) not in got
        info = outbox.show(ids[7])
        assert [r.state for r in info.recipients] == ["delivered", "refused"]
        assert info.recipients[1].code == 550 and info.recipients[1].enhanced == "5.1.1"
        # The Message-ID the outbox gave is the one the server received.
        received = {m.content.split(b"\r\n", 1)[0] for m in server.messages}
        assert f"Message-ID: {outbox.show(ids[0]).message_id}".encode() in received


class Proxy:
    """A TCP forwarder started late: the server is "down" until it listens."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens here until start()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=10)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()


def test_a_server_down_for_a_while_defers_backs_off_then_delivers(
    tmp_path: Path, server: SinkServer
) -> None:
    proxy = Proxy((server.host, server.port))
    target = f"smtp://127.0.0.1:{proxy.port}"
    try:
        with Outbox(tmp_path / "o.db", policy=FAST) as outbox:
            ids = outbox.put_many([(body(n), "a@example.org", ["b@example.org"]) for n in range(5)])
            waits = []
            for _ in range(3):  # down: every attempt is deferred, each wait longer
                report = outbox.run(url=target, policy="compat", timeout=5)
                assert report.recipients == {"deferred": 5}
                info = outbox.show(ids[0])
                assert info.state == "deferred"
                waits.append(info.next_attempt - info.history[-1].finished)
                # Until every message is due again: each has its own jitter (up to 10%
                # longer than the first one's wait), so waiting for ids[0] is not enough.
                latest = max(outbox.show(i).next_attempt for i in ids)
                time.sleep(max(0.0, latest - time.time()) + 0.05)
            assert 0.18 <= waits[0] <= 0.22 and 0.36 <= waits[1] <= 0.44
            assert 0.72 <= waits[2] <= 0.88
            proxy.start()
            report = outbox.run(
                url=target, policy="compat", timeout=5, wait_deferred=True, duration=20
            )
            assert outbox.counts() == {"delivered": 5}
            history = outbox.show(ids[0]).history
            assert [a.outcome for a in history] == ["not_attempted"] * 3 + ["sent"]
            assert (history[0].text or "").startswith("not sent: ")
        assert set(copies(server).values()) == {1} and len(copies(server)) == 5
    finally:
        proxy.stop()


WORKER = """
import os, signal, sys
from smtpx.outbox import Outbox, ConnectionSender

path, url, when = sys.argv[1], sys.argv[2], sys.argv[3]
inner = ConnectionSender(url, policy="compat", timeout=10)

def seam(items):
    if when == "before":
        os.kill(os.getpid(), signal.SIGKILL)  # claimed, nothing pulled, nothing sent
    entries = inner(items)  # the server has everything: it answered 250
    if when == "after":
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the worker dies before the record
    return entries

with Outbox(path) as box:
    box.run(seam, lease=1.0)
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_worker_killed_by_sigkill(tmp_path: Path, server: SinkServer, when: str) -> None:
    """Before the content: the lease expires and the messages go once.  After it: the
    messages are held as outcome unknown, never resent (the server has one copy)."""
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        ids = outbox.put_many([(body(n), "a@example.org", ["b@example.org"]) for n in range(12)])
    killed = subprocess.run(
        [sys.executable, "-c", WORKER, str(path), url(server), when],
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
    )
    assert killed.returncode == -9
    with Outbox(path) as outbox:
        assert outbox.counts() == {"in_flight": 12}
        time.sleep(1.1)  # the lease runs out
        outbox.run(url=url(server), policy="compat", timeout=10)
        states = Counter(outbox.show(m).state for m in ids)
        if when == "before":
            assert states == {"delivered": 12}
        else:
            assert states == {"outcome_unknown": 12}
            assert outbox.show(ids[0]).history[-1].outcome == "lease_expired"
    got = copies(server)
    assert len(got) == 12 and set(got.values()) == {1}
