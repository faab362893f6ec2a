"""``smtpx.connect``/``aconnect`` and ``send``/``asend``: URLs, the security policy and the
login, against the embedded server and scripted servers, in both front ends.

Each strict-policy refusal is checked to happen before anything secret is sent: the
scripted servers record every line the client wrote.
"""

from __future__ import annotations

import asyncio
import base64
import email.message
import ssl
from collections.abc import Callable
from typing import Any

import pytest

import smtpx
from smtpx.testing import SinkServer

from .scripted import Peer, scripted_server

FRONTS = ["sync", "async"]
USERS = {"alice": "s3cret"}


def message(subject: str = "hi") -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = "bob@example.org"
    msg["Subject"] = subject
    msg.set_content("hello\n")
    return msg


def session(front: str, url: str, **options: Any) -> tuple[str | None, type, bool]:
    """Connect, deliver one message, QUIT; return (auth_mechanism, client class, TLS)."""
    if front == "sync":
        with smtpx.connect(url, **options) as client:
            client.deliver(message())
            return client.auth_mechanism, type(client), client._tls_active

    async def run() -> tuple[str | None, type, bool]:
        async with await smtpx.aconnect(url, **options) as client:
            await client.deliver(message())
            return client.auth_mechanism, type(client), client._tls_active

    return asyncio.run(run())


def connect_only(front: str, url: str, **options: Any) -> None:
    if front == "sync":
        smtpx.connect(url, **options).close()
        return

    async def run() -> None:
        client = await smtpx.aconnect(url, **options)
        await client.close()

    asyncio.run(run())


def one_shot(front: str, what: Any, url: str, **options: Any) -> Any:
    if front == "sync":
        return smtpx.send(what, url=url, **options)
    return asyncio.run(smtpx.asend(what, url=url, **options))


# ------------------------------------------------------------------ what works


@pytest.mark.parametrize("front", FRONTS)
def test_starttls_then_login_then_send(front: str) -> None:
    with SinkServer(starttls=True, auth=USERS) as server:
        url = f"smtp+starttls://alice:s3cret@{server.host}:{server.port}"
        mechanism, kind, tls = session(front, url, context=server.client_context())
        assert server.wait_for_messages(1)[0].mail_from == "alice@example.org"
    # PLAIN and LOGIN are offered: under TLS the first in smtpx's ranking is PLAIN.
    assert (mechanism, tls) == ("PLAIN", True)
    assert kind is (smtpx.SMTP if front == "sync" else smtpx.AsyncSMTP)


@pytest.mark.parametrize("front", FRONTS)
def test_implicit_tls(front: str) -> None:
    with SinkServer(implicit_tls=True, auth=USERS) as server:
        url = f"smtps://{server.host}:{server.port}"
        options = {"username": "alice", "password": "s3cret"}
        mechanism, kind, tls = session(front, url, context=server.client_context(), **options)
        assert len(server.wait_for_messages(1)) == 1
    assert (mechanism, tls) == ("PLAIN", True)
    assert kind is (smtpx.SMTP_SSL if front == "sync" else smtpx.AsyncSMTP_SSL)


@pytest.mark.parametrize("front", FRONTS)
def test_strict_smtp_url_upgrades_with_starttls(front: str) -> None:
    with SinkServer(starttls=True) as server:
        url = f"smtp://{server.host}:{server.port}"
        mechanism, _, tls = session(front, url, context=server.client_context())
        assert len(server.wait_for_messages(1)) == 1
    assert (mechanism, tls) == (None, True)


@pytest.mark.parametrize("front", FRONTS)
def test_tls_settings_build_the_context(front: str, tmp_path: Any) -> None:
    with SinkServer(starttls=True, hostname="mail.example.test") as server:
        cafile = tmp_path / "ca.pem"
        cafile.write_bytes(server.ca_pem)
        url = f"smtp+starttls://{server.host}:{server.port}"
        # The certificate names 127.0.0.1 too; server_name checks another name of it.
        session(
            front,
            url,
            cafile=str(cafile),
            server_name="mail.example.test",
            minimum_version=ssl.TLSVersion.TLSv1_2,
        )
        assert len(server.wait_for_messages(1)) == 1


@pytest.mark.parametrize("front", FRONTS)
def test_compat_policy_logs_in_without_tls(front: str) -> None:
    with SinkServer(auth=USERS, auth_require_tls=False) as server:
        url = f"smtp://alice:s3cret@{server.host}:{server.port}"
        mechanism, _, tls = session(front, url, policy="compat")
        assert len(server.wait_for_messages(1)) == 1
    # compat keeps smtplib's login(): its order (CRAM-MD5, PLAIN, LOGIN) and no TLS.
    assert tls is False
    assert mechanism == "PLAIN"


