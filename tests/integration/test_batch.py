"""``deliver_many`` against real servers, blocking and asyncio: Postfix (PIPELINING and
CHUNKING: several transactions in flight), Dovecot LMTP (one reply per recipient after the
content) and Haraka (PIPELINING, but ``503`` to every command pipelined after the end of
DATA, before that DATA's reply).

A batch of 20 messages, tuples and ``EmailMessage`` items mixed, holds a recipient refused
at RCPT, a message refused after its content and a message whose every recipient is
refused.  Every entry is checked, and every mailbox is read back: each delivered message
arrived exactly once, for the right recipient with the right Return-Path, and nothing
refused or duplicated arrived.  ``quit=True`` must end the session with QUIT answered,
which each server's log confirms.

Against Haraka the batch's cross-message pipelining meets the 503: the engine must send
the refused transaction again, deliver every message once, and pipeline no further past
the end of DATA on that connection (Haraka logs each such refusal).  ``sendmail`` repeated
on one connection and ``deliver()`` run against Haraka too.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

import smtpx

from .servers import (
    DovecotLMTPServer,
    HarakaServer,
    Mailbox,
    PostfixServer,
    make_message,
    new_token,
    to_lf,
)
from .servers.haraka import REFUSED_AFTER_DATA

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
LOG_TIMEOUT = 15.0  # the servers write their logs a moment after the reply
BATCH_SIZE = 20
PARTIAL = 6  # one recipient refused at RCPT, the other accepted
REFUSED = 11  # refused after its content (Dovecot: its only recipient is over quota)
NOBODY = 15  # its only recipient is refused at RCPT
DRIVERS = ["sync", "async"]
Server = PostfixServer | DovecotLMTPServer | HarakaServer


# ------------------------------------------------------------------ the servers


@dataclass
class Target:
    """One server as the batch sees it: whom it accepts, whom it refuses, and how."""

    server: Server
    users: tuple[str, ...]  # accepted at RCPT and delivered
    unknown: str  # refused at RCPT (550)

    @property
    def lmtp(self) -> bool:
        return isinstance(self.server, DovecotLMTPServer)

    def refused_message(self, subject: str) -> tuple[str, list[str]]:
        """Subject and recipients of a message the server refuses after its content."""
        if isinstance(self.server, DovecotLMTPServer):
            return subject, [self.server.quota_full_user]  # 552 after the content
        return f"{subject} {self.server.refuse_marker}", [self.users[0]]

    def mailboxes(self) -> dict[str, Mailbox]:
        """Every mailbox a message of the batch could reach."""
        addresses = [*self.users]
        if isinstance(self.server, DovecotLMTPServer):
            addresses.append(self.server.quota_full_user)
        return {address: self.server.mailbox(address) for address in addresses}


@pytest.fixture(params=["postfix", "dovecot", "haraka"])
def target(request: pytest.FixtureRequest) -> Target:
    server: Server = request.getfixturevalue(request.param)
    if isinstance(server, DovecotLMTPServer):
        return Target(server, (server.user,), server.unknown_user)
    users = ("alice@example.test", "bob@example.test")
    assert set(users) <= set(server.users)
    return Target(server, users, server.unknown_user)


class Client:
    """A blocking or an asyncio client, called the same way: ``client("deliver", ...)``."""

    def __init__(self, server: Server, driver: str) -> None:
        lmtp = isinstance(server, DovecotLMTPServer)
        self.runner = asyncio.Runner() if driver == "async" else None
        if self.runner is None:
            kind: Any = smtpx.LMTP if lmtp else smtpx.SMTP
            self.client = kind(server.host, server.port, timeout=TIMEOUT)
        else:
            kind = smtpx.AsyncLMTP if lmtp else smtpx.AsyncSMTP
            self.client = kind(server.host, server.port, timeout=TIMEOUT)
            self("connect")
        # The server logs the session under the client's port.
        sock = self.client.sock
        name = sock.getsockname() if self.runner is None else sock.get_extra_info("sockname")
        self.port: int = name[1]

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        return result if self.runner is None else self.runner.run(result)

    @property
    def closed(self) -> bool:
        return self.client.sock is None

    def close(self) -> None:
        try:
            if not self.closed:
                self("close")
        finally:
            if self.runner is not None:
                self.runner.close()


@pytest.fixture(params=DRIVERS)
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[[Server], Client]]:
    """Open clients with the driver of the test's parameter; all closed at the end."""
    opened: list[Client] = []

    def open_client(server: Server) -> Client:
        opened.append(Client(server, request.param))
        return opened[-1]

    yield open_client
    for client in opened:
        client.close()


