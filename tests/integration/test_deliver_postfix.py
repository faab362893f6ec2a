"""``deliver()`` against a real Postfix: BDAT and DATA, per-recipient results, the queue
id, DSN, SIZE, SMTPUTF8 and large streamed content, on both drivers.

Every accepted message is read back from the recipient's maildir and compared with what
was sent: a 250 from the server is not enough to pass.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

import smtpx

from .servers import PostfixServer, make_message, new_token, strip_trace_fields

pytestmark = pytest.mark.integration

SENDER = "sender@client.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
JOHN = "j\u00f6hn@example.test"  # a mailbox of servers/postfix.py, for SMTPUTF8
TIMEOUT = 10.0
QUEUE_ID = re.compile(r"[0-9A-F]+")


@pytest.fixture
def client(postfix: PostfixServer) -> Iterator[smtpx.SMTP]:
    with smtpx.SMTP(postfix.host, postfix.port, timeout=TIMEOUT) as smtp:
        yield smtp


def logged_queue_id(postfix: PostfixServer, token: str) -> str:
    """The queue id that Postfix's cleanup logged for the message with *token*."""
    pattern = re.compile(rf": ([0-9A-F]+): message-id=<{token}@client\.test>")
    deadline = time.monotonic() + 15
    while True:
        found = pattern.search((postfix.workdir / "maillog").read_text(errors="replace"))
        if found:
            return found.group(1)
        assert time.monotonic() < deadline, f"no message-id {token} in the maillog"
        time.sleep(0.05)


def large_body(size: int) -> bytes:
    """About *size* bytes of CRLF lines, every third starting with '.', some only '.'."""
    lines = []
    total = 0
    index = 0
    while total < size:
        line = [b".dotted %d" % index, b"plain line %d" % index, b"."][index % 3] + b"\r\n"
        lines.append(line)
        total += len(line)
        index += 1
    return b"".join(lines)


def session_summary(postfix: PostfixServer, queue_id: str) -> str:
    """The "disconnect from" line (command counts) of the smtpd session that received
    the message *queue_id*."""
    started = re.compile(rf"smtpd\[(\d+)\]: {queue_id}: client=")
    deadline = time.monotonic() + 15
    while True:
        log = (postfix.workdir / "maillog").read_text(errors="replace")
        found = started.search(log)
        if found:
            end = re.compile(rf"smtpd\[{found.group(1)}\]: disconnect from .*")
            summary = end.search(log, found.end())
            if summary:
                return summary.group(0)
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.05)


@pytest.mark.parametrize(("chunking", "command"), [(None, "bdat=1"), (False, "data=1")])
def test_deliver_arrives_intact(
    postfix: PostfixServer, chunking: bool | None, command: str
) -> None:
    token = new_token()
    sent = make_message(token, body=b"Hello.\r\n.a dotted line\r\n..two dots\r\n.\r\nend\r\n")
    with smtpx.SMTP(postfix.host, postfix.port, timeout=TIMEOUT) as client:
        result = client.deliver(sent, SENDER, [ALICE], chunking=chunking)
    assert [(r.address, r.status) for r in result.recipients] == [(ALICE, "accepted")]
    assert result.reply.code == 250
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    # Postfix counts the commands of the session: BDAT by default (CHUNKING is offered).
    assert result.queue_id is not None
    summary = session_summary(postfix, result.queue_id)
    assert f" {command} " in summary and "rset" not in summary, summary


def test_per_recipient_statuses(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)
    result = client.deliver(sent, SENDER, [ALICE, postfix.unknown_user, postfix.deferred_user])
    alice, unknown, deferred = result.recipients
    assert (alice.address, alice.status, alice.code) == (ALICE, "accepted", 250)
    assert (unknown.address, unknown.status, unknown.code) == (
        postfix.unknown_user,
        "refused",
        550,
    )
    assert str(unknown.enhanced_status) == "5.1.1"
    assert (deferred.status, deferred.code, str(deferred.enhanced_status)) == (
        "deferred",
        450,
        "4.2.0",
    )
    assert "try later" in deferred.text
    assert result.accepted == (alice,)
    assert set(result.as_smtplib_dict()) == {postfix.unknown_user, postfix.deferred_user}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_none_accepted(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        client.deliver(make_message(token), SENDER, [postfix.unknown_user, postfix.deferred_user])
    statuses = [r.status for r in caught.value.result.recipients]  # type: ignore[attr-defined]
    assert statuses == ["refused", "deferred"]
    # The session is still usable: the transaction was reset.
    sent = make_message(token)
    client.deliver(sent, SENDER, ALICE)
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_queue_id_is_the_one_postfix_logs(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)
    result = client.deliver(sent, SENDER, ALICE)
    assert result.queue_id is not None and QUEUE_ID.fullmatch(result.queue_id), result.reply
    assert result.queue_id == logged_queue_id(postfix, token)
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_dsn_options_accepted_and_delivered(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)
    recipients = [
        smtpx.Recipient(ALICE, notify=["SUCCESS", "FAILURE"], orcpt="original+alice@example.test"),
        BOB,
    ]
    result = client.deliver(
        sent, SENDER, recipients, ret="HDRS", envid=f"{token} +=", notify=["NEVER"]
    )
    assert [r.status for r in result.recipients] == ["accepted", "accepted"]
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    postfix.mailbox(BOB).wait_for_intact(token, sent, sender=SENDER)
    # NOTIFY=SUCCESS was honoured: Postfix sent the sender a delivery notification.
    queue_id = logged_queue_id(postfix, token)
    notified = f"{queue_id}: sender delivery status notification: "
    deadline = time.monotonic() + 15
    while notified not in (log := (postfix.workdir / "maillog").read_text(errors="replace")):
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.05)