@pytest.mark.parametrize("front", FRONTS)
def test_one_shot_send_and_batch(front: str) -> None:
    with SinkServer(starttls=True, auth=USERS) as server:
        url = f"smtp+starttls://alice:s3cret@{server.host}:{server.port}"
        result = one_shot(front, message("one"), url, context=server.client_context())
        assert isinstance(result, smtpx.SendResult)
        assert [r.address for r in result.accepted] == ["bob@example.org"]
        batch = [message("two"), (message("three"), "carol@example.org", ["dave@example.org"])]
        entries = one_shot(front, batch, url, context=server.client_context())
        assert [type(e) for e in entries] == [smtpx.SendResult, smtpx.SendResult]
        received = server.wait_for_messages(3)
    assert [m.mail_from for m in received] == [
        "alice@example.org",
        "alice@example.org",
        "carol@example.org",
    ]


@pytest.mark.parametrize("front", FRONTS)
def test_one_shot_send_raises_the_message_error(front: str) -> None:
    with SinkServer(starttls=True, refuse_at_rcpt=["bob@example.org"]) as server:
        url = f"smtp+starttls://{server.host}:{server.port}"
        with pytest.raises(smtpx.SMTPRecipientsRefused):
            one_shot(front, message(), url, context=server.client_context())


# --------------------------------------------------------- refusals, clearly


