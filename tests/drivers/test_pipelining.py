"""PIPELINING (RFC 2920) in ``sendmail``: one write for MAIL, every RCPT and DATA, and
exactly smtplib's outcomes.  Each scenario runs twice against the same scripted replies:
smtplib on a server that does not offer PIPELINING (step by step), smtpx on one that does;
the return value or exception and whether the connection is still open must agree."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import smtpx

from .scripted import Peer, scripted_server


@dataclass(frozen=True)
class Scenario:
    name: str
    mail: bytes
    rcpts: tuple[bytes, ...]
    data: bytes
    final: bytes = b"250 2.0.0 queued"


SCENARIOS = [
    Scenario("all accepted", b"250 ok", (b"250 ok", b"251 forwarded"), b"354 go"),
    Scenario("one refused", b"250 ok", (b"250 ok", b"550 5.1.1 unknown"), b"354 go"),
    Scenario("sender refused", b"550 5.7.1 no", (b"503 5.5.1 no sender",) * 2, b"554 no"),
    Scenario("sender 421", b"421 4.3.2 bye", (), b""),
    Scenario("all refused", b"250 ok", (b"550 unknown", b"553 bad"), b"554 5.5.1 no rcpt"),
    Scenario("rcpt 421", b"250 ok", (b"250 ok", b"421 4.3.2 bye"), b""),
    Scenario("data refused", b"250 ok", (b"250 ok", b"250 ok"), b"451 4.3.0 later"),
    Scenario("final refused", b"250 ok", (b"250 ok",) * 2, b"354 go", b"552 5.3.4 too big"),
    Scenario("final 421", b"250 ok", (b"250 ok",) * 2, b"354 go", b"421 4.3.2 bye"),
]
RECIPIENTS = ["a@example.test", "b@example.test"]


def _handler(scenario: Scenario, offer: bytes, writes: list[bytes]):  # type: ignore[no-untyped-def]
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(offer)
        rcpts: Iterator[bytes] = iter(scenario.rcpts)
        while line := peer.readline():
            writes.append(line)
            verb = line.split()[0].lower() if line.strip() else b""
            if verb == b"quit":
                peer.send(b"221 bye\r\n")
                return
            reply = {
                b"mail": lambda: scenario.mail,
                b"rcpt": lambda: next(rcpts),
                b"data": lambda: scenario.data,
                b"rset": lambda: b"250 reset",
            }.get(verb, lambda: b"500 what")()
            if not reply:
                return  # the script says the client never gets this far
            peer.send(reply + b"\r\n")
            if reply.startswith(b"421"):
                return
            if verb == b"data" and reply.startswith(b"354"):
                peer.read_content()
                peer.send(scenario.final + b"\r\n")
                if scenario.final.startswith(b"421"):
                    return

    return handler


def _outcome(client_class: type, port: int) -> tuple[object, bool]:
    client = client_class("127.0.0.1", port, local_hostname="client.test", timeout=5)
    try:
        result: object = client.sendmail("s@example.test", RECIPIENTS, "Subject: x\r\n\r\nhi")
    except smtplib.SMTPException as exc:
        result = (type(exc).__name__, exc.args)
    still_open = client.sock is not None
    if still_open:
        client.quit()
    return result, still_open


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_same_outcome_as_smtplib(scenario: Scenario) -> None:
    lockstep: list[bytes] = []
    with scripted_server(_handler(scenario, b"SIZE 1000", lockstep)) as (port, _):
        expected = _outcome(smtplib.SMTP, port)
    pipelined: list[bytes] = []
    with scripted_server(_handler(scenario, b"PIPELINING", pipelined)) as (port, _):
        actual = _outcome(smtpx.SMTP, port)
    assert actual == expected
    # smtpx read every reply due and reset the transaction like smtplib did.
    assert (b"rset\r\n" in pipelined) == (b"rset\r\n" in lockstep)


def test_mail_rcpt_and_data_go_out_in_one_write() -> None:
    chunks: list[bytes] = []

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"PIPELINING")
        chunks.append(peer.sock.recv(65536))  # everything up to DATA, in one segment
        peer.send(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_content()
        peer.send(b"250 queued\r\n")
        peer.expect(b"quit")
        peer.send(b"221 bye\r\n")

    with scripted_server(handler) as (port, _):
        smtp = smtpx.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)
        assert smtp.sendmail("s@example.test", RECIPIENTS, "hi") == {}
        smtp.quit()
    assert chunks[0] == (
        b"mail from:<s@example.test>\r\nrcpt to:<a@example.test>\r\n"
        b"rcpt to:<b@example.test>\r\ndata\r\n"
    )


def test_an_overridden_rcpt_still_sees_every_recipient() -> None:
    """Subclasses that override part of smtplib's method graph keep working: the
    transaction goes step by step so the override is called."""
    seen: list[str] = []

    class Logging(smtpx.SMTP):
        def rcpt(self, recip: str, options: object = ()) -> tuple[int, bytes]:
            seen.append(recip)
            return super().rcpt(recip, options)  # type: ignore[arg-type]

    scenario = SCENARIOS[0]
    writes: list[bytes] = []
    with scripted_server(_handler(scenario, b"PIPELINING", writes)) as (port, _):
        smtp = Logging("127.0.0.1", port, local_hostname="client.test", timeout=5)
        assert smtp.sendmail("s@example.test", RECIPIENTS, "hi") == {}
        smtp.quit()
    assert seen == RECIPIENTS


def test_rcpt_patched_on_the_class_is_still_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mock.patch.object(smtpx.SMTP, "rcpt", ...)`` replaces the driver's own method:
    the pipelined path, which bypasses ``rcpt``, must notice and go step by step."""
    seen: list[str] = []
    original = smtpx.SMTP.rcpt

    def rcpt(self: smtpx.SMTP, recip: str, options: object = ()) -> tuple[int, bytes]:
        seen.append(recip)
        return original(self, recip, options)  # type: ignore[arg-type]

    monkeypatch.setattr(smtpx.SMTP, "rcpt", rcpt)
    writes: list[bytes] = []
    with scripted_server(_handler(SCENARIOS[0], b"PIPELINING", writes)) as (port, _):
        smtp = smtpx.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)
        assert smtp.sendmail("s@example.test", RECIPIENTS, "hi") == {}
        smtp.quit()
    assert seen == RECIPIENTS


def test_async_rcpt_patched_on_the_class_is_still_called(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = smtpx.AsyncSMTP.rcpt

    async def rcpt(self: smtpx.AsyncSMTP, recip: str, options: object = ()) -> tuple[int, bytes]:
        seen.append(recip)
        return await original(self, recip, options)  # type: ignore[arg-type]

    monkeypatch.setattr(smtpx.AsyncSMTP, "rcpt", rcpt)

    async def main(port: int) -> None:
        smtp = smtpx.AsyncSMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)
        await smtp.connect()
        assert await smtp.sendmail("s@example.test", RECIPIENTS, "hi") == {}
        await smtp.quit()

    writes: list[bytes] = []
    with scripted_server(_handler(SCENARIOS[0], b"PIPELINING", writes)) as (port, _):
        asyncio.run(main(port))
    assert seen == RECIPIENTS
