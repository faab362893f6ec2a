"""smtpx's smtplib-compatible API against a real Postfix.

Every accepted message is read back from the recipient's maildir and compared
with what was sent: a 250 from the server is not enough to pass.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

import smtpx

from .servers import PostfixServer, make_message, new_token, strip_trace_fields

pytestmark = pytest.mark.integration

SENDER = "sender@client.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
JOHN = "jöhn@example.test"
# Bound on every socket operation, so that a protocol bug fails instead of hanging.
TIMEOUT = 10.0


@pytest.fixture
def client(postfix: PostfixServer) -> Iterator[smtpx.SMTP]:
    with smtpx.SMTP(postfix.host, postfix.port, timeout=TIMEOUT) as smtp:
        yield smtp


def test_ehlo_advertises_the_configured_extensions(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    code, _ = client.ehlo()
    assert code == 250
    for extension in ("pipelining", "chunking", "8bitmime", "smtputf8", "dsn", "starttls"):
        assert client.has_extn(extension), extension
    assert client.has_extn("SIZE")  # keywords are case-insensitive
    assert client.esmtp_features["size"] == str(postfix.message_size_limit)


def test_plain_send_arrives_intact(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    delivered = postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    assert b" with ESMTP id " in delivered  # no TLS on this connection


def test_str_message_arrives_intact(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token).decode("ascii")
    assert client.sendmail(SENDER, ALICE, sent) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent.encode("ascii"), sender=SENDER)


def test_starttls_then_send(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    client.ehlo()
    code, _ = client.starttls(context=postfix.client_context())
    assert code == 220
    client.ehlo()
    assert not client.has_extn("starttls")  # the post-TLS EHLO replaced the old list
    assert client.has_extn("pipelining")
    token = new_token()
    sent = make_message(token)
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    delivered = postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    assert b" with ESMTPS id " in delivered


def test_starttls_default_context_rejects_the_untrusted_certificate(
    client: smtpx.SMTP,
) -> None:
    client.ehlo()
    # Unlike smtplib, smtpx verifies by default; the test CA is not in the
    # system store, so the handshake must fail (and not silently go on).
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        client.starttls()
    assert isinstance(caught.value, ssl.SSLError)
    assert isinstance(caught.value, OSError)
    client.close()


def test_starttls_default_context_uses_the_system_trust_store(
    postfix: PostfixServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenSSL's default verify paths honour SSL_CERT_FILE: with the test CA
    # there, the default context must verify the chain and the host name
    # (the certificate is for 127.0.0.1) and succeed.
    monkeypatch.setenv("SSL_CERT_FILE", str(postfix.ca_file))
    with smtpx.SMTP(postfix.host, postfix.port, timeout=TIMEOUT) as smtp:
        code, _ = smtp.starttls()
        assert code == 220
        token = new_token()
        sent = make_message(token)
        assert smtp.sendmail(SENDER, [ALICE], sent) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_smtp_ssl_send(postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)
    with smtpx.SMTP_SSL(
        postfix.host, postfix.smtps_port, context=postfix.client_context(), timeout=TIMEOUT
    ) as smtp:
        assert smtp.sendmail(SENDER, [ALICE], sent) == {}
    delivered = postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    assert b" with ESMTPS id " in delivered


def test_sendmail_reports_refused_recipients_and_delivers_the_rest(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    token = new_token()
    sent = make_message(token)
    refused = client.sendmail(SENDER, [ALICE, postfix.unknown_user, postfix.deferred_user], sent)
    assert set(refused) == {postfix.unknown_user, postfix.deferred_user}
    code, message = refused[postfix.unknown_user]
    assert code == 550
    assert message.startswith(b"5.1.1 ")
    code, message = refused[postfix.deferred_user]
    assert code == 450
    assert message.startswith(b"4.2.0 ")
    assert b"try later" in message
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    # Same queue file as Alice's copy: had it been accepted, it would be there by now.
    assert postfix.mailbox(postfix.deferred_user).find(token) == []


def test_all_recipients_refused_raises(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        client.sendmail(SENDER, [postfix.unknown_user, postfix.deferred_user], make_message(token))
    recipients = caught.value.recipients
    assert {address: reply[0] for address, reply in recipients.items()} == {
        postfix.unknown_user: 550,
        postfix.deferred_user: 450,
    }
    # The transaction was reset, and the session goes on.
    assert client.noop()[0] == 250
    token = new_token()
    sent = make_message(token)
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_smtputf8_send_message(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    message = EmailMessage()
    message["From"] = "Zoë <zoë@client.test>"
    message["To"] = f"Jöhn <{JOHN}>"
    message["Subject"] = f"Grüße {token}"
    message["Message-ID"] = f"<{token}@client.test>"
    message.set_content("Grüße aus Köln.\n.Ünd eine Zeile mit Punkt.\n")
    assert client.send_message(message) == {}

    # The envelope went through as UTF-8 (RFC 6531), not downgraded: the Return-Path and
    # Delivered-To are the UTF-8 addresses.
    delivered = postfix.mailbox(JOHN).wait_for(token, sender="zoë@client.test")
    assert b" with UTF8SMTP id " in delivered
    # Headers travel as raw UTF-8 (no RFC 2047 encoded-words).
    assert f"Subject: Grüße {token}\n".encode() in delivered
    received = BytesParser(policy=policy.default).parsebytes(strip_trace_fields(delivered))
    assert isinstance(received, EmailMessage)
    assert [(name, str(value)) for name, value in received.items()] == [
        (name, str(value)) for name, value in message.items()
    ]
    assert received.get_content() == message.get_content()


def test_send_message_strips_bcc_but_delivers_to_it(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    token = new_token()
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ALICE
    message["Bcc"] = BOB
    message["Subject"] = token
    message.set_content("Hello Bob, quietly.\n")
    assert client.send_message(message) == {}
    for address in (ALICE, BOB):
        delivered = postfix.mailbox(address).wait_for(token, sender=SENDER)
        assert b"Bcc:" not in delivered
        assert delivered.endswith(b"\n\nHello Bob, quietly.\n")


def test_bytes_with_bare_lf_and_leading_dots_arrive_intact(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    token = new_token()
    body = (
        b".leading dot\n"
        b"..two leading dots\n"
        b".\n"  # a lone dot would end DATA early if it were not stuffed
        b"\n"
        b". dot space\n"
        b"middle\n"
        b"...\n"
        b"last line without a line end."
    )
    sent = make_message(token, body=body).replace(b"\r\n", b"\n")
    assert b"\r" not in sent
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_bytes_with_bare_cr_arrive_as_separate_lines(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    token = new_token()
    sent = make_message(token, body=b"first\rsecond\r.third\r\n")
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    delivered = postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    assert delivered.endswith(b"\n\nfirst\nsecond\n.third\n")


def test_large_message_with_many_dot_lines_arrives_intact(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    # ~2 MB of lines that all need dot-stuffing, with a mix of line ends, so
    # that a streaming encoder meets them across every chunk boundary.
    token = new_token()
    lines = [b"." * (n % 7 + 1) + b"%06d" % n for n in range(120_000)]
    ends = (b"\r\n", b"\n", b"\r")
    body = b"".join(line + ends[n % 3] for n, line in enumerate(lines))
    sent = make_message(token, body=body)
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_8bitmime_body_arrives_intact(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    body = "Grüße, ½ € — ünïcödé in an 8bit body.\r\n".encode()
    sent = make_message(token, body=body).replace(
        b"\r\n\r\n",
        b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n",
        1,
    )
    assert client.sendmail(SENDER, [ALICE], sent, mail_options=["BODY=8BITMIME"]) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_size_parameter(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    client.ehlo()
    limit = int(client.esmtp_features["size"])
    assert limit == postfix.message_size_limit
    assert client.mail(SENDER, [f"SIZE={limit}"])[0] == 250
    client.rset()
    code, message = client.mail(SENDER, [f"SIZE={limit + 1}"])
    assert code == 552
    assert message.startswith(b"5.3.4 ")
    client.rset()
    token = new_token()
    sent = make_message(token)
    assert client.sendmail(SENDER, [ALICE], sent) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_oversized_message_is_refused_at_mail_from(
    client: smtpx.SMTP, postfix: PostfixServer
) -> None:
    # sendmail declares SIZE= itself when the server offers SIZE, so the
    # server refuses before a byte of the body is sent.
    line = b"x" * 76 + b"\r\n"
    sent = make_message(new_token(), body=line * (postfix.message_size_limit // len(line) + 1))
    assert len(sent) > postfix.message_size_limit
    with pytest.raises(smtpx.SMTPSenderRefused) as caught:
        client.sendmail(SENDER, [ALICE], sent)
    assert caught.value.smtp_code == 552
    assert client.noop()[0] == 250


def test_dsn_parameters_are_accepted(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)
    refused = client.sendmail(
        SENDER,
        [ALICE],
        sent,
        mail_options=["RET=HDRS", "ENVID=abc"],
        rcpt_options=["NOTIFY=NEVER"],
    )
    assert refused == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_several_transactions_on_one_connection(client: smtpx.SMTP, postfix: PostfixServer) -> None:
    sent_messages = {}
    for recipients in ([ALICE], [ALICE, BOB], [BOB, postfix.unknown_user]):
        token = new_token()
        sent = make_message(token)
        refused = client.sendmail(SENDER, recipients, sent)
        assert set(refused) == set(recipients) - {ALICE, BOB}
        sent_messages[token] = (sent, [r for r in recipients if r not in refused])
    for token, (sent, delivered_to) in sent_messages.items():
        for address in delivered_to:
            postfix.mailbox(address).wait_for_intact(token, sent, sender=SENDER)