@pytest.mark.parametrize("front", FRONTS)
def test_strict_refuses_a_server_without_starttls(front: str) -> None:
    def server(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN LOGIN", b"PIPELINING")
        assert peer.readline() == b""  # the client hangs up: no AUTH, no MAIL

    with scripted_server(server) as (port, peers):
        url = f"smtp://alice:s3cret@127.0.0.1:{port}"
        with pytest.raises(smtpx.SMTPPolicyError, match="does not offer STARTTLS"):
            connect_only(front, url)
    assert not any(b"s3cret" in line or line.startswith(b"AUTH") for line in peers[0].received)


@pytest.mark.parametrize("front", FRONTS)
def test_starttls_url_refuses_plaintext_even_under_compat(front: str) -> None:
    def server(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN")
        assert peer.readline() == b""

    with scripted_server(server) as (port, peers):
        url = f"smtp+starttls://alice:s3cret@127.0.0.1:{port}"
        with pytest.raises(smtpx.SMTPPolicyError, match="smtp\\+starttls:// requires TLS"):
            connect_only(front, url, policy="compat")
    assert len(peers[0].received) == 1  # EHLO only


@pytest.mark.parametrize("front", FRONTS)
def test_starttls_refused_by_the_server(front: str) -> None:
    def server(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS", b"AUTH PLAIN")
        peer.expect(b"STARTTLS")
        peer.send(b"454 4.7.0 TLS not available due to temporary reason\r\n")
        assert peer.readline() == b""

    with scripted_server(server) as (port, peers):
        url = f"smtp+starttls://alice:s3cret@127.0.0.1:{port}"
        with pytest.raises(smtpx.SMTPPolicyError, match="refused STARTTLS: 454"):
            connect_only(front, url)
    assert not any(line.startswith(b"AUTH") for line in peers[0].received)


@pytest.mark.parametrize("front", FRONTS)
def test_bad_certificate_is_refused(front: str) -> None:
    with SinkServer(starttls=True, auth=USERS) as server:
        url = f"smtp+starttls://alice:s3cret@{server.host}:{server.port}"
        # The default context does not trust the server's throwaway CA.
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            connect_only(front, url)
        assert server.messages == []


@pytest.mark.parametrize("front", FRONTS)
def test_wrong_host_name_is_refused(front: str) -> None:
    with SinkServer(starttls=True) as server:
        url = f"smtp+starttls://{server.host}:{server.port}"
        with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|doesn.t match"):
            connect_only(
                front, url, context=server.client_context(), server_name="other.example.test"
            )


@pytest.mark.parametrize(
    "weaken",
    [
        lambda c: setattr(c, "check_hostname", False),
        lambda c: (setattr(c, "check_hostname", False), setattr(c, "verify_mode", ssl.CERT_NONE)),
    ],
    ids=["no-host-name-check", "no-verification"],
)
@pytest.mark.parametrize("front", FRONTS)
def test_strict_refuses_a_context_that_does_not_verify(
    front: str, weaken: Callable[[ssl.SSLContext], object]
) -> None:
    context = ssl.create_default_context()
    weaken(context)
    # Port 9 on loopback: nothing listens, so reaching the network would fail otherwise.
    with pytest.raises(smtpx.SMTPPolicyError, match="strict policy requires"):
        connect_only(front, "smtps://127.0.0.1:9", context=context)


@pytest.mark.parametrize("front", FRONTS)
def test_strict_sends_no_credentials_where_auth_is_offered_only_in_plaintext(front: str) -> None:
    # A server that offers AUTH but not STARTTLS: the strict policy wants TLS first.
    with SinkServer(auth=USERS, auth_require_tls=False) as server:
        url = f"smtp://alice:s3cret@{server.host}:{server.port}"
        with pytest.raises(smtpx.SMTPPolicyError, match="STARTTLS"):
            connect_only(front, url)


def _tls_then_auth(
    peer: Peer, context: ssl.SSLContext, mechanisms: bytes, auth_replies: list[bytes]
) -> None:
    """STARTTLS, EHLO offering *mechanisms*, then answer each AUTH line in turn."""
    peer.greet_and_ehlo(b"STARTTLS")
    peer.expect(b"STARTTLS")
    peer.send(b"220 2.0.0 go ahead\r\n")
    peer.starttls(context)
    peer.expect(b"EHLO")
    peer.send(b"250-test.example\r\n250 AUTH " + mechanisms + b"\r\n")
    for reply in auth_replies:
        peer.expect(b"AUTH ")
        peer.send(reply)
    assert peer.readline() == b""


@pytest.mark.parametrize("front", FRONTS)
def test_wrong_password_is_not_tried_again_with_a_weaker_mechanism(
    front: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def server(peer: Peer) -> None:
        _tls_then_auth(
            peer,
            server_context,
            b"LOGIN PLAIN CRAM-MD5",
            [b"535 5.7.8 Authentication credentials invalid\r\n"],
        )

    with scripted_server(server) as (port, peers):
        url = f"smtp+starttls://alice:wrong@127.0.0.1:{port}"
        with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
            connect_only(front, url, context=client_context)
    assert caught.value.smtp_code == 535
    auth_lines = [line for line in peers[0].received if line.startswith(b"AUTH")]
    assert len(auth_lines) == 1 and auth_lines[0].startswith(b"AUTH PLAIN ")


@pytest.mark.parametrize("front", FRONTS)
def test_a_mechanism_the_server_cannot_do_moves_to_the_next(
    front: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def server(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS")
        peer.expect(b"STARTTLS")
        peer.send(b"220 2.0.0 go ahead\r\n")
        peer.starttls(server_context)
        peer.expect(b"EHLO")
        peer.send(b"250-test.example\r\n250 AUTH PLAIN LOGIN\r\n")
        peer.expect(b"AUTH PLAIN ")
        peer.send(b"504 5.5.4 mechanism not available\r\n")
        peer.expect(b"AUTH LOGIN")
        peer.send(b"334 " + base64.b64encode(b"Username:") + b"\r\n")
        assert base64.b64decode(peer.readline().strip()) == b"alice"
        peer.send(b"334 " + base64.b64encode(b"Password:") + b"\r\n")
        assert base64.b64decode(peer.readline().strip()) == b"s3cret"
        peer.send(b"235 2.7.0 ok\r\n")
        assert peer.readline() == b""

    with scripted_server(server) as (port, _):
        url = f"smtp+starttls://alice:s3cret@127.0.0.1:{port}"
        if front == "sync":
            client = smtpx.connect(url, context=client_context)
            assert client.auth_mechanism == "LOGIN"
            client.close()
        else:

            async def run() -> None:
                client = await smtpx.aconnect(url, context=client_context)
                assert client.auth_mechanism == "LOGIN"
                await client.close()

            asyncio.run(run())


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"policy": "paranoid"}, "policy must be"),
        ({"password": "x", "token": "y", "username": "alice"}, "not both"),
        ({"password": "x"}, "needs a user name"),
        ({"context": ssl.create_default_context(), "cafile": "/x"}, "not both"),
        ({"keyfile": "/x"}, "keyfile given without certfile"),
    ],
)
def test_bad_arguments_fail_before_any_connection(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        smtpx.connect("smtp://127.0.0.1:9", **options)


def test_a_plaintext_connection_builds_no_tls_context() -> None:
    """Loading the system's CAs costs tens of milliseconds (3 round trips at 20 ms in
    bench/rtt.py's plain one-shot session): only a connection that starts TLS builds one."""
    from smtpx._security import TLSSettings, prepare

    def context_of(url: str, policy: str) -> object:
        options = {"username": None, "password": None, "token": None, "context": None}
        return prepare(url, policy=policy, settings=TLSSettings(), **options).context

    assert context_of("smtp://127.0.0.1:25", "compat") is None
    assert context_of("lmtp+unix:///run/lmtp", "strict") is None
    assert isinstance(context_of("smtp://127.0.0.1:25", "strict"), ssl.SSLContext)
    assert isinstance(context_of("smtps://127.0.0.1", "compat"), ssl.SSLContext)