def wait_for_log(read: Callable[[], str], pattern: str, what: str) -> re.Match[str]:
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        found = re.search(pattern, read())
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} in the log after {LOG_TIMEOUT:.0f} s"
        time.sleep(0.05)


def postfix_session(postfix: PostfixServer, port: int) -> str:
    """Postfix's summary of the session from client *port*: its command counts."""
    return wait_for_log(
        lambda: (postfix.workdir / "maillog").read_text(errors="replace"),
        rf"disconnect from \S+\[127\.0\.0\.1\]:{port} (.*)",
        f"end of the session from port {port}",
    ).group(1)


def wait_for_dovecot_sessions(dovecot: DovecotLMTPServer, open_sessions: int) -> int:
    """Wait until Dovecot has logged the end of all but *open_sessions* of its TCP
    sessions; return how many of those ended without QUIT (not "Logged out")."""
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        log = (dovecot.workdir / "dovecot.log").read_text(errors="replace")
        connects = log.count(": Info: Connect from 127.0.0.1")
        ends = re.findall(r": Info: Disconnect from 127\.0\.0\.1: (.*)", log)
        if connects - len(ends) == open_sessions:
            return sum(not end.startswith("Logged out") for end in ends)
        assert time.monotonic() < deadline, f"{connects} sessions, {len(ends)} ended"
        time.sleep(0.05)


def haraka_refusals(transcript: list[str]) -> int:
    """How many times Haraka refused commands pipelined after the end of DATA."""
    return sum(REFUSED_AFTER_DATA in line for line in transcript)


# -------------------------------------------------------------------- the batch


@dataclass
class Item:
    """One message of a batch, what it is sent as, and what should become of it."""

    index: int
    token: str
    sender: str
    recipients: list[str]
    item: Any  # what deliver_many gets: a tuple or an EmailMessage
    sent: bytes | None  # the bytes of a tuple item, to compare with the delivery
    delivered_to: list[str] = field(default_factory=list)


def make_batch(target: Target, size: int = BATCH_SIZE) -> list[Item]:
    """*size* messages to the target's users, alternately tuples and ``EmailMessage``
    items; at PARTIAL, REFUSED and NOBODY the refusals (when the batch is that long)."""
    batch = new_token()
    items = []
    for index in range(size):
        token = f"{batch}-{index:02d}"
        sender = f"batch{index}@client.test"
        recipients = [target.users[index % len(target.users)]]
        if index % 5 == 4:
            recipients = list(target.users)  # every user, in one transaction
        subject = token
        if index == PARTIAL:
            recipients = [target.users[0], target.unknown]
        elif index == REFUSED:
            subject, recipients = target.refused_message(token)
        elif index == NOBODY:
            recipients = [target.unknown]
        body = f"Message {index} of a batch.\r\n.a dotted line\r\n".encode()
        if index % 2 == 0:
            sent = make_message(token, sender=sender, to=recipients[0], body=body)
            sent = sent.replace(f"Subject: {token}".encode(), f"Subject: {subject}".encode())
            item: Any = (sent, sender, recipients)
        else:
            sent = None
            item = EmailMessage()
            item["From"] = sender
            item["To"] = ", ".join(recipients)
            item["Subject"] = subject
            item["Message-ID"] = f"<{token}@client.test>"
            item.set_content(body.decode().replace("\r\n", "\n"))
        delivered_to = [] if index in (REFUSED, NOBODY) else list(target.users)
        delivered_to = [r for r in recipients if r in delivered_to]
        items.append(Item(index, token, sender, recipients, item, sent, delivered_to))
    return items


def check_entries(target: Target, batch: list[Item], entries: list[Any]) -> None:
    """Every entry is the SendResult or the exception its message deserves."""
    assert len(entries) == len(batch)
    for item, entry in zip(batch, entries, strict=True):
        where = f"entry {item.index}: {entry!r}"
        if item.index == REFUSED and target.lmtp:
            assert isinstance(entry, smtpx.SMTPRecipientsRefused), where
            assert {a: c for a, (c, _) in entry.recipients.items()} == {item.recipients[0]: 552}, (
                where
            )
        elif item.index == REFUSED:
            assert isinstance(entry, smtpx.SMTPDataError), where
            assert entry.smtp_code == 550 and b"5.7.1" in entry.smtp_error, where
            statuses = [(r.address, r.status) for r in entry.result.recipients]  # type: ignore[attr-defined]
            assert statuses == [(item.recipients[0], "accepted")], where
        elif item.index == NOBODY:
            assert isinstance(entry, smtpx.SMTPRecipientsRefused), where
            assert {a: c for a, (c, _) in entry.recipients.items()} == {target.unknown: 550}
            assert entry.result.recipients[0].status == "refused", where  # type: ignore[attr-defined]
        else:
            assert isinstance(entry, smtpx.SendResult), where
            want = [
                (address, "accepted" if address in item.delivered_to else "refused")
                for address in item.recipients
            ]
            assert [(r.address, r.status) for r in entry.recipients] == want, where
            assert entry.reply.code == 250, where
            if item.index == PARTIAL:
                assert entry.recipients[1].code == 550, where


