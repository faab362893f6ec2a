"""``deliver()`` over LMTP against a real Dovecot, over TCP and a unix socket, with BDAT
and with DATA: a result for every recipient, the ones refused after the content (quota)
with their own reply (RFC 2033 section 4.2).  Deliveries are read back from the maildir.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Iterator

import pytest

import smtpx

from .servers import DovecotLMTPServer, make_message, new_token

pytestmark = pytest.mark.integration

SENDER = "sender@client.test"
TIMEOUT = 10.0
CHUNKING = [pytest.param(None, id="bdat"), pytest.param(False, id="data")]
BDAT_LINE = re.compile(rb"BDAT [0-9]+( LAST)?\r\n\Z", re.IGNORECASE)


def commands_sent(debug_output: str) -> list[bytes]:
    """The command lines the client wrote, from its ``set_debuglevel(1)`` output: each
    "send:" line is one write, commands shown as str (as smtplib shows them), content as
    bytes; a BDAT line is shown as bytes on its own, before its chunk."""
    commands: list[bytes] = []
    for line in debug_output.splitlines():
        if not line.startswith("send: "):
            continue
        sent = ast.literal_eval(line.removeprefix("send: "))
        if isinstance(sent, str):
            commands += sent.encode().splitlines()
        elif bdat := BDAT_LINE.match(sent):
            commands.append(bdat.group().rstrip())
    return commands


def check_transfer(debug_output: str, chunking: bool | None, messages: int = 1) -> None:
    """The content went as the test says: BDAT (CHUNKING offered, chunking=None) or DATA."""
    commands = commands_sent(debug_output)
    verbs = [line.partition(b" ")[0].upper() for line in commands]
    assert verbs.count(b"MAIL") == messages
    if chunking is None:
        assert b"DATA" not in verbs
        lasts = [line for line in commands if line.upper().endswith(b" LAST")]
        assert len(lasts) == messages and all(line.upper().startswith(b"BDAT ") for line in lasts)
    else:
        assert b"BDAT" not in verbs
        assert verbs.count(b"DATA") == messages


@pytest.mark.parametrize("chunking", CHUNKING)
def test_per_recipient_results(
    lmtp: smtpx.LMTP,
    dovecot: DovecotLMTPServer,
    chunking: bool | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = new_token()
    sent = make_message(token, body=b"Hello.\r\n.dotted line\r\n.\r\nend\r\n")
    recipients = [dovecot.user, dovecot.quota_full_user, dovecot.unknown_user]
    lmtp.set_debuglevel(1)
    result = lmtp.deliver(sent, SENDER, recipients, chunking=chunking)
    check_transfer(capsys.readouterr().err, chunking)
    assert lmtp.has_extn("chunking")
    user, full, unknown = result.recipients
    assert [r.address for r in result.recipients] == recipients

    assert (user.status, user.reply.code) == ("accepted", 250)
    assert user.data_reply is not None and user.data_reply.code == 250

    assert (full.status, full.reply.code, full.code) == ("refused", 250, 552)
    assert full.data_reply is not None and full.data_reply.code == 552
    assert str(full.enhanced_status) == "5.2.2"

    assert (unknown.status, unknown.code, unknown.data_reply) == ("refused", 550, None)
    assert str(unknown.enhanced_status) == "5.1.1"

    assert result.accepted == (user,)
    assert result.refused == (full, unknown)
    assert result.reply == full.data_reply  # the last reply after the content
    assert set(result.as_smtplib_dict()) == {dovecot.quota_full_user, dovecot.unknown_user}
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)
    assert dovecot.mailbox(dovecot.quota_full_user).find(token) == []


@pytest.mark.parametrize("chunking", CHUNKING)
def test_quota_tempfail_is_deferred(
    lmtp: smtpx.LMTP,
    dovecot: DovecotLMTPServer,
    chunking: bool | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = new_token()
    sent = make_message(token)
    lmtp.set_debuglevel(1)
    result = lmtp.deliver(
        sent, SENDER, [dovecot.quota_tempfail_user, dovecot.user], chunking=chunking
    )
    check_transfer(capsys.readouterr().err, chunking)
    tempfull, user = result.recipients
    assert (tempfull.status, tempfull.reply.code, tempfull.code) == ("deferred", 250, 452)
    assert user.status == "accepted"
    assert result.deferred == (tempfull,)
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


@pytest.mark.parametrize("chunking", CHUNKING)
def test_all_refused_after_content(
    lmtp: smtpx.LMTP,
    dovecot: DovecotLMTPServer,
    chunking: bool | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = new_token()
    recipients = [dovecot.quota_full_user, dovecot.quota_tempfail_user]
    lmtp.set_debuglevel(1)
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        lmtp.deliver(make_message(token), SENDER, recipients, chunking=chunking)
    assert [code for code, _ in caught.value.recipients.values()] == [552, 452]
    result = caught.value.result  # type: ignore[attr-defined]
    assert [(r.status, r.reply.code) for r in result.recipients] == [
        ("refused", 250),
        ("deferred", 250),
    ]
    # The session is in step: the next message is delivered.
    sent = make_message(token)
    assert lmtp.deliver(sent, SENDER, dovecot.user, chunking=chunking).accepted
    check_transfer(capsys.readouterr().err, chunking, messages=2)
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


def test_none_accepted_at_rcpt(lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer) -> None:
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        lmtp.deliver(make_message(new_token()), SENDER, [dovecot.unknown_user])
    assert list(caught.value.recipients) == [dovecot.unknown_user]
    assert lmtp.noop()[0] == 250


@pytest.mark.parametrize("chunking", CHUNKING)
def test_large_dotted_message_streamed(
    lmtp: smtpx.LMTP,
    dovecot: DovecotLMTPServer,
    chunking: bool | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = new_token()
    lines = [b".line %d\r\n" % i if i % 2 else b"line %d\r\n" % i for i in range(200_000)]
    sent = make_message(token, body=b"".join(lines))  # about 2.4 MB: several BDAT chunks

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(sent), 100_000):
            yield sent[start : start + 100_000]

    lmtp.set_debuglevel(1)
    result = lmtp.deliver(pieces(), SENDER, dovecot.user, chunking=chunking)
    output = capsys.readouterr().err
    check_transfer(output, chunking)
    if chunking is None:  # several chunks
        assert sum(line.startswith(b"BDAT ") for line in commands_sent(output)) > 1
    assert result.accepted[0].data_reply is not None
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_async_lmtp(
    dovecot: DovecotLMTPServer, transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = new_token()
    sent = make_message(token)
    data_token = new_token()
    data_sent = make_message(data_token)

    async def main() -> tuple[smtpx.SendResult, smtpx.SendResult]:
        if transport == "tcp":
            client = smtpx.AsyncLMTP(dovecot.host, dovecot.port, timeout=TIMEOUT)
        else:
            client = smtpx.AsyncLMTP(dovecot.socket_path, timeout=TIMEOUT)
        async with client:
            recipients = [dovecot.user, dovecot.quota_full_user, dovecot.unknown_user]
            client.set_debuglevel(1)
            bdat = await client.deliver(sent, SENDER, recipients)
            check_transfer(capsys.readouterr().err, None)
            data = await client.deliver(data_sent, SENDER, recipients, chunking=False)
            check_transfer(capsys.readouterr().err, False)
        return bdat, data

    for result in asyncio.run(main()):
        assert [(r.status, r.code) for r in result.recipients] == [
            ("accepted", 250),
            ("refused", 552),
            ("refused", 550),
        ]
        assert [r.data_reply is not None for r in result.recipients] == [True, True, False]
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)
    dovecot.mailbox(dovecot.user).wait_for_intact(data_token, data_sent, sender=SENDER)
