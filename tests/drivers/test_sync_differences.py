"""The blocking driver against a scripted server: each deliberate difference from smtplib
(docs/compatibility.md), shown on the exact bytes that cross the wire."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import ssl
import sys
import time
import warnings

import pytest

import smtpx

from .scripted import Peer, scripted_server

TIMEOUT = 5


def _client(port: int, **kwargs: object) -> smtpx.SMTP:
    return smtpx.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=TIMEOUT, **kwargs)


def _quit(peer: Peer) -> None:
    peer.expect(b"quit")
    peer.send(b"221 bye\r\n")


# ---------------------------------------------------------------- TLS verification


def _starttls_server(context: ssl.SSLContext, then: str = "quit"):  # type: ignore[no-untyped-def]
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS")
        peer.expect(b"starttls")
        peer.send(b"220 go ahead\r\n")
        try:
            peer.starttls(context)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate
        peer.expect(b"ehlo ")
        peer.send(b"250-test.example\r\n250 AUTH PLAIN\r\n")
        if then == "quit":
            _quit(peer)

    return handler


def test_starttls_verifies_the_certificate_by_default(server_context: ssl.SSLContext) -> None:
    with scripted_server(_starttls_server(server_context)) as (port, _):
        smtp = _client(port)
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls()  # the test CA is not in the system's trust store
        assert smtp.sock is None  # a failed handshake leaves nothing half-open


def test_starttls_checks_the_host_actually_connected_to(
    other_host_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # SMTP() then connect(host): smtplib would check against "" (no host name check).
    with scripted_server(_starttls_server(other_host_context)) as (port, _):
        smtp = smtpx.SMTP(local_hostname="client.test", timeout=TIMEOUT)
        smtp.connect("127.0.0.1", port)
        with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):
            smtp.starttls(context=client_context)


def test_starttls_succeeds_and_forgets_capabilities(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with scripted_server(_starttls_server(server_context)) as (port, _):
        smtp = smtpx.SMTP(local_hostname="client.test", timeout=TIMEOUT)
        smtp.connect("localhost", port)
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert smtp.starttls(context=client_context) == (220, b"go ahead")
        assert smtp.esmtp_features == {}  # RFC 3207 section 4.2
        smtp.ehlo()
        assert smtp.has_extn("auth") and not smtp.has_extn("starttls")
        smtp.quit()


def test_starttls_discards_plaintext_injected_after_220(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS")
        peer.expect(b"starttls")
        # A man in the middle appends a reply in clear, hoping it is read inside TLS.
        peer.send(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
        time.sleep(0.2)
        peer.starttls(server_context)
        peer.expect(b"ehlo ")
        peer.send(b"250-test.example\r\n250 SIZE 1000\r\n")
        _quit(peer)

    with scripted_server(handler) as (port, _):
        smtp = smtpx.SMTP("localhost", port, local_hostname="client.test", timeout=TIMEOUT)
        smtp.starttls(context=client_context)
        assert smtp.ehlo() == (250, b"test.example\nSIZE 1000")
        assert not smtp.has_extn("auth")
        smtp.quit()


def test_smtp_ssl_verifies_by_default(server_context: ssl.SSLContext) -> None:
    def handler(peer: Peer) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            peer.starttls(server_context)  # the client rejects the certificate

    with scripted_server(handler) as (port, _), pytest.raises(ssl.SSLCertVerificationError):
        smtpx.SMTP_SSL("127.0.0.1", port, timeout=TIMEOUT)


def test_smtp_ssl_with_trusted_context(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"220 tls.example ESMTP\r\n")
        _quit(peer)

    with scripted_server(handler, wrap=server_context) as (port, _):
        smtp = smtpx.SMTP_SSL("localhost", port, context=client_context, timeout=TIMEOUT)
        assert isinstance(smtp.sock, ssl.SSLSocket)
        smtp.quit()


# ------------------------------------------------------------ command injection


def test_bad_recipient_is_refused_before_anything_is_sent() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        _quit(peer)  # no MAIL, no RCPT: the next line must be QUIT

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        with pytest.raises(ValueError, match="prohibited newline"):
            smtp.sendmail("a@example.test", ["b@example.test", "c@x\r\nDATA"], "hi")
        smtp.quit()


def test_injected_rcpt_resets_the_open_transaction() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"mail from:<a@example.test>")
        peer.send(b"250 ok\r\n")
        peer.expect(b"rset")
        peer.send(b"250 reset\r\n")
        _quit(peer)

    with scripted_server(handler) as (port, peers):
        smtp = _client(port)
        smtp.ehlo()
        assert smtp.mail("a@example.test") == (250, b"ok")
        with pytest.raises(ValueError):
            smtp.rcpt("b@example.test>\nRCPT TO:<evil@example.test")
        smtp.quit()
    assert not any(b"evil" in line for line in peers[0].received)


@pytest.mark.parametrize("bad", ["x\0y", "x\ry", "x\ny"])
def test_control_characters_refused_in_options_and_names(bad: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        _quit(peer)

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        with pytest.raises(ValueError, match="prohibited"):
            smtp.mail("a@example.test", [bad])
        with pytest.raises(ValueError, match="prohibited"):
            smtp.helo(bad)
        smtp.quit()


# ---------------------------------------------------------------- message content


def test_bytes_bodies_are_normalized_and_dot_stuffed() -> None:
    content: list[bytes] = []

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"8BITMIME")
        peer.expect(b"mail from:")
        peer.send(b"250 ok\r\n")
        peer.expect(b"rcpt to:")
        peer.send(b"250 ok\r\n")
        peer.expect(b"data")
        peer.send(b"354 go\r\n")
        content.append(peer.read_content())
        peer.send(b"250 queued as 42\r\n")
        _quit(peer)

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        # A bare-LF line of '.', and "\r.\r" (the 2023 SMTP smuggling shape).
        body = b"Subject: x\n\nline1\n.\nline2\r.\r\nMAIL FROM:<evil>\rend"
        assert smtp.sendmail("a@example.test", "b@example.test", body) == {}
        smtp.quit()
    assert content[0] == (
        b"Subject: x\r\n\r\nline1\r\n..\r\nline2\r\n..\r\nMAIL FROM:<evil>\r\nend\r\n.\r\n"
    )


# ------------------------------------------------------------------------- LMTP


def _lmtp_handler(data_replies: list[bytes]):  # type: ignore[no-untyped-def]
    def handler(peer: Peer) -> None:
        peer.send(b"220 lmtp.example LMTP\r\n")
        peer.expect(b"lhlo ")
        peer.send(b"250-lmtp.example\r\n250 PIPELINING\r\n")
        peer.expect(b"mail from:")
        peer.send(b"250 ok\r\n")
        for _ in data_replies:
            peer.expect(b"rcpt to:")
            peer.send(b"250 ok\r\n")
        peer.expect(b"rcpt to:<nobody@example.test>")
        peer.send(b"550 5.1.1 no such user\r\n")
        peer.expect(b"data")
        peer.send(b"354 go\r\n")
        peer.read_content()
        peer.send(b"".join(data_replies))
        peer.expect(b"noop")
        peer.send(b"250 noop ok\r\n")
        _quit(peer)

    return handler


def test_lmtp_reads_one_reply_per_accepted_recipient() -> None:
    replies = [b"250 2.0.0 <a@example.test> delivered\r\n", b"552 5.2.2 <b@example.test> full\r\n"]
    with scripted_server(_lmtp_handler(replies)) as (port, _):
        lmtp = smtpx.LMTP("127.0.0.1", port, local_hostname="client.test", timeout=TIMEOUT)
        refused = lmtp.sendmail(
            "s@example.test", ["a@example.test", "b@example.test", "nobody@example.test"], "hi"
        )
        assert refused == {
            "b@example.test": (552, b"5.2.2 <b@example.test> full"),
            "nobody@example.test": (550, b"5.1.1 no such user"),
        }
        # The replies stayed in step: NOOP gets its own reply, not a left-over one.
        assert lmtp.noop() == (250, b"noop ok")
        lmtp.quit()


def test_lmtp_raises_when_no_recipient_was_delivered() -> None:
    replies = [b"452 4.2.2 <a@example.test> over quota\r\n", b"552 5.2.2 <b@example.test> full\r\n"]
    with scripted_server(_lmtp_handler(replies)) as (port, _):
        lmtp = smtpx.LMTP("127.0.0.1", port, local_hostname="client.test", timeout=TIMEOUT)
        with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
            lmtp.sendmail(
                "s@example.test", ["a@example.test", "b@example.test", "nobody@example.test"], "x"
            )
        assert set(caught.value.recipients) == {
            "a@example.test",
            "b@example.test",
            "nobody@example.test",
        }
        assert lmtp.noop() == (250, b"noop ok")
        lmtp.quit()


# ---------------------------------------------------------------- authentication


def test_credentials_are_utf8_and_not_in_debug_output() -> None:
    seen: list[bytes] = []

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN")
        line = peer.expect(b"AUTH PLAIN ")
        seen.append(base64.b64decode(line.split()[2]))
        peer.send(b"235 ok\r\n")
        _quit(peer)

    stderr = io.StringIO()
    with scripted_server(handler) as (port, _), contextlib.redirect_stderr(stderr):
        smtp = _client(port)
        smtp.set_debuglevel(1)
        assert smtp.login("jöhn", "pässwörd") == (235, b"ok")
        smtp.quit()
    assert seen == ["\0jöhn\0pässwörd".encode()]
    transcript = stderr.getvalue()
    assert "AUTH PLAIN ********" in transcript
    assert "pässwörd" not in transcript
    assert base64.b64encode(seen[0]).decode() not in transcript


def test_bad_base64_challenge_cancels_and_raises() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH LOGIN")
        peer.expect(b"AUTH LOGIN")
        peer.send(b"334 not*base64!\r\n")
        peer.expect(b"*")
        peer.send(b"501 cancelled\r\n")
        _quit(peer)

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        smtp.user, smtp.password = "u", "p"
        with pytest.raises(smtpx.SMTPAuthenticationError, match="base64"):
            smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        smtp.quit()


def test_login_in_clear_warns_when_starttls_is_offered() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS", b"AUTH PLAIN")
        peer.expect(b"AUTH PLAIN ")
        peer.send(b"235 ok\r\n")
        _quit(peer)

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        with pytest.warns(smtpx.InsecureWarning, match="STARTTLS"):
            smtp.login("u", "p")
        smtp.quit()


def test_login_in_clear_without_starttls_offer_does_not_warn() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN")
        peer.expect(b"AUTH PLAIN ")
        peer.send(b"235 ok\r\n")
        _quit(peer)

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            smtp.login("u", "p")
        smtp.quit()


# ------------------------------------------------------------- malformed replies


@pytest.mark.parametrize(
    "reply",
    [
        b"25O ok\r\n",  # not three digits
        b"250-first\r\n251 second\r\n",  # mixed codes
        b"250xok\r\n",  # no separator
        b"\r\n",  # empty line
    ],
)
def test_malformed_reply_is_an_error_and_closes(reply: bytes) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.send(reply)
        peer.readline()  # until the client closes

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        with pytest.raises(smtpx.SMTPProtocolError):
            smtp.noop()
        assert smtp.sock is None


def test_reply_cut_off_before_its_line_end_is_a_disconnect() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.send(b"250 ok")  # and close, no CRLF

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        with pytest.raises(smtpx.SMTPServerDisconnected):
            smtp.noop()


def test_reply_with_too_many_lines_is_refused() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.send(b"250-x\r\n" * 1001 + b"250 end\r\n")
        peer.readline()

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        with pytest.raises(smtpx.SMTPProtocolError, match="lines"):
            smtp.noop()
        assert smtp.sock is None


def test_unsolicited_reply_is_detected() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.send(b"250 ok\r\n250 and one more\r\n")
        peer.readline()

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        assert smtp.noop() == (250, b"ok")
        time.sleep(0.2)  # let the extra reply arrive
        smtp.sock.settimeout(0.5)
        # The extra reply is read with the next one's bytes at the latest: it must never
        # be taken as the answer to RSET.
        with pytest.raises(smtpx.SMTPProtocolError):
            code = smtp.rset()
            assert code != (250, b"and one more")
            smtp.noop()


def test_421_closes_the_connection() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.send(b"421 4.3.2 shutting down\r\n")

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        assert smtp.noop() == (421, b"4.3.2 shutting down")
        assert smtp.sock is None
        with pytest.raises(smtpx.SMTPServerDisconnected):
            smtp.noop()


def test_timeout_bounds_the_whole_reply_not_each_read() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        with contextlib.suppress(OSError):
            for byte in b"250 " + b"x" * 100:
                peer.send(bytes([byte]))
                time.sleep(0.05)  # each byte well inside the timeout

    with scripted_server(handler) as (port, _):
        smtp = smtpx.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=0.5)
        smtp.ehlo()
        started = time.monotonic()
        with pytest.raises(smtpx.SMTPTimeoutError) as caught:
            smtp.noop()
        assert time.monotonic() - started < 1.5
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, smtpx.SMTPServerDisconnected)
        assert smtp.sock is None


# ------------------------------------------------------------ session lifecycle


def test_reconnect_starts_a_fresh_session() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.readline()

    with scripted_server(handler) as (port, _):
        smtp = _client(port)
        smtp.ehlo()
        assert smtp.has_extn("size")
        smtp.close()
    with scripted_server(handler) as (port, _):
        smtp.connect("127.0.0.1", port)
        assert smtp.esmtp_features == {} and smtp.ehlo_resp is None
        smtp.ehlo_or_helo_if_needed()  # EHLO again, on the new server
        assert smtp.has_extn("size")
        smtp.close()


def test_audit_events() -> None:
    events: list[tuple[str, tuple[object, ...]]] = []
    recording = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if recording[0] and event.startswith("smtplib."):
            events.append((event, args))

    sys.addaudithook(hook)  # audit hooks cannot be removed; this one goes quiet after

    def handler(peer: Peer) -> None:
        peer.send(b"220 hi\r\n")
        _quit(peer)

    try:
        with scripted_server(handler) as (port, _):
            smtp = _client(port)
            smtp.quit()
    finally:
        recording[0] = False
    assert events[0] == ("smtplib.connect", (smtp, "127.0.0.1", port))
    assert ("smtplib.send", (smtp, b"quit\r\n")) in events


def test_commands_on_a_closed_client_raise_disconnected() -> None:
    smtp = smtpx.SMTP()
    for call in (smtp.noop, smtp.ehlo, lambda: smtp.send(b"x"), smtp.getreply):
        with pytest.raises(smtpx.SMTPServerDisconnected):
            call()


def test_repr_never_shows_credentials() -> None:
    smtp = smtpx.SMTP()
    smtp.user, smtp.password = "alice", "s3cret"
    assert "s3cret" not in repr(smtp) and "alice" not in repr(smtp)


def test_unix_socket_lmtp(tmp_path: object) -> None:
    import os
    import pathlib
    import threading

    path = str(pathlib.Path(str(tmp_path)) / "lmtp.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            peer = Peer(conn)
            peer.send(b"220 unix lmtp\r\n")
            peer.expect(b"lhlo ")
            peer.send(b"250 unix\r\n")
            _quit(peer)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        lmtp = smtpx.LMTP(path, local_hostname="client.test", timeout=TIMEOUT)
        assert lmtp.ehlo() == (250, b"unix")
        lmtp.quit()
    finally:
        thread.join(5)
        listener.close()
        os.unlink(path)