def check_mailboxes(target: Target, batch: list[Item]) -> None:
    """Each delivered message arrived once per recipient, intact, with its envelope;
    nothing else of the batch arrived anywhere."""
    mailboxes = target.mailboxes()
    for item in batch:
        for address in item.delivered_to:
            delivered = mailboxes[address].wait_for(item.token, sender=item.sender)  # one only
            headers = BytesParser(policy=policy.default).parsebytes(delivered, headersonly=True)
            assert headers["Return-Path"] == f"<{item.sender}>", (item.index, address)
            assert headers["Delivered-To"] == address, (item.index, address)
            assert b"\n.a dotted line\n" in to_lf(delivered), item.index
            if item.sent is not None:
                mailboxes[address].wait_for_intact(item.token, item.sent, sender=item.sender)
    # All expected messages are in: now no mailbox may hold one more (a duplicate, or a
    # refused message) than expected.
    want = {address: Counter[str]() for address in mailboxes}
    for item in batch:
        for address in item.delivered_to:
            want[address][item.token] += 1
    tokens = [item.token.encode() for item in batch]
    got = {
        address: Counter(
            token.decode() for message in mailbox.messages() for token in tokens if token in message
        )
        for address, mailbox in mailboxes.items()
    }
    assert got == want


def test_batch(target: Target, connect: Callable[[Server], Client]) -> None:
    """20 messages in one deliver_many with quit=True: every entry, every delivery, and a
    session ended by QUIT."""
    batch = make_batch(target)
    client = connect(target.server)
    if isinstance(target.server, DovecotLMTPServer):
        # Every earlier session has ended in the log: only this one is open.
        unclean = wait_for_dovecot_sessions(target.server, open_sessions=1)
    entries = client("deliver_many", [item.item for item in batch], quit=True)
    assert client.closed  # quit=True: QUIT answered, connection closed
    check_entries(target, batch, entries)
    check_mailboxes(target, batch)

    server = target.server
    if isinstance(server, PostfixServer):
        # One MAIL per message, none sent twice; the session ended with QUIT.
        summary = postfix_session(server, client.port)
        assert f" mail={BATCH_SIZE} " in summary and " quit=1 " in summary, summary
        assert client.client.has_extn("chunking") and " bdat=" in summary, summary
    elif isinstance(server, DovecotLMTPServer):
        # The session ended with QUIT ("Logged out"), not with a dropped connection.
        assert wait_for_dovecot_sessions(server, open_sessions=0) == unclean
    else:
        # Haraka offers PIPELINING but not CHUNKING: every message went with DATA.
        assert client.client.has_extn("pipelining") and not client.client.has_extn("chunking")
        transcript = server.transcript(client.port)
        # The second message was pipelined after the first one's end of DATA and refused;
        # then the client stopped doing that on this connection: one refusal in all.
        assert haraka_refusals(transcript) == 1, "\n".join(transcript)
        assert client.client._pipeline_after_content is False
        # Haraka answered 503 to the second message's MAIL, RCPT and DATA without running
        # them (they are not logged as commands); it ran every MAIL once, that one resent.
        refused = [line for line in transcript if "S: 503 " in line and "end of DATA" in line]
        assert len(refused) == 2 + len(batch[1].recipients), "\n".join(transcript)
        mails = [line for line in transcript if re.search(r"C: MAIL FROM:", line, re.I)]
        assert len(mails) == BATCH_SIZE, "\n".join(transcript)
        assert any("S: 221 " in line for line in transcript), "\n".join(transcript)


# ------------------------------------------------------------------ Haraka alone


