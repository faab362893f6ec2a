"""The SASL test servers work: each mechanism they offer logs in, and refuses bad secrets.

Smoke tests for ``servers/submission.py`` (Postfix submission with Dovecot SASL
and an OAuth2 introspection endpoint) and ``servers/embedded_sasl.py``
(SCRAM-*-PLUS and EXTERNAL), using only what smtpx has today: ``login()``
(smtplib's order: CRAM-MD5, PLAIN, LOGIN), ``auth()`` with the hand-written
exchanges of ``_sasl.py``, and ``docmd`` for the OAuth2 payloads. Each success
is paired with a refusal, so a server that let everybody in would fail here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import Iterator

import pytest

import smtpx

from ._sasl import Scram, end_point_binding, oauthbearer, xoauth2
from .servers import EmbeddedSaslServer, SubmissionServer, make_message, new_token

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
SENDER = "sender@client.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"  # ASCII name, non-ASCII password
JOHN = "jöhn@example.test"  # UTF-8 name and password
SCRAM = [("SCRAM-SHA-1", "sha1"), ("SCRAM-SHA-256", "sha256")]


def raw_ehlo_after_starttls(host: str, port: int, context: ssl.SSLContext) -> list[str]:
    """EHLO, STARTTLS, EHLO on a bare socket: the keywords of the second EHLO reply.

    Kept apart from smtpx's reply parser, so a parser bug cannot hide a
    mechanism the server failed to offer.
    """
    with socket.create_connection((host, port), timeout=TIMEOUT) as plain:
        reader = plain.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        plain.sendall(b"EHLO client.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        plain.sendall(b"STARTTLS\r\n")
        assert reader.readline().startswith(b"220 ")
        reader.close()
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            tls_reader = tls.makefile("rb")
            tls.sendall(b"EHLO client.test\r\n")
            lines = []
            while True:
                line = tls_reader.readline()
                assert line[:3] == b"250", line
                lines.append(line[4:].decode().strip())
                if line[3:4] == b" ":
                    break
            tls.sendall(b"QUIT\r\n")
            tls_reader.close()
    return lines[1:]  # the first line is the server's name


def auth_keywords(lines: list[str]) -> list[str]:
    auth = [line for line in lines if line.upper().startswith("AUTH ")]
    assert len(auth) == 1, lines
    return auth[0].split()[1:]


@pytest.fixture
def tls_client(submission: SubmissionServer) -> Iterator[smtpx.SMTP]:
    """A session on the submission port, after STARTTLS with the test CA."""
    with smtpx.SMTP(submission.host, submission.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=submission.client_context())
        smtp.ehlo()
        yield smtp


# ----------------------------------------------------- Postfix with Dovecot SASL


def test_dovecot_auth_service_lists_every_mechanism(submission: SubmissionServer) -> None:
    assert set(submission.mechanisms) <= set(submission.auth_service_mechanisms)
    assert not set(submission.unsupported_mechanisms) & set(submission.auth_service_mechanisms)


def test_ehlo_after_starttls_lists_every_mechanism(submission: SubmissionServer) -> None:
    lines = raw_ehlo_after_starttls(submission.host, submission.port, submission.client_context())
    assert sorted(auth_keywords(lines)) == sorted(submission.mechanisms)
    assert "STARTTLS" not in lines


def test_submission_port_needs_starttls_before_auth_and_mail(
    submission: SubmissionServer,
) -> None:
    with smtpx.SMTP(submission.host, submission.port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # smtpd_tls_auth_only
        code, _ = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0a\0b").decode())
        assert code == 530  # "Must issue a STARTTLS command first"
        code, message = smtp.docmd("MAIL FROM:<sender@client.test>")
        assert (code, message[:5]) == (530, b"5.7.0")  # smtpd_tls_security_level = encrypt


@pytest.mark.parametrize("user", [ALICE, BOB, JOHN])
def test_login_over_starttls(
    tls_client: smtpx.SMTP, submission: SubmissionServer, user: str
) -> None:
    # smtplib's order: CRAM-MD5 is tried first and must succeed by itself.
    assert tls_client.login(user, submission.users[user]) == (
        235,
        b"2.7.0 Authentication successful",
    )


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "PLAIN", "LOGIN"])
@pytest.mark.parametrize("user", [ALICE, BOB, JOHN])
def test_login_with_each_password_mechanism(
    tls_client: smtpx.SMTP, submission: SubmissionServer, mechanism: str, user: str
) -> None:
    # login() tries what EHLO offered: narrow the offer to one mechanism.
    tls_client.esmtp_features["auth"] = mechanism
    assert tls_client.login(user, submission.users[user])[0] == 235


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "PLAIN", "LOGIN"])
def test_wrong_password_is_refused(tls_client: smtpx.SMTP, mechanism: str) -> None:
    tls_client.esmtp_features["auth"] = mechanism
    with pytest.raises(smtpx.SMTPAuthenticationError) as refused:
        tls_client.login(BOB, "passwörd-ñ")  # close to the real one, but not it
    assert refused.value.smtp_code == 535


@pytest.mark.parametrize("user", [ALICE, BOB, JOHN])
@pytest.mark.parametrize(("mechanism", "hash_name"), SCRAM)
def test_scram(
    tls_client: smtpx.SMTP, submission: SubmissionServer, mechanism: str, hash_name: str, user: str
) -> None:
    exchange = Scram(user, submission.users[user], hash_name)
    assert tls_client.auth(mechanism, exchange)[0] == 235
    # The server signature proves Dovecot derived the keys from the same password.
    assert exchange.verified


@pytest.mark.parametrize(("mechanism", "hash_name"), SCRAM)
def test_scram_wrong_password_is_refused(
    tls_client: smtpx.SMTP, mechanism: str, hash_name: str
) -> None:
    with pytest.raises(smtpx.SMTPAuthenticationError) as refused:
        tls_client.auth(mechanism, Scram(ALICE, "s3cret-alice", hash_name))
    assert refused.value.smtp_code == 535


@pytest.mark.parametrize(
    ("mechanism", "payload"), [("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)]
)
def test_oauth2_valid_token_is_introspected(
    tls_client: smtpx.SMTP, submission: SubmissionServer, mechanism: str, payload: object
) -> None:
    assert callable(payload)
    assert submission.introspection is not None
    before = len(submission.introspection.calls_for(submission.oauth_token))
    code, _ = tls_client.docmd(
        "AUTH", f"{mechanism} {payload(submission.oauth_user, submission.oauth_token)}"
    )
    assert code == 235
    calls = submission.introspection.calls_for(submission.oauth_token)
    assert len(calls) == before + 1
    assert calls[-1].active and calls[-1].method == "POST"


@pytest.mark.parametrize(
    ("mechanism", "payload", "after_error"),
    # RFC 7628 section 3.2.3: the client answers the error challenge with ^A;
    # XOAUTH2 clients send an empty line.
    [("XOAUTH2", xoauth2, ""), ("OAUTHBEARER", oauthbearer, "AQ==")],
)
def test_oauth2_bad_token_gets_error_challenge_then_535(
    tls_client: smtpx.SMTP,
    submission: SubmissionServer,
    mechanism: str,
    payload: object,
    after_error: str,
) -> None:
    assert callable(payload) and submission.introspection is not None
    token = "bad-" + new_token()
    code, challenge = tls_client.docmd(
        "AUTH", f"{mechanism} {payload(submission.oauth_user, token)}"
    )
    assert code == 334
    assert "status" in json.loads(base64.b64decode(challenge))
    code, _ = tls_client.docmd(after_error)
    assert code == 535
    calls = submission.introspection.calls_for(token)
    assert len(calls) == 1 and not calls[0].active


def test_oauth2_token_of_another_user_is_refused(
    tls_client: smtpx.SMTP, submission: SubmissionServer
) -> None:
    # The endpoint says the token is alice's: Dovecot must not let bob use it.
    code, _ = tls_client.docmd("AUTH", "XOAUTH2 " + xoauth2(BOB, submission.oauth_token))
    if code == 334:
        code, _ = tls_client.docmd("")
    assert code == 535


def test_authenticated_submission_is_delivered(
    tls_client: smtpx.SMTP, submission: SubmissionServer
) -> None:
    tls_client.login(JOHN, submission.users[JOHN])
    token = new_token()
    sent = make_message(token)
    assert tls_client.sendmail(SENDER, [ALICE], sent) == {}
    submission.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_smtps_port_login(submission: SubmissionServer) -> None:
    with smtpx.SMTP_SSL(
        submission.host, submission.smtps_port, timeout=TIMEOUT, context=submission.client_context()
    ) as smtp:
        smtp.ehlo()
        assert sorted(smtp.esmtp_features["auth"].split()) == sorted(submission.mechanisms)
        assert smtp.login(BOB, submission.users[BOB])[0] == 235


def test_async_login_over_starttls(submission: SubmissionServer) -> None:
    async def main() -> tuple[int, bytes]:
        async with smtpx.AsyncSMTP(submission.host, submission.port, timeout=TIMEOUT) as smtp:
            await smtp.starttls(context=submission.client_context())
            return await smtp.login(JOHN, submission.users[JOHN])

    assert asyncio.run(main())[0] == 235


def test_optional_tls_port_offers_auth_before_starttls(submission: SubmissionServer) -> None:
    with smtpx.SMTP(submission.host, submission.optional_tls_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert sorted(smtp.esmtp_features["auth"].split()) == sorted(submission.mechanisms)


def test_plaintext_auth_port_offers_auth_without_tls(submission: SubmissionServer) -> None:
    with smtpx.SMTP(submission.host, submission.plaintext_auth_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert sorted(smtp.esmtp_features["auth"].split()) == sorted(submission.mechanisms)
        # Nothing stops a compat client here: that is what strict must refuse.
        assert smtp.login(ALICE, submission.users[ALICE])[0] == 235


def test_no_tls_port_offers_neither_tls_nor_auth(submission: SubmissionServer) -> None:
    with smtpx.SMTP(submission.host, submission.no_tls_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")


# --------------------------------------------------- embedded: -PLUS and EXTERNAL


@pytest.fixture
def embedded_client(embedded_sasl: EmbeddedSaslServer) -> Iterator[smtpx.SMTP]:
    with smtpx.SMTP(embedded_sasl.host, embedded_sasl.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=embedded_sasl.client_context())
        smtp.ehlo()
        yield smtp


def test_embedded_ehlo_after_starttls_lists_every_mechanism(
    embedded_sasl: EmbeddedSaslServer,
) -> None:
    with smtpx.SMTP(embedded_sasl.host, embedded_sasl.port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")  # only under TLS
    lines = raw_ehlo_after_starttls(
        embedded_sasl.host, embedded_sasl.port, embedded_sasl.client_context()
    )
    assert sorted(auth_keywords(lines)) == sorted(embedded_sasl.mechanisms)


@pytest.mark.parametrize("user", [ALICE, JOHN])
@pytest.mark.parametrize(("mechanism", "hash_name"), SCRAM)
def test_scram_plus_tls_server_end_point(
    embedded_client: smtpx.SMTP,
    embedded_sasl: EmbeddedSaslServer,
    mechanism: str,
    hash_name: str,
    user: str,
) -> None:
    assert isinstance(embedded_client.sock, ssl.SSLSocket)
    exchange = Scram(
        user,
        embedded_sasl.users[user],
        hash_name,
        cb_name="tls-server-end-point",
        cb_data=end_point_binding(embedded_client.sock),
    )
    assert embedded_client.auth(mechanism + "-PLUS", exchange)[0] == 235
    assert exchange.verified
    last = embedded_sasl.attempts_snapshot()[-1]
    assert (last.mechanism, last.user, last.channel_binding, last.success) == (
        mechanism + "-PLUS",
        user,
        "tls-server-end-point",
        True,
    )


def test_scram_plus_tls_unique_under_tls12(embedded_sasl: EmbeddedSaslServer) -> None:
    context = embedded_sasl.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with smtpx.SMTP(embedded_sasl.host, embedded_sasl.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        assert isinstance(smtp.sock, ssl.SSLSocket)
        binding = smtp.sock.get_channel_binding("tls-unique")
        assert binding
        exchange = Scram(ALICE, embedded_sasl.users[ALICE], cb_name="tls-unique", cb_data=binding)
        assert smtp.auth("SCRAM-SHA-256-PLUS", exchange)[0] == 235
        assert exchange.verified


@pytest.mark.parametrize(
    ("exchange", "reason"),
    [
        pytest.param(
            Scram(ALICE, "s3cret-Alice", cb_name="tls-server-end-point", cb_data=b"\0" * 32),
            b"channel-bindings-dont-match",
            id="wrong-binding-data",
        ),
        pytest.param(
            Scram(ALICE, "s3cret-Alice", cb_name="tls-exporter", cb_data=b"\0" * 32),
            b"unsupported-channel-binding-type",
            id="tls-exporter",
        ),
        pytest.param(Scram(ALICE, "s3cret-Alice"), b"needs the p= flag", id="plus-without-binding"),
    ],
)
def test_scram_plus_refusals(embedded_client: smtpx.SMTP, exchange: Scram, reason: bytes) -> None:
    with pytest.raises(smtpx.SMTPAuthenticationError) as refused:
        embedded_client.auth("SCRAM-SHA-256-PLUS", exchange)
    assert refused.value.smtp_code == 535
    assert reason in refused.value.smtp_error


def test_scram_downgrade_flag_is_refused(
    embedded_client: smtpx.SMTP, embedded_sasl: EmbeddedSaslServer
) -> None:
    # RFC 5802 section 6: "y" (client could bind, thinks the server cannot)
    # sent to a server that offers -PLUS means someone stripped -PLUS from EHLO.
    with pytest.raises(smtpx.SMTPAuthenticationError) as refused:
        embedded_client.auth("SCRAM-SHA-256", Scram(ALICE, "s3cret-Alice", flag="y"))
    assert b"server-does-support-channel-binding" in refused.value.smtp_error
    last = embedded_sasl.attempts_snapshot()[-1]
    assert (last.mechanism, last.user, last.success) == ("SCRAM-SHA-256", ALICE, False)


def test_embedded_scram_wrong_password_is_refused(embedded_client: smtpx.SMTP) -> None:
    with pytest.raises(smtpx.SMTPAuthenticationError) as refused:
        embedded_client.auth("SCRAM-SHA-1", Scram(ALICE, "s3cret-alice", "sha1"))
    assert b"invalid-proof" in refused.value.smtp_error


@pytest.mark.parametrize("authzid", ["", ALICE])
def test_external_with_client_certificate(embedded_sasl: EmbeddedSaslServer, authzid: str) -> None:
    context = embedded_sasl.client_context(certificate=True)
    with smtpx.SMTP_SSL(
        embedded_sasl.host, embedded_sasl.smtps_port, timeout=TIMEOUT, context=context
    ) as smtp:
        smtp.ehlo()
        assert smtp.auth("EXTERNAL", lambda challenge=None: authzid)[0] == 235
    last = embedded_sasl.attempts_snapshot()[-1]
    assert (last.mechanism, last.user, last.success) == ("EXTERNAL", embedded_sasl.cert_user, True)


def test_external_over_starttls(embedded_sasl: EmbeddedSaslServer) -> None:
    with smtpx.SMTP(embedded_sasl.host, embedded_sasl.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=embedded_sasl.client_context(certificate=True))
        smtp.ehlo()
        assert smtp.auth("EXTERNAL", lambda challenge=None: "")[0] == 235


@pytest.mark.parametrize(
    ("certificate", "authzid"), [(False, ""), (True, BOB)], ids=["no-cert", "other-authzid"]
)
def test_external_refusals(
    embedded_sasl: EmbeddedSaslServer, certificate: bool, authzid: str
) -> None:
    context = embedded_sasl.client_context(certificate=certificate)
    with smtpx.SMTP_SSL(
        embedded_sasl.host, embedded_sasl.smtps_port, timeout=TIMEOUT, context=context
    ) as smtp:
        smtp.ehlo()
        with pytest.raises(smtpx.SMTPAuthenticationError) as refused:
            smtp.auth("EXTERNAL", lambda challenge=None: authzid)
    assert refused.value.smtp_code == 535
