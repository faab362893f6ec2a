"""The embedded sink server (smtpx.testing), driven by the standard library's smtplib."""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from smtpx.testing import SinkMessage, SinkServer

SENDER = "alice@example.org"
BODY = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello Bob.\r\n"
TIMEOUT = 10.0


def sink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("smtpx-sink-server")]


@pytest.fixture
def server() -> Iterator[SinkServer]:
    with SinkServer() as sink:
        yield sink


@pytest.fixture
def tls_server() -> Iterator[SinkServer]:
    with SinkServer(starttls=True, auth={"alice": "s3cret", "bob": "pass word"}) as sink:
        yield sink


def connect(server: SinkServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, "client.example", timeout=TIMEOUT)


# -- lifecycle ---------------------------------------------------------------


def test_binds_loopback_on_an_ephemeral_port() -> None:
    server = SinkServer()
    assert server.port == 0
    with server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert f"127.0.0.1:{server.port}" in repr(server)
        with socket.create_connection((server.host, server.port), TIMEOUT) as sock:
            assert sock.recv(1024).startswith(b"220 localhost ")
    assert "stopped" in repr(server)


def test_two_servers_get_different_ports() -> None:
    with SinkServer() as one, SinkServer() as two:
        assert one.port != two.port


def test_stop_joins_the_thread_and_is_idempotent() -> None:
    server = SinkServer()
    server.start()
    assert len(sink_threads()) == 1
    server.stop()
    server.stop()
    assert sink_threads() == []


