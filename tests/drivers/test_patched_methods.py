"""Patched methods never break a valid send (issue 8, item 4).

Tests of programs that use smtplib patch its methods: ``mock.patch.object(smtplib.SMTP,
"has_extn", return_value=True)``, a spy on ``ehlo`` or ``rcpt``, ``sendmail`` mocked out
under ``send_message``.  With smtpx in smtplib's place each such patch must give the same
conversation as smtplib: the same lines and content reach the server, the same result comes
back, and the patched method is called as often.  The oracle is smtplib itself, run with the
same patch against the same scripted server; the blocking and the asyncio class must both
match it.  Whatever decides to pipeline (the server's offer *and* ``has_extn``) must never
make a send fail that smtplib completes.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from unittest import mock

import pytest

import smtpx

from .scripted import Peer, scripted_server

SENDER = "s@example.test"
RECIPIENTS = ["a@example.test", "b@example.test"]
BODY = "Subject: hi\r\n\r\nhello\r\n"


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ", ".join(RECIPIENTS)
    message["Subject"] = "hi"
    message.set_content("hello\n")
    return message


@dataclass(frozen=True)
class Case:
    """One patch: *method* replaced on the class (or an instance) by a mock that returns
    *value*, or (``spy``) by one that calls the original."""

    method: str
    value: Any = None
    spy: bool = False
    #: The server's EHLO keywords beyond its name.
    offer: tuple[bytes, ...] = (b"PIPELINING", b"SIZE 1000000")
    call: str = "sendmail"
    #: Does the message reach the server (False when the patch replaces the send itself)?
    delivered: bool = True
    on_instance: bool = False
    id: str = field(default="", compare=False)

    def __str__(self) -> str:
        how = "spy" if self.spy else f"returns {self.value!r}"
        where = "instance" if self.on_instance else "class"
        offer = "+".join(x.split()[0].decode() for x in self.offer) or "nothing"
        return self.id or f"{self.call}-{self.method}-{how}-{where}-offer:{offer}"


NO_PIPELINING = (b"SIZE 1000000",)
CASES = [
    # The case: has_extn says yes to everything, the server offers no PIPELINING.
    Case("has_extn", True, offer=NO_PIPELINING),
    Case("has_extn", True, offer=()),
    Case("has_extn", True, offer=NO_PIPELINING, on_instance=True),
    Case("has_extn", True, offer=NO_PIPELINING, call="send_message"),
    # has_extn says no: the server's PIPELINING and SIZE go unused, as in smtplib.
    Case("has_extn", False),
    Case("has_extn", False, on_instance=True),
    Case("has_extn", False, call="send_message"),
    Case("has_extn", spy=True),
    Case("ehlo", spy=True),
    Case("ehlo", spy=True, offer=NO_PIPELINING),
    Case("ehlo", (250, b"ok")),  # no EHLO is sent at all: MAIL goes without options
    Case("ehlo", (250, b"ok"), on_instance=True),
    Case("ehlo_or_helo_if_needed", spy=True),
    Case("ehlo_or_helo_if_needed", None),
    Case("mail", spy=True),
    Case("mail", spy=True, offer=NO_PIPELINING, on_instance=True),
    Case("mail", (250, b"ok")),
    Case("rcpt", spy=True),
    Case("rcpt", spy=True, on_instance=True),
    Case("data", spy=True),
    Case("data", spy=True, call="send_message"),
    Case("send", spy=True),
    Case("send", spy=True, on_instance=True),
    Case("putcmd", spy=True),
    Case("putcmd", spy=True, offer=NO_PIPELINING),
    Case("getreply", spy=True),
    Case("getreply", spy=True, on_instance=True),
    Case("docmd", spy=True),
    Case("sendmail", spy=True, call="send_message"),
    Case("sendmail", {}, call="send_message", delivered=False),
    Case("sendmail", {}, call="send_message", delivered=False, on_instance=True),
    # The socket seam subclasses override (the asyncio class's returns its stream).
    Case("_get_socket", spy=True),
]


def _server(offer: tuple[bytes, ...], transcript: list[bytes]) -> Callable[[Peer], None]:
    """A lock-step server that accepts everything: every line it read (and each message's
    content, as one entry) goes into *transcript*."""

    def handler(peer: Peer) -> None:
        peer.send(b"220 test.example ESMTP\r\n")
        while line := peer.readline():
            # Verbs and keywords are case-insensitive (RFC 5321 section 2.4): smtplib
            # writes "mail FROM:", smtpx "mail from:".
            transcript.append(line.lower())
            verb = line.split(b" ", 1)[0].strip().lower()
            if verb in (b"ehlo", b"lhlo"):
                lines = [b"test.example", *offer]
                peer.send(
                    b"".join(b"250-" + x + b"\r\n" for x in lines[:-1])
                    + b"250 "
                    + lines[-1]
                    + b"\r\n"
                )
            elif verb == b"data":
                peer.send(b"354 go ahead\r\n")
                transcript.append(peer.read_content())
                peer.send(b"250 2.0.0 queued\r\n")
            elif verb == b"quit":
                peer.send(b"221 2.0.0 bye\r\n")
                return
            else:
                peer.send(b"250 2.0.0 ok\r\n")

    return handler


def _patch(case: Case, target: Any, original: Any) -> Any:
    """The mock patch for *case* on *target* (a class or an instance); *original* is the
    method it replaces (unbound on a class, bound on an instance)."""
    if case.spy:
        if case.on_instance:
            return mock.patch.object(target, case.method, side_effect=original)
        return mock.patch.object(target, case.method, autospec=True, side_effect=original)
    return mock.patch.object(target, case.method, return_value=case.value)


@contextmanager
def _patched(case: Case, client: Any) -> Iterator[list[Any]]:
    """Patch *client*'s class before connecting, or the instance once created; yields a
    list that holds the mock."""
    mocks: list[Any] = []
    with ExitStack() as stack:
        if not case.on_instance:
            cls = type(client)
            mocks.append(stack.enter_context(_patch(case, cls, getattr(cls, case.method))))
        else:
            original = getattr(client, case.method)
            mocks.append(stack.enter_context(_patch(case, client, original)))
        yield mocks


def _arguments(case: Case) -> tuple[Any, ...]:
    if case.call == "send_message":
        return (_message(),)
    return (SENDER, RECIPIENTS, BODY)


def _run_sync(case: Case, cls: type, port: int) -> tuple[Any, int]:
    client = cls(local_hostname="client.test", timeout=5)
    with _patched(case, client) as mocks:
        client.connect("127.0.0.1", port)
        try:
            result = getattr(client, case.call)(*_arguments(case))
        except smtplib.SMTPException as exc:
            result = (type(exc).__name__, exc.args)
        client.quit()
        return result, mocks[0].call_count


def _run_async(case: Case, port: int) -> tuple[Any, int]:
    async def main() -> tuple[Any, int]:
        client = smtpx.AsyncSMTP(local_hostname="client.test", timeout=5)
        with _patched(case, client) as mocks:
            await client.connect("127.0.0.1", port)
            try:
                result = await getattr(client, case.call)(*_arguments(case))
            except smtplib.SMTPException as exc:
                result = (type(exc).__name__, exc.args)
            await client.quit()
            return result, mocks[0].call_count

    return asyncio.run(main())


def _conversation(
    case: Case, run: Callable[[int], tuple[Any, int]]
) -> tuple[Any, int, list[bytes]]:
    transcript: list[bytes] = []
    with scripted_server(_server(case.offer, transcript)) as (port, _):
        result, calls = run(port)
    return result, calls, transcript


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_patched_method_sends_as_smtplib_does(case: Case, driver: str) -> None:
    expected = _conversation(case, lambda port: _run_sync(case, smtplib.SMTP, port))
    if driver == "sync":
        actual = _conversation(case, lambda port: _run_sync(case, smtpx.SMTP, port))
    else:
        actual = _conversation(case, lambda port: _run_async(case, port))
    result, calls, transcript = actual
    # The same lines, content and QUIT reached the server; the same result came back.
    assert transcript == expected[2]
    assert result == expected[0]
    if case.method == "has_extn":
        # A question with no effect: smtpx also asks it about PIPELINING (so that a
        # has_extn that denies it is obeyed), which smtplib never uses.
        assert calls >= expected[1]
    else:
        assert calls == expected[1]
    if case.spy:
        assert calls > 0
    # And the message was really sent (not only "no exception"): its content and the
    # server's 250 after it, to every recipient.
    content = [entry for entry in transcript if entry.endswith(b"\r\n.\r\n")]
    if case.delivered:
        assert result == {}
        assert len(content) == 1 and b"hello\r\n" in content[0]
        rcpts = [line for line in transcript if line.startswith(b"rcpt to:")]
        assert rcpts == [b"rcpt to:<%s>\r\n" % r.encode() for r in RECIPIENTS]
    else:
        assert content == []
    assert transcript[-1] == b"quit\r\n"