@pytest.mark.parametrize("chunking", [None, False])
def test_message_too_large_is_refused_before_sending(
    client: smtpx.SMTP, postfix: PostfixServer, chunking: bool | None
) -> None:
    token = new_token()
    header = make_message(token, body=b"")
    sent = header + b"x" * (postfix.message_size_limit + 1 - len(header))
    assert len(sent) == postfix.message_size_limit + 1
    with pytest.raises(smtpx.SMTPMessageTooLarge) as caught:
        client.deliver(sent, SENDER, ALICE, chunking=chunking)
    assert caught.value.limit == postfix.message_size_limit
    assert caught.value.size == len(sent)
    # Nothing was sent: the session is idle and the next message goes through.
    assert client.noop()[0] == 250
    small_token = new_token()
    small = make_message(small_token)
    client.deliver(small, SENDER, ALICE)
    postfix.mailbox(ALICE).wait_for_intact(small_token, small, sender=SENDER)
    assert postfix.mailbox(ALICE).find(token) == []


def international_message(token: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Jos\u00e9 <jos\u00e9@client.test>"
    msg["To"] = f"J\u00f6hn <{JOHN}>"
    msg["Subject"] = f"{token} gr\u00fc\u00dfe"
    msg["Message-ID"] = f"<{token}@client.test>"
    msg.set_content("Gr\u00fc\u00dfe aus smtpx.\n")
    return msg


@pytest.mark.parametrize("chunking", [None, False])
def test_smtputf8_message_delivered_intact(
    client: smtpx.SMTP, postfix: PostfixServer, chunking: bool | None
) -> None:
    token = new_token()
    msg = international_message(token)
    result = client.deliver(msg, chunking=chunking)
    assert [(r.address, r.status) for r in result.recipients] == [(JOHN, "accepted")]
    # Return-Path: the UTF-8 sender, taken from the From header.
    delivered = postfix.mailbox(JOHN).wait_for(token, sender="jos\u00e9@client.test")
    parsed = BytesParser(policy=policy.default).parsebytes(strip_trace_fields(delivered))
    assert parsed["To"] == msg["To"]
    assert parsed["From"] == msg["From"]
    assert parsed["Subject"] == msg["Subject"]
    assert parsed.get_content() == msg.get_content()
    # The headers went as UTF-8 (RFC 6532), not as encoded words.
    assert f"Subject: {token} gr\u00fc\u00dfe".encode() in delivered


def write_dotted_file(path: Path, token: str) -> bytes:
    sent = make_message(token) + large_body(3 * 1024 * 1024)
    path.write_bytes(sent)
    return sent


@pytest.mark.parametrize("chunking", [None, False])
def test_large_dotted_file_streamed(
    client: smtpx.SMTP, postfix: PostfixServer, tmp_path: Path, chunking: bool | None
) -> None:
    token = new_token()
    sent = write_dotted_file(tmp_path / "message.eml", token)
    with open(tmp_path / "message.eml", "rb") as file:
        result = client.deliver(file, SENDER, ALICE, chunking=chunking)
    assert result.accepted[0].address == ALICE
    # Over BDAT the dots are not stuffed, over DATA they are and Postfix unstuffs them:
    # either way the body arrives as it was.
    delivered = postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    assert b"\n..dotted" not in delivered


def test_async_deliver(postfix: PostfixServer, tmp_path: Path) -> None:
    token = new_token()
    sent = write_dotted_file(tmp_path / "message.eml", token)
    small_token = new_token()
    small = make_message(small_token)

    data_token = new_token()
    data_sent = make_message(data_token, to=BOB)

    async def main() -> list[smtpx.SendResult]:
        async with smtpx.AsyncSMTP(postfix.host, postfix.port, timeout=TIMEOUT) as smtp:
            with open(tmp_path / "message.eml", "rb") as file:
                streamed = await smtp.deliver(file, SENDER, ALICE)
            mixed = await smtp.deliver(
                small, SENDER, [ALICE, postfix.unknown_user, postfix.deferred_user]
            )
            data = await smtp.deliver(data_sent, SENDER, BOB, chunking=False)
            return [streamed, mixed, data]

    streamed, mixed, data = asyncio.run(main())
    assert streamed.queue_id is not None and QUEUE_ID.fullmatch(streamed.queue_id)
    assert streamed.queue_id == logged_queue_id(postfix, token)
    assert [r.status for r in mixed.recipients] == ["accepted", "refused", "deferred"]
    assert [r.address for r in data.accepted] == [BOB]
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    postfix.mailbox(ALICE).wait_for_intact(small_token, small, sender=SENDER)
    postfix.mailbox(BOB).wait_for_intact(data_token, data_sent, sender=SENDER)