def test_start_twice_is_an_error(server: SinkServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_restart_keeps_messages() -> None:
    server = SinkServer()
    with server, connect(server) as client:
        client.sendmail(SENDER, ["bob@example.org"], BODY)
    with server, connect(server) as client:
        client.sendmail(SENDER, ["carol@example.org"], BODY)
    assert [m.rcpt_tos for m in server.messages] == [("bob@example.org",), ("carol@example.org",)]


def test_stop_cuts_open_connections_cleanly() -> None:
    # Warnings are errors: an unclosed socket or transport would fail the test.
    server = SinkServer(starttls=True)
    server.start()
    plain = connect(server)
    plain.ehlo()
    secure = connect(server)
    secure.starttls(context=server.client_context())
    secure.ehlo()
    server.stop()
    assert sink_threads() == []
    with pytest.raises(smtplib.SMTPServerDisconnected):
        plain.noop()
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        secure.noop()
    plain.close()
    secure.close()


def test_invalid_combinations() -> None:
    with pytest.raises(ValueError, match="LMTP"):
        SinkServer(refuse_after_data={"bob@example.org"})
    with pytest.raises(ValueError, match="starttls"):
        SinkServer(require_starttls=True)
    with pytest.raises(ValueError, match="one of"):
        SinkServer(starttls=True, implicit_tls=True)
    with pytest.raises(TypeError, match="set of addresses"):
        SinkServer(refuse_at_rcpt="bob@example.org")


def test_client_context_needs_tls(server: SinkServer) -> None:
    with pytest.raises(RuntimeError, match="no TLS"):
        server.client_context()


def test_import_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['aiosmtpd'] = None\n"
        "try:\n    import smtpx.testing\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'smtpx[testing]'" in out.stdout


# -- receiving ---------------------------------------------------------------


def test_message_arrives_intact(server: SinkServer) -> None:
    with connect(server) as client:
        assert client.sendmail(SENDER, ["bob@example.org", "carol@example.org"], BODY) == {}
    [message] = server.wait_for_messages(1)
    assert message == SinkMessage(
        mail_from=SENDER,
        rcpt_tos=("bob@example.org", "carol@example.org"),
        content=BODY,
        mail_options=(f"SIZE={len(BODY)}",),  # smtplib sends SIZE when offered
        rcpt_options=(),
        tls=False,
        auth_login=None,
    )
    assert message.parse()["Subject"] == "hi"


def test_null_reverse_path(server: SinkServer) -> None:
    with connect(server) as client:
        client.sendmail("", ["postmaster@example.org"], BODY)
    [message] = server.messages
    assert message.mail_from == ""
    assert message.rcpt_tos == ("postmaster@example.org",)


def test_dot_unstuffing_and_8bit(server: SinkServer) -> None:
    body = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\ncaf\xc3\xa9\r\n"
    with connect(server) as client:
        client.sendmail(SENDER, ["bob@example.org"], body, mail_options=["BODY=8BITMIME"])
    [message] = server.messages
    assert message.content == body
    assert message.mail_options == (f"SIZE={len(body)}", "BODY=8BITMIME")


def test_messages_is_a_snapshot_and_can_be_cleared(server: SinkServer) -> None:
    with connect(server) as client:
        client.sendmail(SENDER, ["bob@example.org"], BODY)
        snapshot = server.messages
        client.sendmail(SENDER, ["bob@example.org"], BODY)
    assert len(snapshot) == 1
    assert len(server.wait_for_messages(2)) == 2
    server.clear_messages()
    assert server.messages == []


def test_wait_for_messages_times_out(server: SinkServer) -> None:
    with pytest.raises(TimeoutError, match="expected 1 message"):
        server.wait_for_messages(1, timeout=0.05)


def test_wait_for_messages_wakes_up_on_arrival(server: SinkServer) -> None:
    def send() -> None:
        with connect(server) as client:
            client.sendmail(SENDER, ["bob@example.org"], BODY)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert len(server.wait_for_messages(1, timeout=TIMEOUT)) == 1
    finally:
        sender.join()


def test_refuse_at_rcpt_with_a_set() -> None:
    with SinkServer(refuse_at_rcpt={"nobody@example.org"}) as sink, connect(sink) as client:
        refused = client.sendmail(SENDER, ["bob@example.org", "nobody@example.org"], BODY)
        assert set(refused) == {"nobody@example.org"}
        code, text = refused["nobody@example.org"]
        assert code == 550
        assert text.startswith(b"5.1.1 <nobody@example.org>")
    [message] = sink.messages
    assert message.rcpt_tos == ("bob@example.org",)
    assert message.content == BODY


def test_refuse_at_rcpt_with_a_callable() -> None:
    def refuse(address: str) -> bool:
        return address.endswith("@blocked.example")

    with (
        SinkServer(refuse_at_rcpt=refuse) as sink,
        connect(sink) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        client.sendmail(SENDER, ["x@blocked.example"], BODY)
    assert sink.messages == []


# -- SMTPUTF8 ----------------------------------------------------------------


def test_smtputf8_send_message() -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "jörg@exämple.org"
    msg["To"] = "bob@example.org"
    msg["Subject"] = "grüße"
    msg.set_content("Grüße aus Köln\n")
    with SinkServer(smtputf8=True) as sink:
        with connect(sink) as client:
            client.send_message(msg)
        [message] = sink.messages
    assert message.mail_from == "jörg@exämple.org"
    assert "SMTPUTF8" in message.mail_options
    received = message.parse()
    assert received["Subject"] == "grüße"
    assert received.get_content().splitlines() == ["Grüße aus Köln"]


def test_smtputf8_can_be_turned_off() -> None:
    with SinkServer(smtputf8=False) as sink, connect(sink) as client:
        client.ehlo()
        assert not client.has_extn("smtputf8")
        assert client.has_extn("8bitmime")


# -- TLS ---------------------------------------------------------------------


def test_starttls_with_the_throwaway_ca(tls_server: SinkServer) -> None:
    with connect(tls_server) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # only after TLS
        code, _ = client.starttls(context=tls_server.client_context())
        assert code == 220
        client.ehlo()
        assert not client.has_extn("starttls")
        assert client.has_extn("auth")
        client.sendmail(SENDER, ["bob@example.org"], BODY)
    [message] = tls_server.messages
    assert message.tls
    assert message.content == BODY


def test_certificate_names_localhost_too(tls_server: SinkServer) -> None:
    with smtplib.SMTP("localhost", tls_server.port, "client.example", timeout=TIMEOUT) as client:
        client.starttls(context=tls_server.client_context())
        assert client.noop()[0] == 250


def test_client_context_verifies() -> None:
    context = SinkServer(starttls=True).client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_system_trust_store_rejects_the_certificate(tls_server: SinkServer) -> None:
    with connect(tls_server) as client, pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=ssl.create_default_context())


def test_ca_pem_is_the_trust_anchor(tls_server: SinkServer) -> None:
    context = ssl.create_default_context(cadata=tls_server.ca_pem.decode("ascii"))
    with connect(tls_server) as client:
        assert client.starttls(context=context)[0] == 220


def test_require_starttls() -> None:
    with SinkServer(starttls=True, require_starttls=True) as sink, connect(sink) as client:
        client.ehlo()
        code, text = client.mail(SENDER)
        assert code == 530
        assert b"STARTTLS" in text
        client.rset()
        client.starttls(context=sink.client_context())
        client.ehlo()
        client.sendmail(SENDER, ["bob@example.org"], BODY)
    assert len(sink.messages) == 1


def test_implicit_tls() -> None:
    with SinkServer(implicit_tls=True) as sink:
        with smtplib.SMTP_SSL(
            sink.host, sink.port, "client.example", timeout=TIMEOUT, context=sink.client_context()
        ) as client:
            client.sendmail(SENDER, ["bob@example.org"], BODY)
        [message] = sink.messages
    assert message.tls
    assert message.content == BODY


# -- AUTH --------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_after_starttls(tls_server: SinkServer, mechanism: str) -> None:
    with connect(tls_server) as client:
        client.starttls(context=tls_server.client_context())
        client.ehlo()
        client.user, client.password = "bob", "pass word"
        authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
        assert code == 235
        client.sendmail("bob@example.org", ["alice@example.org"], BODY)
    [message] = tls_server.messages
    assert message.auth_login == "bob"
    assert message.tls


def test_login_with_wrong_password(tls_server: SinkServer) -> None:
    with connect(tls_server) as client:
        client.starttls(context=tls_server.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("alice", "wrong")
        assert info.value.smtp_code == 535


def test_unknown_user(tls_server: SinkServer) -> None:
    with connect(tls_server) as client:
        client.starttls(context=tls_server.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("mallory", "s3cret")


def test_auth_before_tls_is_refused(tls_server: SinkServer) -> None:
    with connect(tls_server) as client:
        client.ehlo()
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
        assert code == 538


def test_auth_over_plaintext_when_asked() -> None:
    with SinkServer(auth={"alice": "s3cret"}) as sink, connect(sink) as client:
        assert client.login("alice", "s3cret")[0] == 235
        client.sendmail(SENDER, ["bob@example.org"], BODY)
    assert sink.messages[0].auth_login == "alice"
    assert not sink.messages[0].tls


def test_no_auth_when_no_credentials(server: SinkServer) -> None:
    with connect(server) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
        assert code == 502


def test_server_log_stays_off_stderr(
    tls_server: SinkServer, capfd: pytest.CaptureFixture[str]
) -> None:
    with connect(tls_server) as client:
        client.starttls(context=tls_server.client_context())
        client.ehlo()
        client.docmd("AUTH", "LOGIN")
        client.docmd("*")  # aborted AUTH: aiosmtpd logs a warning
        client.docmd("BOGUS")
    tls_server.stop()
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


# -- LMTP --------------------------------------------------------------------


def test_lmtp_replies_per_recipient_after_data() -> None:
    with SinkServer(lmtp=True, refuse_after_data={"bob@example.org"}) as sink:
        with smtplib.LMTP(sink.host, sink.port, "client.example", timeout=TIMEOUT) as client:
            # smtplib.LMTP reads one reply after DATA, so step through by hand.
            assert client.ehlo()[0] == 250  # LMTP.ehlo sends LHLO
            assert client.mail(SENDER)[0] == 250
            for rcpt in ("carol@example.org", "bob@example.org", "dave@example.org"):
                assert client.rcpt(rcpt)[0] == 250
            code, text = client.data(BODY)
            assert (code, text) == (250, b"2.1.5 <carol@example.org> delivered")
            code, text = client.getreply()
            assert code == 550
            assert text.startswith(b"5.1.1 <bob@example.org>")
            assert client.getreply() == (250, b"2.1.5 <dave@example.org> delivered")
            assert client.noop()[0] == 250
        [message] = sink.messages
    assert message.rcpt_tos == ("carol@example.org", "dave@example.org")
    assert message.content == BODY


def test_lmtp_everyone_refused_records_nothing() -> None:
    with SinkServer(lmtp=True, refuse_after_data=lambda rcpt: True) as sink:
        with smtplib.LMTP(sink.host, sink.port, "client.example", timeout=TIMEOUT) as client:
            client.ehlo()
            client.mail(SENDER)
            client.rcpt("bob@example.org")
            assert client.data(BODY)[0] == 550
        assert sink.messages == []


def test_lmtp_refuses_ehlo() -> None:
    with SinkServer(lmtp=True) as sink, connect(sink) as client:
        assert client.docmd("EHLO", "client.example")[0] == 500


def test_auth_mechanisms_can_be_narrowed() -> None:
    with SinkServer(auth={"alice": "s3cret"}, auth_mechanisms={"LOGIN"}) as sink:
        with connect(sink) as client:
            client.ehlo()
            assert client.esmtp_features["auth"].split() == ["LOGIN"]
            assert client.login("alice", "s3cret")[0] == 235  # smtplib falls back to LOGIN
            client.sendmail(SENDER, ["bob@example.org"], BODY)
        assert sink.messages[0].auth_login == "alice"
    with pytest.raises(ValueError, match="subset"):
        SinkServer(auth={"alice": "s3cret"}, auth_mechanisms={"CRAM-MD5"})
