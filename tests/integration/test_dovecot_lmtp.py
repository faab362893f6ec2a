"""smtpx.LMTP against a real Dovecot LMTP server, over TCP and over a unix socket.

LMTP answers DATA with one reply per accepted recipient (RFC 2033 section
4.2). ``LMTP.sendmail`` must read all of them, return the refused ones like
RCPT refusals, and raise SMTPRecipientsRefused when nobody got the message.
Every delivery is read back from the maildir and compared with what was sent.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

import smtpx

from .servers import DovecotLMTPServer, make_message, new_token

pytestmark = pytest.mark.integration

SENDER = "sender@client.test"
TIMEOUT = 10.0


def test_lhlo_extensions(lmtp: smtpx.LMTP) -> None:
    code, _ = lmtp.ehlo()  # sends LHLO for LMTP
    assert code == 250
    for extension in ("pipelining", "8bitmime", "chunking", "enhancedstatuscodes"):
        assert lmtp.has_extn(extension), extension


def test_message_arrives_intact(lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer) -> None:
    token = new_token()
    sent = make_message(token)
    assert lmtp.sendmail(SENDER, [dovecot.user], sent) == {}
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


def test_one_delivered_one_refused_at_rcpt(lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer) -> None:
    token = new_token()
    sent = make_message(token)
    refused = lmtp.sendmail(SENDER, [dovecot.user, dovecot.unknown_user], sent)
    assert list(refused) == [dovecot.unknown_user]
    code, message = refused[dovecot.unknown_user]
    assert code == 550
    assert message.startswith(b"5.1.1 ")
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


def test_per_recipient_replies_after_data(lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer) -> None:
    # Both quota users pass RCPT; their mailboxes refuse the message after DATA.
    token = new_token()
    sent = make_message(token)
    refused = lmtp.sendmail(
        SENDER, [dovecot.quota_full_user, dovecot.user, dovecot.quota_tempfail_user], sent
    )
    assert set(refused) == {dovecot.quota_full_user, dovecot.quota_tempfail_user}
    code, message = refused[dovecot.quota_full_user]
    assert (code, message[:6]) == (552, b"5.2.2 ")
    code, message = refused[dovecot.quota_tempfail_user]
    assert (code, message[:6]) == (452, b"4.2.2 ")
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)
    assert dovecot.mailbox(dovecot.quota_full_user).find(token) == []
    assert dovecot.mailbox(dovecot.quota_tempfail_user).find(token) == []


def test_refused_at_rcpt_and_after_data_together(
    lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer
) -> None:
    token = new_token()
    sent = make_message(token)
    refused = lmtp.sendmail(
        SENDER, [dovecot.unknown_user, dovecot.user, dovecot.quota_full_user], sent
    )
    assert {address: reply[0] for address, reply in refused.items()} == {
        dovecot.unknown_user: 550,
        dovecot.quota_full_user: 552,
    }
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


def test_all_refused_after_data_raises_and_the_session_stays_in_step(
    lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer
) -> None:
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        lmtp.sendmail(
            SENDER,
            [dovecot.quota_full_user, dovecot.quota_tempfail_user],
            make_message(new_token()),
        )
    assert {address: reply[0] for address, reply in caught.value.recipients.items()} == {
        dovecot.quota_full_user: 552,
        dovecot.quota_tempfail_user: 452,
    }
    # Every per-recipient reply was consumed: the next commands get their own.
    assert lmtp.noop()[0] == 250
    token = new_token()
    sent = make_message(token)
    assert lmtp.sendmail(SENDER, [dovecot.user], sent) == {}
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


def test_all_refused_at_rcpt_raises(lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer) -> None:
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        lmtp.sendmail(SENDER, [dovecot.unknown_user], make_message(new_token()))
    assert list(caught.value.recipients) == [dovecot.unknown_user]
    assert caught.value.recipients[dovecot.unknown_user][0] == 550


def test_bytes_with_bare_lf_and_leading_dots_arrive_intact(
    lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer
) -> None:
    token = new_token()
    body = b".leading dot\n..two\n.\n\nbare\rcr\n. dot space\nno line end at the end"
    sent = make_message(token, body=body).replace(b"\r\n", b"\n")
    assert lmtp.sendmail(SENDER, [dovecot.user], sent) == {}
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)


def test_send_message(lmtp: smtpx.LMTP, dovecot: DovecotLMTPServer) -> None:
    token = new_token()
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = dovecot.user
    message["Subject"] = token
    message.set_content("Line one.\n.Line two starts with a dot.\n")
    assert message.as_bytes().endswith(b"\n.Line two starts with a dot.\n")
    assert lmtp.send_message(message) == {}
    delivered = dovecot.mailbox(dovecot.user).wait_for(token, sender=SENDER)
    assert delivered.endswith(b"\n\nLine one.\n.Line two starts with a dot.\n")


def test_starttls_over_tcp(dovecot: DovecotLMTPServer) -> None:
    with smtpx.LMTP(dovecot.host, dovecot.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=dovecot.client_context())
        assert code == 220
        token = new_token()
        sent = make_message(token)
        refused = client.sendmail(SENDER, [dovecot.user, dovecot.quota_full_user], sent)
        assert list(refused) == [dovecot.quota_full_user]
    delivered = dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)
    assert b" with LMTPS" in delivered
