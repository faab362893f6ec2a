"""The backend with real Django (5.2 or 6.1) against the integration suite's Postfix:
every message accepted is read back from the recipient's maildir."""

from __future__ import annotations

import smtplib
import socket
from email import message_from_bytes, policy

import django
import pytest
from django.core import mail as django_mail
from django.core.mail import EmailMessage, send_mail, send_mass_mail

import smtpx
from integration.servers import PostfixServer, new_token

from ._relay import Relay
from .conftest import Mail

pytestmark = pytest.mark.integration

SENDER = "app@client.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
TIMEOUT = 10.0  # every socket operation: a bug fails the test instead of hanging it


def silently(mail: Mail) -> dict[str, bool]:
    """How to ask for fail_silently: the argument (EMAIL_* settings), or the mailer's
    option (MAILERS: Django 6.1 deprecates the argument)."""
    return {} if mail.kind == "mailers" else {"fail_silently": True}


def test_send_mail_arrives(mail: Mail, postfix: PostfixServer) -> None:
    mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT)
    token = new_token()
    assert send_mail(token, "Hello from Django.\n", SENDER, [ALICE]) == 1
    delivered = postfix.mailbox(ALICE).wait_for(token, sender=SENDER)
    parsed = message_from_bytes(delivered, policy=policy.default)
    assert parsed["Subject"] == token
    assert parsed.get_content() == "Hello from Django.\n"


def test_send_mail_over_starttls_verified(mail: Mail, postfix: PostfixServer) -> None:
    mail.configure(
        host=postfix.host,
        port=postfix.port,
        use_tls=True,
        timeout=TIMEOUT,
        cafile=str(postfix.ca_file),
        server_name="localhost",
    )
    token = new_token()
    backend = mail.backend()
    msg = EmailMessage(token, "over TLS\n", SENDER, [ALICE])
    assert backend.send_messages([msg]) == 1
    postfix.mailbox(ALICE).wait_for(token, sender=SENDER)
    (attempt,) = msg.smtpx_result.attempts
    assert isinstance(attempt, smtpx.SendResult)


def test_send_mass_mail_sends_each_message(mail: Mail, postfix: PostfixServer) -> None:
    mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT)
    tokens = [new_token() for _ in range(5)]
    datatuple = [(token, f"message {i}\n", SENDER, [ALICE, BOB]) for i, token in enumerate(tokens)]
    assert send_mass_mail(datatuple) == 5
    for token in tokens:
        postfix.mailbox(ALICE).wait_for(token, sender=SENDER)
        postfix.mailbox(BOB).wait_for(token, sender=SENDER)


def test_email_message_with_attachments_cc_and_bcc(mail: Mail, postfix: PostfixServer) -> None:
    mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT)
    token = new_token()
    data = bytes(range(256)) * 40
    msg = EmailMessage(token, "See attached.\n", f"App <{SENDER}>", [ALICE], cc=[], bcc=[BOB])
    msg.attach("report.bin", data, "application/octet-stream")
    msg.attach("notes.txt", "ünïcode notes\n", "text/plain")
    assert msg.send() == 1
    assert sorted(msg.smtpx_result.delivered) == [ALICE, BOB]
    for address in (ALICE, BOB):
        delivered = postfix.mailbox(address).wait_for(token, sender=SENDER)
        parsed = message_from_bytes(delivered, policy=policy.default)
        assert "Bcc" not in parsed
        parts = {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}
        assert parts == {"report.bin": data, "notes.txt": "ünïcode notes\n"}


def test_partly_refused_message_counts_as_sent_with_its_result(
    mail: Mail, postfix: PostfixServer
) -> None:
    mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT)
    token = new_token()
    msg = EmailMessage(
        token, "body\n", SENDER, [ALICE, postfix.unknown_user, postfix.deferred_user]
    )
    assert mail.backend().send_messages([msg]) == 1
    result = msg.smtpx_result
    assert result.delivered == [ALICE]
    assert result.refused == [postfix.unknown_user]
    assert result.expired == [postfix.deferred_user]  # retry=None: deferred is final
    assert result.recipients[postfix.unknown_user].reason.code == 550
    postfix.mailbox(ALICE).wait_for(token, sender=SENDER)


