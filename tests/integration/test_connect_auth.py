"""smtpx's own SASL mechanisms, ``connect(url)`` and the strict policy against real servers,
in both front ends.

- Postfix submission with Dovecot SASL (``servers/submission.py``): PLAIN, LOGIN, CRAM-MD5,
  SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2 and OAUTHBEARER (Dovecot's oauth2 passdb calling the
  tests' introspection endpoint), a non-ASCII password and a UTF-8 user name.
- The embedded SASL server (``servers/embedded_sasl.py``): SCRAM-SHA-1-PLUS,
  SCRAM-SHA-256-PLUS and EXTERNAL, which Dovecot 2.3 behind Postfix cannot offer.
- Dovecot LMTP over its unix socket: the strict policy trusts a local channel.

Every success has its refusal next to it, so a server that let everyone in would fail here.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pytest

import smtpx
from smtpx.auth import OAuthBearer, XOAuth2, create_mechanism

from .servers import DovecotLMTPServer, EmbeddedSaslServer, SubmissionServer, make_message

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
FRONTS = ["sync", "async"]
ALICE = "alice@example.test"
BOB = "bob@example.test"  # ASCII name, non-ASCII password
JOHN = "jöhn@example.test"  # UTF-8 name and password
PASSWORD_MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]


def starttls_auth(
    front: str, server: Any, port: int, name: str, mechanism: object, context: ssl.SSLContext
) -> tuple[int, str | None]:
    """STARTTLS, then ``auth(name, mechanism)``: the reply code and ``auth_mechanism``."""
    if front == "sync":
        with smtpx.SMTP(server.host, port, timeout=TIMEOUT) as smtp:
            smtp.starttls(context=context)
            smtp.ehlo()  # AUTH needs the EHLO after TLS (RFC 3207 section 4.2)
            code, _ = smtp.auth(name, mechanism)  # type: ignore[arg-type]
            return code, smtp.auth_mechanism

    async def run() -> tuple[int, str | None]:
        async with smtpx.AsyncSMTP(server.host, port, timeout=TIMEOUT) as smtp:
            await smtp.starttls(context=context)
            await smtp.ehlo()
            code, _ = await smtp.auth(name, mechanism)  # type: ignore[arg-type]
            return code, smtp.auth_mechanism

    return asyncio.run(run())


def connect_and_send(front: str, url: str, token_message: str, **options: Any) -> str | None:
    """``connect(url)``, deliver one message, QUIT: the mechanism that logged in."""
    msg = make_message(token_message)
    if front == "sync":
        with smtpx.connect(url, timeout=TIMEOUT, **options) as smtp:
            smtp.deliver(msg, "sender@client.test", [ALICE])
            return smtp.auth_mechanism

    async def run() -> str | None:
        async with await smtpx.aconnect(url, timeout=TIMEOUT, **options) as smtp:
            await smtp.deliver(msg, "sender@client.test", [ALICE])
            return smtp.auth_mechanism

    return asyncio.run(run())


def connect_only(front: str, url: str, **options: Any) -> None:
    if front == "sync":
        smtpx.connect(url, timeout=TIMEOUT, **options).close()
        return

    async def run() -> None:
        await (await smtpx.aconnect(url, timeout=TIMEOUT, **options)).close()

    asyncio.run(run())


# ------------------------------------------- every mechanism, Postfix + Dovecot SASL


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("user", [ALICE, BOB, JOHN])
@pytest.mark.parametrize("name", PASSWORD_MECHANISMS)
def test_password_mechanism(submission: SubmissionServer, front: str, name: str, user: str) -> None:
    mechanism = create_mechanism(name, user=user, password=submission.users[user])
    code, used = starttls_auth(
        front, submission, submission.port, name, mechanism, submission.client_context()
    )
    assert (code, used) == (235, name)


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("name", PASSWORD_MECHANISMS)
def test_password_mechanism_refuses_a_wrong_password(
    submission: SubmissionServer, front: str, name: str
) -> None:
    mechanism = create_mechanism(name, user=ALICE, password="not-" + submission.users[ALICE])
    with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
        starttls_auth(
            front, submission, submission.port, name, mechanism, submission.client_context()
        )
    assert caught.value.smtp_code == 535


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("kind", [XOAuth2, OAuthBearer])
def test_oauth_token(submission: SubmissionServer, front: str, kind: type) -> None:
    before = len(submission.introspection.calls)
    mechanism = kind(submission.oauth_user, submission.oauth_token)
    code, used = starttls_auth(
        front, submission, submission.port, kind.name, mechanism, submission.client_context()
    )
    assert (code, used) == (235, kind.name)
    assert len(submission.introspection.calls) > before  # Dovecot asked the endpoint


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("kind", [XOAuth2, OAuthBearer])
def test_oauth_bad_token_is_refused_with_the_servers_error(
    submission: SubmissionServer, front: str, kind: type
) -> None:
    mechanism = kind(submission.oauth_user, "ya29.expired")
    with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
        starttls_auth(
            front, submission, submission.port, kind.name, mechanism, submission.client_context()
        )
    assert caught.value.smtp_code == 535


# ------------------------------------------------------- connect(url), strict policy


@pytest.mark.parametrize("front", FRONTS)
def test_connect_picks_scram_and_sends(submission: SubmissionServer, front: str) -> None:
    url = f"smtp+starttls://{submission.host}:{submission.port}"
    used = connect_and_send(
        front,
        url,
        "connect-scram",
        username=BOB,
        password=submission.users[BOB],
        context=submission.client_context(),
    )
    # Dovecot offers SCRAM-SHA-256: the strongest the client has without channel binding.
    assert used == "SCRAM-SHA-256"


@pytest.mark.parametrize("front", FRONTS)
def test_connect_over_implicit_tls_with_url_credentials(
    submission: SubmissionServer, front: str
) -> None:
    from urllib.parse import quote

    user, password = JOHN, submission.users[JOHN]
    url = (
        f"smtps://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{submission.host}:{submission.smtps_port}"
    )
    assert connect_and_send(front, url, "smtps", context=submission.client_context())


@pytest.mark.parametrize("front", FRONTS)
def test_connect_wrong_password_stops_at_535(submission: SubmissionServer, front: str) -> None:
    url = f"smtp+starttls://{submission.host}:{submission.port}"
    with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
        connect_only(
            front, url, username=ALICE, password="wrong", context=submission.client_context()
        )
    assert caught.value.smtp_code == 535


@pytest.mark.parametrize("front", FRONTS)
def test_connect_token_provider_asked_again_after_a_rejected_token(
    submission: SubmissionServer, front: str
) -> None:
    tokens = ["ya29.expired", submission.oauth_token]
    asked: list[str] = []

    def provider() -> str:
        asked.append(tokens[len(asked)])
        return asked[-1]

    async def async_provider() -> str:
        return provider()

    url = f"smtp+starttls://{submission.host}:{submission.port}"
    used = connect_and_send(
        front,
        url,
        "oauth-retry",
        username=submission.oauth_user,
        token=provider if front == "sync" else async_provider,
        context=submission.client_context(),
    )
    assert used == "OAUTHBEARER"
    assert asked == tokens


@pytest.mark.parametrize(
    ("port_name", "says"),
    [("plaintext_auth_port", "does not offer STARTTLS"), ("no_tls_port", "STARTTLS")],
)
@pytest.mark.parametrize("front", FRONTS)
def test_strict_refuses_servers_without_tls(
    submission: SubmissionServer, front: str, port_name: str, says: str
) -> None:
    url = f"smtp://{submission.host}:{getattr(submission, port_name)}"
    with pytest.raises(smtpx.SMTPPolicyError, match=says):
        connect_only(front, url, username=ALICE, password=submission.users[ALICE])


@pytest.mark.parametrize("front", FRONTS)
def test_compat_logs_in_where_auth_is_offered_in_plaintext(
    submission: SubmissionServer, front: str
) -> None:
    url = f"smtp://{submission.host}:{submission.plaintext_auth_port}"
    used = connect_and_send(
        front,
        url,
        "compat-plaintext",
        username=ALICE,
        password=submission.users[ALICE],
        policy="compat",
    )
    assert used == "CRAM-MD5"  # smtplib's login() order


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, ssl.SSLCertVerificationError),  # the system's CAs do not know the test CA
        ({"server_name": "mail.other.test"}, ssl.SSLCertVerificationError),
    ],
    ids=["unknown-ca", "wrong-host-name"],
)
@pytest.mark.parametrize("front", FRONTS)
def test_strict_refuses_a_certificate_it_cannot_verify(
    submission: SubmissionServer, front: str, options: dict[str, Any], error: type
) -> None:
    if options:
        options = {**options, "context": submission.client_context()}
    url = f"smtp+starttls://{submission.host}:{submission.port}"
    with pytest.raises(error):
        connect_only(front, url, username=ALICE, password=submission.users[ALICE], **options)


# ---------------------------------------------- -PLUS and EXTERNAL: embedded server


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("name", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
def test_scram_plus(embedded_sasl: EmbeddedSaslServer, front: str, name: str) -> None:
    user, password = next(iter(embedded_sasl.users.items()))
    mechanism = create_mechanism(name, user=user, password=password)
    code, used = starttls_auth(
        front, embedded_sasl, embedded_sasl.port, name, mechanism, embedded_sasl.client_context()
    )
    assert (code, used) == (235, name)


@pytest.mark.parametrize("front", FRONTS)
def test_connect_prefers_scram_plus_with_channel_binding(
    embedded_sasl: EmbeddedSaslServer, front: str
) -> None:
    user, password = next(iter(embedded_sasl.users.items()))
    url = f"smtp+starttls://{embedded_sasl.host}:{embedded_sasl.port}"
    check: Callable[[str | None], bool] = lambda used: used == "SCRAM-SHA-256-PLUS"  # noqa: E731
    if front == "sync":
        with smtpx.connect(
            url, username=user, password=password, context=embedded_sasl.client_context()
        ) as smtp:
            assert check(smtp.auth_mechanism)
    else:

        async def run() -> None:
            async with await smtpx.aconnect(
                url, username=user, password=password, context=embedded_sasl.client_context()
            ) as smtp:
                assert check(smtp.auth_mechanism)

        asyncio.run(run())


@pytest.mark.parametrize("front", FRONTS)
def test_external_with_a_client_certificate(embedded_sasl: EmbeddedSaslServer, front: str) -> None:
    mechanism = create_mechanism("EXTERNAL")
    context = embedded_sasl.client_context(certificate=True)
    code, used = starttls_auth(
        front, embedded_sasl, embedded_sasl.port, "EXTERNAL", mechanism, context
    )
    assert (code, used) == (235, "EXTERNAL")


@pytest.mark.parametrize("front", FRONTS)
def test_external_without_a_certificate_is_refused(
    embedded_sasl: EmbeddedSaslServer, front: str
) -> None:
    with pytest.raises(smtpx.SMTPAuthenticationError):
        starttls_auth(
            front,
            embedded_sasl,
            embedded_sasl.port,
            "EXTERNAL",
            create_mechanism("EXTERNAL"),
            embedded_sasl.client_context(),
        )


# ------------------------------------------------------- LMTP over a unix socket


@pytest.mark.parametrize("front", FRONTS)
def test_lmtp_unix_socket_under_the_strict_policy(dovecot: DovecotLMTPServer, front: str) -> None:
    url = f"lmtp+unix://{dovecot.socket_path}"
    msg = make_message("lmtp-unix-strict")
    if front == "sync":
        with smtpx.connect(url, timeout=TIMEOUT) as lmtp:
            assert isinstance(lmtp, smtpx.LMTP)
            result = lmtp.deliver(msg, "sender@client.test", [ALICE])
    else:

        async def run() -> smtpx.SendResult:
            async with await smtpx.aconnect(url, timeout=TIMEOUT) as lmtp:
                assert isinstance(lmtp, smtpx.AsyncLMTP)
                return await lmtp.deliver(msg, "sender@client.test", [ALICE])

        result = asyncio.run(run())
    assert [r.address for r in result.accepted] == [ALICE]
