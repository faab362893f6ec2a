"""smtpx.SMTP and smtpx.LMTP against the in-process aiosmtpd sink server.

Every test checks the message the server stored, not only the reply codes.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

import smtpx
from smtpx.testing import SinkServer

pytestmark = pytest.mark.integration

SENDER = "alice@example.org"
RCPT = "bob@example.org"
BODY = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello Bob.\r\n"
PASSWORD = "s3cret"
UTF8_PASSWORD = "pässwörd ✓ 密码"
TIMEOUT = 10.0


@pytest.fixture
def server() -> Iterator[SinkServer]:
    with SinkServer(starttls=True, auth={"alice": PASSWORD, "jörg": UTF8_PASSWORD}) as sink:
        yield sink


def client(server: SinkServer) -> smtpx.SMTP:
    return smtpx.SMTP(server.host, server.port, local_hostname="localhost", timeout=TIMEOUT)


def secured(server: SinkServer) -> smtpx.SMTP:
    smtp = client(server)
    smtp.starttls(context=server.client_context())
    return smtp


def assert_one_message(
    server: SinkServer, *, content: bytes = BODY, rcpts: tuple[str, ...] = (RCPT,)
) -> None:
    [message] = server.wait_for_messages(1)
    assert message.mail_from == SENDER
    assert message.rcpt_tos == rcpts
    assert message.content == content


# -- STARTTLS ----------------------------------------------------------------


def test_starttls_with_the_generated_certificate(server: SinkServer) -> None:
    with client(server) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        code, _ = smtp.starttls(context=server.client_context())
        assert code == 220
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.sendmail(SENDER, [RCPT], BODY) == {}
    assert_one_message(server)
    assert server.messages[0].tls


def test_default_starttls_verifies_and_rejects_an_unknown_ca(server: SinkServer) -> None:
    with client(server) as smtp, pytest.raises(ssl.SSLCertVerificationError):
        smtp.starttls()
    assert server.messages == []


def test_starttls_checks_the_host_name(server: SinkServer) -> None:
    context = server.client_context()
    with smtpx.SMTP("localhost", server.port, local_hostname="localhost", timeout=TIMEOUT) as smtp:
        smtp.starttls(context=context)
        smtp.sendmail(SENDER, [RCPT], BODY)
    assert_one_message(server)


def test_smtp_ssl_with_implicit_tls() -> None:
    with SinkServer(implicit_tls=True) as sink:
        with smtpx.SMTP_SSL(
            sink.host,
            sink.port,
            local_hostname="localhost",
            timeout=TIMEOUT,
            context=sink.client_context(),
        ) as smtp:
            smtp.sendmail(SENDER, [RCPT], BODY)
        assert_one_message(sink)
        assert sink.messages[0].tls


# -- AUTH --------------------------------------------------------------------


def test_login_picks_plain(server: SinkServer) -> None:
    with secured(server) as smtp:
        code, _ = smtp.login("alice", PASSWORD)
        assert code == 235
        smtp.sendmail(SENDER, [RCPT], BODY)
    assert_one_message(server)
    assert server.messages[0].auth_login == "alice"


def test_login_falls_back_to_login_mechanism() -> None:
    with SinkServer(starttls=True, auth={"alice": PASSWORD}, auth_mechanisms={"LOGIN"}) as sink:
        with secured(sink) as smtp:
            smtp.ehlo()
            assert smtp.esmtp_features["auth"].split() == ["LOGIN"]
            assert smtp.login("alice", PASSWORD)[0] == 235
            smtp.sendmail(SENDER, [RCPT], BODY)
        assert_one_message(sink)
        assert sink.messages[0].auth_login == "alice"


def test_auth_plain_explicitly(server: SinkServer) -> None:
    with secured(server) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = "alice", PASSWORD
        code, _ = smtp.auth("PLAIN", smtp.auth_plain)
        assert code == 235
        smtp.sendmail(SENDER, [RCPT], BODY)
    assert_one_message(server)
    assert server.messages[0].auth_login == "alice"


def test_auth_login_explicitly_without_initial_response(server: SinkServer) -> None:
    with secured(server) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = "alice", PASSWORD
        code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        assert code == 235
        smtp.sendmail(SENDER, [RCPT], BODY)
    assert_one_message(server)
    assert server.messages[0].auth_login == "alice"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_utf8_credentials(mechanism: str) -> None:
    # RFC 4616 section 2 and RFC 4954 section 4: SASL strings are UTF-8.
    with SinkServer(
        starttls=True, auth={"jörg": UTF8_PASSWORD}, auth_mechanisms={mechanism}
    ) as sink:
        with secured(sink) as smtp:
            assert smtp.login("jörg", UTF8_PASSWORD)[0] == 235
            smtp.sendmail(SENDER, [RCPT], BODY)
        assert_one_message(sink)
        assert sink.messages[0].auth_login == "jörg"


def test_wrong_password_is_refused(server: SinkServer) -> None:
    with secured(server) as smtp:
        with pytest.raises(smtpx.SMTPAuthenticationError) as info:
            smtp.login("alice", "wrong")
        assert info.value.smtp_code == 535
        with pytest.raises(smtpx.SMTPAuthenticationError):
            smtp.login("jörg", "pässwörd")  # a prefix of the real one
    assert server.messages == []


def test_login_in_the_clear_warns_while_starttls_is_offered() -> None:
    with SinkServer(starttls=True, auth={"alice": PASSWORD}, auth_require_tls=False) as sink:
        with client(sink) as smtp:
            with pytest.warns(smtpx.InsecureWarning):
                assert smtp.login("alice", PASSWORD)[0] == 235
            smtp.sendmail(SENDER, [RCPT], BODY)
        assert_one_message(sink)
        assert sink.messages[0].auth_login == "alice"
        assert not sink.messages[0].tls


# -- SMTPUTF8 and 8-bit ------------------------------------------------------


def test_send_message_with_a_non_ascii_address(server: SinkServer) -> None:
    msg = EmailMessage()
    msg["From"] = "Jörg <jörg@exämple.org>"
    msg["To"] = "Zoë <zoë@exämple.org>"
    msg["Subject"] = "Grüße"
    msg.set_content("Grüße aus Köln\n")
    with secured(server) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("smtputf8")
        assert smtp.send_message(msg) == {}
    [message] = server.wait_for_messages(1)
    assert message.mail_from == "jörg@exämple.org"
    assert message.rcpt_tos == ("zoë@exämple.org",)
    assert "SMTPUTF8" in message.mail_options
    received = message.parse()
    assert received["From"] == "Jörg <jörg@exämple.org>"
    assert received["Subject"] == "Grüße"
    assert received.get_content().splitlines() == ["Grüße aus Köln"]


def test_eight_bit_body_arrives_byte_for_byte(server: SinkServer) -> None:
    body = "Subject: café\r\n\r\nçà et là, 日本語\r\n".encode()
    with secured(server) as smtp:
        smtp.sendmail(SENDER, [RCPT], body, mail_options=["BODY=8BITMIME"])
    assert_one_message(server, content=body)
    assert "BODY=8BITMIME" in server.messages[0].mail_options


# -- DATA transparency -------------------------------------------------------


def test_bare_lf_and_leading_dots(server: SinkServer) -> None:
    body = b"Subject: dots\n\n.leading dot\n..two dots\n.\nafter a lone dot\nno final newline"
    expected = (
        b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
        b"after a lone dot\r\nno final newline\r\n"
    )
    with secured(server) as smtp:
        smtp.sendmail(SENDER, [RCPT], body)
    assert_one_message(server, content=expected)


def test_crlf_body_with_dots_is_unchanged(server: SinkServer) -> None:
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n"
    with secured(server) as smtp:
        smtp.sendmail(SENDER, [RCPT], body)
    assert_one_message(server, content=body)


# -- refusals ----------------------------------------------------------------


def test_recipient_refused_at_rcpt() -> None:
    with SinkServer(refuse_at_rcpt={"nobody@example.org"}) as sink:
        with client(sink) as smtp:
            refused = smtp.sendmail(SENDER, [RCPT, "nobody@example.org"], BODY)
        assert list(refused) == ["nobody@example.org"]
        code, text = refused["nobody@example.org"]
        assert code == 550
        assert text.startswith(b"5.1.1 <nobody@example.org>")
        assert_one_message(sink)


def test_all_recipients_refused_at_rcpt() -> None:
    with SinkServer(refuse_at_rcpt=lambda rcpt: True) as sink:
        with client(sink) as smtp, pytest.raises(smtpx.SMTPRecipientsRefused) as info:
            smtp.sendmail(SENDER, [RCPT], BODY)
        assert info.value.recipients[RCPT][0] == 550
        assert sink.messages == []


# -- LMTP --------------------------------------------------------------------


def test_lmtp_one_delivered_one_refused_after_data() -> None:
    refused_rcpt = "full@example.org"
    with SinkServer(lmtp=True, refuse_after_data={refused_rcpt}) as sink:
        with smtpx.LMTP(sink.host, sink.port, local_hostname="localhost", timeout=TIMEOUT) as lmtp:
            refused = lmtp.sendmail(SENDER, [RCPT, refused_rcpt], BODY)
            assert list(refused) == [refused_rcpt]
            code, text = refused[refused_rcpt]
            assert code == 550
            assert text.startswith(b"5.1.1 <full@example.org>")
            # The session is still in step: every per-recipient reply was read.
            assert lmtp.noop()[0] == 250
        assert_one_message(sink)


def test_lmtp_refusals_at_rcpt_and_after_data() -> None:
    with SinkServer(
        lmtp=True, refuse_at_rcpt={"gone@example.org"}, refuse_after_data={"full@example.org"}
    ) as sink:
        with smtpx.LMTP(sink.host, sink.port, local_hostname="localhost", timeout=TIMEOUT) as lmtp:
            rcpts = ["gone@example.org", RCPT, "full@example.org", "carol@example.org"]
            refused = lmtp.sendmail(SENDER, rcpts, BODY)
            assert sorted(refused) == ["full@example.org", "gone@example.org"]
            assert {code for code, _ in refused.values()} == {550}
            lmtp.sendmail(SENDER, [RCPT], BODY)  # and the next transaction works
        first, second = sink.wait_for_messages(2)
        assert first.rcpt_tos == (RCPT, "carol@example.org")
        assert first.content == BODY
        assert second.rcpt_tos == (RCPT,)
        assert second.content == BODY