def test_wholly_refused_message_raises_or_is_silent(mail: Mail, postfix: PostfixServer) -> None:
    mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT)
    ok_token, refused_token = new_token(), new_token()
    messages = [
        EmailMessage(refused_token, "body\n", SENDER, [postfix.unknown_user]),
        EmailMessage(ok_token, "body\n", SENDER, [ALICE]),
    ]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
        mail.backend().send_messages(messages)
    assert raised.value.recipients[postfix.unknown_user][0] == 550
    # The refusal did not stop the batch (Django's own backend stops at the first error).
    postfix.mailbox(ALICE).wait_for(ok_token, sender=SENDER)
    assert messages[0].smtpx_result.refused == [postfix.unknown_user]

    if mail.kind == "mailers":
        mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT, fail_silently=True)
    assert send_mail("x", "body\n", SENDER, [postfix.unknown_user], **silently(mail)) == 0


def test_unreachable_server_raises_or_is_silent(mail: Mail) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    mail.configure(host="127.0.0.1", port=port, timeout=TIMEOUT)
    with pytest.raises(OSError):
        send_mail("x", "body\n", SENDER, [ALICE])
    if mail.kind == "mailers":
        mail.configure(host="127.0.0.1", port=port, timeout=TIMEOUT, fail_silently=True)
    msg = EmailMessage("x", "body\n", SENDER, [ALICE])
    assert msg.send(**silently(mail)) == 0
    assert msg.smtpx_result.expired == [ALICE]
    assert isinstance(msg.smtpx_result.attempts[-1], OSError)


def test_connections_are_reused_across_calls(mail: Mail, postfix: PostfixServer) -> None:
    with Relay((postfix.host, postfix.port)) as relay:
        # One connection allowed, so that the count shows reuse: a pool with more opens
        # several for the first message (one per worker).
        mail.configure(host=relay_host(), port=relay.port, timeout=TIMEOUT, max_connections=1)
        tokens = [new_token() for _ in range(3)]
        for token in tokens:  # three requests, each with its own send_mail
            assert send_mail(token, "body\n", SENDER, [ALICE]) == 1
        with mail.backend() as backend:
            assert backend.send_messages([EmailMessage(tokens[0] + "-b", "b\n", SENDER, [BOB])])
        for token in tokens:
            postfix.mailbox(ALICE).wait_for(token, sender=SENDER)
        assert relay.connections == 1


def test_reconnects_after_the_server_drops_an_idle_connection(
    mail: Mail, postfix: PostfixServer
) -> None:
    with Relay((postfix.host, postfix.port)) as relay:
        mail.configure(host=relay_host(), port=relay.port, timeout=TIMEOUT, max_connections=1)
        first, second = new_token(), new_token()
        assert send_mail(first, "body\n", SENDER, [ALICE]) == 1
        assert relay.drop_all() == 1  # "421 4.4.2 ... timeout exceeded", then closed
        assert send_mail(second, "body\n", SENDER, [ALICE]) == 1
        postfix.mailbox(ALICE).wait_for(first, sender=SENDER)
        postfix.mailbox(ALICE).wait_for(second, sender=SENDER)
        assert relay.connections == 2


def test_mail_admins_goes_through_the_backend(mail: Mail, postfix: PostfixServer) -> None:
    from django.test.utils import override_settings

    mail.configure(host=postfix.host, port=postfix.port, timeout=TIMEOUT)
    token = new_token()
    # Django 6.0 takes addresses, and deprecates the (name, address) pairs 5.2 requires.
    admins = [ALICE] if django.VERSION >= (6, 0) else [("Admin", ALICE)]
    with override_settings(ADMINS=admins, SERVER_EMAIL=SENDER):
        django_mail.mail_admins(token, "something broke\n")
    postfix.mailbox(ALICE).wait_for(token, sender=SENDER)


def relay_host() -> str:
    return "127.0.0.1"