def test_haraka_quit_pipelined_after_data_is_said_again(
    haraka: HarakaServer, connect: Callable[[Server], Client]
) -> None:
    """One message with quit=True: QUIT goes after the end of DATA, Haraka refuses it
    (503), the client says QUIT again and the session ends cleanly."""
    target = Target(haraka, ("alice@example.test",), haraka.unknown_user)
    batch = make_batch(target, size=1)
    client = connect(haraka)
    (entry,) = client("deliver_many", [batch[0].item], quit=True)
    assert isinstance(entry, smtpx.SendResult) and entry.reply.code == 250
    assert client.closed
    check_mailboxes(target, batch)
    transcript = haraka.transcript(client.port)
    text = "\n".join(transcript)
    assert haraka_refusals(transcript) == 1, text
    # The first QUIT was refused unread (Haraka logs no "C:" line for it), the second ran.
    said = [
        line.split("] [core] ", 1)[1]
        for line in transcript
        if re.search(r"\] \[core\] (C: quit|S: 503 |S: 221 )", line, re.I)
    ]
    assert said == [
        "S: 503 Bad sequence of commands - pipelined after end of DATA",
        "C: quit state=1",
        "S: 221 haraka.test closing connection",
    ], text


def test_haraka_second_batch_does_not_pipeline_past_data(
    haraka: HarakaServer, connect: Callable[[Server], Client]
) -> None:
    """The 503 is remembered for the connection: a second batch on it meets none."""
    target = Target(haraka, ("alice@example.test", "bob@example.test"), haraka.unknown_user)
    first, second = make_batch(target, size=5), make_batch(target, size=5)
    client = connect(haraka)
    for batch in (first, second):
        entries = client("deliver_many", [item.item for item in batch])
        check_entries(target, batch, entries)
    assert haraka_refusals(haraka.transcript(client.port)) == 1
    check_mailboxes(target, first + second)
    client("quit")


def test_haraka_sendmail_repeated(
    haraka: HarakaServer, connect: Callable[[Server], Client]
) -> None:
    """sendmail again and again on one connection, refusals included: smtplib's results,
    each message once, and nothing pipelined after the end of DATA."""
    target = Target(haraka, ("alice@example.test", "bob@example.test"), haraka.unknown_user)
    batch = make_batch(target, size=16)
    client = connect(haraka)
    for item in batch:
        message = item.item if item.sent is None else item.sent
        if item.sent is None:
            call = ("send_message", message)
        else:
            call = ("sendmail", item.sender, item.recipients, message)
        if item.index == REFUSED:
            with pytest.raises(smtpx.SMTPDataError) as data_error:
                client(*call)
            assert data_error.value.smtp_code == 550
        elif item.index == NOBODY:
            with pytest.raises(smtpx.SMTPRecipientsRefused):
                client(*call)
        else:
            refused = client(*call)
            want = {target.unknown} if item.index == PARTIAL else set()
            assert set(refused) == want, item.index
    client("quit")
    check_mailboxes(target, batch)
    assert haraka_refusals(haraka.transcript(client.port)) == 0


def test_haraka_deliver(haraka: HarakaServer, connect: Callable[[Server], Client]) -> None:
    """deliver() one message after another: per-recipient results, the refusals, and
    every accepted message intact."""
    target = Target(haraka, ("alice@example.test", "bob@example.test"), haraka.unknown_user)
    batch = make_batch(target, size=16)
    client = connect(haraka)
    entries: list[Any] = []
    for item in batch:
        args = (item.item,) if item.sent is None else (item.sent, item.sender, item.recipients)
        try:
            entries.append(client("deliver", *args))
        except smtpx.SMTPException as exc:
            entries.append(exc)
    check_entries(target, batch, entries)
    client("quit")
    check_mailboxes(target, batch)
    assert haraka_refusals(haraka.transcript(client.port)) == 0


def test_haraka_large_envelope_is_not_pipelined_after_data(
    haraka: HarakaServer, connect: Callable[[Server], Client]
) -> None:
    """Haraka drops the connection when more than 8 KiB arrive after the end of DATA
    before that DATA's reply (its MAX_POST_DATA_BYTES): the message before would end as
    "outcome unknown" and the ones after as never tried.  A message with 300 recipients
    after another one must wait for that reply instead."""
    target = Target(haraka, ("alice@example.test", "bob@example.test"), haraka.unknown_user)
    batch = make_batch(target, size=3)
    big = batch[1]  # right after the first end of DATA: Haraka's 503 not seen yet
    big.recipients = ["bob@example.test"] + [f"nobody{i:03d}@example.test" for i in range(300)]
    body = b"The big one.\r\n.a dotted line\r\n"
    big.sent = make_message(big.token, sender=big.sender, to="bob@example.test", body=body)
    big.item = (big.sent, big.sender, big.recipients)
    client = connect(haraka)
    entries = client("deliver_many", [item.item for item in batch], quit=True)
    for item, entry in zip(batch, entries, strict=True):
        assert isinstance(entry, smtpx.SendResult), (item.index, entry)
        assert [r.address for r in entry.accepted] == item.delivered_to, item.index
    assert client.closed
    check_mailboxes(target, batch)
    assert not any("dropping" in line for line in haraka.transcript(client.port))
