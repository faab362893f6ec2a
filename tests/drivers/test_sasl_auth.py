"""``auth()`` with ``smtpx.auth`` mechanism objects, in both drivers, against scripted
servers whose SCRAM side is computed here from RFC 5802's algorithm, and against the
embedded aiosmtpd server.  The same objects work with the standard library's smtplib."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trustme

import smtpx
from smtpx.auth import (
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    ScramSHA1,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
)
from smtpx.testing import SinkServer

from .scripted import Peer, scripted_server

DRIVERS = ["sync", "asyncio", "smtplib"]
OURS = ["sync", "asyncio"]
Call = Callable[..., Any]


@contextmanager
def connected(driver: str, port: int) -> Iterator[tuple[Any, Call]]:
    """A client of *driver* and ``call(method, *args)``, which returns the method's result
    (the asyncio client runs on a loop of its own, one call at a time)."""
    if driver == "asyncio":
        loop = asyncio.new_event_loop()
        client = smtpx.AsyncSMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)

        def call(name: str, *args: Any, **kwargs: Any) -> Any:
            return loop.run_until_complete(getattr(client, name)(*args, **kwargs))

        try:
            call("connect")
            yield client, call
        finally:
            loop.run_until_complete(client.close())
            loop.close()
        return
    cls = smtplib.SMTP if driver == "smtplib" else smtpx.SMTP
    sync_client = cls("127.0.0.1", port, local_hostname="client.test", timeout=5)
    try:
        yield sync_client, lambda name, *a, **k: getattr(sync_client, name)(*a, **k)
    finally:
        sync_client.close()


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def unb64(line: bytes) -> bytes:
    return base64.b64decode(line.strip(), validate=True)


def finish(peer: Peer) -> None:
    """Wait for the client to go away (QUIT or close)."""
    line = peer.readline()
    if line.lower().startswith(b"quit"):
        peer.send(b"221 bye\r\n")


# ------------------------------------------------------------ a SCRAM server


def scram_server(
    peer: Peer,
    name: bytes,
    password: str,
    digest: str,
    *,
    binding: bytes = b"",
    forge: bool = False,
) -> None:
    """The server's side of RFC 5802 section 3, computed independently of smtpx."""
    line = peer.expect(b"AUTH " + name + b" ")
    client_first = unb64(line.split()[2])
    gs2_flag, authzid, bare = client_first.split(b",", 2)
    gs2 = gs2_flag + b"," + authzid + b","
    attrs = dict(part.split(b"=", 1) for part in bare.split(b","))
    nonce = attrs[b"r"] + b"-server-part"
    salt, iterations = b"NaCl and more", 4096
    server_first = b"r=" + nonce + b",s=" + b64(salt) + b",i=" + str(iterations).encode()
    peer.send(b"334 " + b64(server_first) + b"\r\n")
    client_final = unb64(peer.readline())
    without_proof, _, proof_text = client_final.rpartition(b",p=")
    assert without_proof == b"c=" + b64(gs2 + binding) + b",r=" + nonce
    auth_message = bare + b"," + server_first + b"," + without_proof
    salted = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = hashlib.new(digest, client_key).digest()
    client_signature = hmac.new(stored_key, auth_message, digest).digest()
    recovered = bytes(a ^ b for a, b in zip(unb64(proof_text), client_signature, strict=True))
    if hashlib.new(digest, recovered).digest() != stored_key:
        peer.send(b"535 5.7.8 wrong password\r\n")
        return
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    signature = hmac.new(server_key, auth_message, digest).digest()
    if forge:
        signature = bytes(len(signature))
    peer.send(b"334 " + b64(b"v=" + b64(signature)) + b"\r\n")
    answer = peer.readline()
    if answer == b"*\r\n":
        peer.send(b"501 5.7.0 cancelled\r\n")
        return
    assert answer == b"\r\n", answer
    peer.send(b"235 2.7.0 Authentication successful\r\n")


# ------------------------------------------------------------------- tests


@pytest.mark.parametrize("driver", DRIVERS)
def test_plain(driver: str) -> None:
    # smtplib encodes ASCII only (gh-73936); smtpx sends UTF-8.
    password = "s3cret" if driver == "smtplib" else "pässwörd"

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN LOGIN")
        peer.expect(b"AUTH PLAIN " + b64(f"\0alice\0{password}".encode()) + b"\r\n")
        peer.send(b"235 2.7.0 ok\r\n")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        assert call("auth", "PLAIN", Plain("alice", password)) == (235, b"2.7.0 ok")


@pytest.mark.parametrize("driver", DRIVERS)
def test_login(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH LOGIN")
        peer.expect(b"AUTH LOGIN\r\n")
        peer.send(b"334 VXNlcm5hbWU6\r\n")
        assert unb64(peer.readline()) == b"alice"
        peer.send(b"334 UGFzc3dvcmQ6\r\n")
        assert unb64(peer.readline()) == b"s3cret"
        peer.send(b"235 2.7.0 ok\r\n")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        assert call("auth", "LOGIN", Login("alice", "s3cret")) == (235, b"2.7.0 ok")


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("cls", "digest"), [(ScramSHA256, "sha256"), (ScramSHA1, "sha1")], ids=["sha256", "sha1"]
)
def test_scram(driver: str, cls: type[ScramSHA256], digest: str) -> None:
    password = "pencil" if driver == "smtplib" else "pässwörd"

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH " + cls.name.encode())
        scram_server(peer, cls.name.encode(), password, digest)
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        result = call("auth", cls.name, cls("alice", password))
        assert result == (235, b"2.7.0 Authentication successful")


@pytest.mark.parametrize("driver", OURS)
def test_scram_wrong_password(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH SCRAM-SHA-256")
        scram_server(peer, b"SCRAM-SHA-256", "right", "sha256")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
            call("auth", "SCRAM-SHA-256", ScramSHA256("alice", "wrong"))
        assert caught.value.smtp_code == 535
        assert not isinstance(caught.value, smtpx.SMTPServerSignatureError)


@pytest.mark.parametrize("driver", OURS)
def test_scram_forged_server_signature(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH SCRAM-SHA-256")
        scram_server(peer, b"SCRAM-SHA-256", "pencil", "sha256", forge=True)
        finish(peer)

    with scripted_server(handler) as (port, peers), connected(driver, port) as (_, call):
        call("ehlo")
        with pytest.raises(smtpx.SMTPServerSignatureError):
            call("auth", "SCRAM-SHA-256", ScramSHA256("alice", "pencil"))
    assert b"*\r\n" in peers[0].received  # cancelled, not answered with an empty line


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> tuple[ssl.SSLContext, bytes]:
    """A server context and its certificate in DER."""
    cert = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode("ascii"))
    return context, der


@pytest.mark.parametrize("driver", OURS)
def test_scram_plus_over_starttls(
    driver: str, tls_server: tuple[ssl.SSLContext, bytes], client_context: ssl.SSLContext
) -> None:
    """The client takes the server's certificate from its TLS layer; the server checks
    the binding against its own certificate."""
    server_context, der = tls_server
    binding = hashlib.sha256(der).digest()  # trustme signs with SHA-256

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS")
        peer.expect(b"STARTTLS")
        peer.send(b"220 go ahead\r\n")
        peer.starttls(server_context)
        peer.expect(b"ehlo ")
        peer.send(b"250-test.example\r\n250 AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256\r\n")
        scram_server(peer, b"SCRAM-SHA-256-PLUS", "pencil", "sha256", binding=binding)
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("starttls", context=client_context)
        call("ehlo")
        result = call("auth", "SCRAM-SHA-256-PLUS", ScramSHA256Plus("alice", "pencil"))
        assert result[0] == 235


@pytest.mark.parametrize("driver", OURS)
def test_scram_plus_without_tls_sends_nothing(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH SCRAM-SHA-256-PLUS")
        peer.expect(b"noop")
        peer.send(b"250 ok\r\n")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        with pytest.raises(ValueError, match="needs a TLS connection"):
            call("auth", "SCRAM-SHA-256-PLUS", ScramSHA256Plus("alice", "pencil"))
        assert call("noop") == (250, b"ok")  # nothing was sent: still in step


@pytest.mark.parametrize("driver", OURS)
def test_oauthbearer_error_challenge(driver: str) -> None:
    error = b'{"status":"invalid_token","scope":"https://mail.example.com/"}'

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH OAUTHBEARER")
        line = peer.expect(b"AUTH OAUTHBEARER ")
        assert b"auth=Bearer expired" in unb64(line.split()[2])
        peer.send(b"334 " + b64(error) + b"\r\n")
        assert peer.readline() == b"AQ==\r\n"
        peer.send(b"535 5.7.8 Authentication credentials invalid\r\n")
        peer.expect(b"noop")
        peer.send(b"250 in step\r\n")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        with pytest.raises(smtpx.SMTPOAuthError) as caught:
            call("auth", "OAUTHBEARER", OAuthBearer("me@example.com", "expired"))
        assert caught.value.status == "invalid_token"
        assert caught.value.smtp_code == 535
        assert call("noop") == (250, b"in step")


@pytest.mark.parametrize("driver", OURS)
def test_xoauth2_token_provider_retried_once(driver: str) -> None:
    """The provider is asked at each exchange: a second auth() after a refusal sends a
    fresh token (the asyncio client awaits a coroutine function)."""
    tokens = iter(["expired", "fresh"])

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH XOAUTH2")
        for expected, reply in [(b"expired", b"535 5.7.8 no"), (b"fresh", b"235 2.7.0 ok")]:
            line = peer.expect(b"AUTH XOAUTH2 ")
            assert (
                unb64(line.split()[2])
                == b"user=me@example.com\x01auth=Bearer " + expected + b"\x01\x01"
            )
            peer.send(reply + b"\r\n")
        finish(peer)

    if driver == "asyncio":

        async def provider() -> str:
            await asyncio.sleep(0)
            return next(tokens)
    else:

        def provider() -> str:  # type: ignore[misc]
            return next(tokens)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        mechanism = XOAuth2("me@example.com", provider)
        with pytest.raises(smtpx.SMTPAuthenticationError):
            call("auth", "XOAUTH2", mechanism)
        assert call("auth", "XOAUTH2", mechanism) == (235, b"2.7.0 ok")


@pytest.mark.parametrize("driver", OURS)
def test_the_name_must_match_the_mechanism(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN LOGIN")
        finish(peer)

    with scripted_server(handler) as (port, peers), connected(driver, port) as (_, call):
        call("ehlo")
        with pytest.raises(ValueError, match="names differ"):
            call("auth", "LOGIN", Plain("alice", "s3cret"))
    assert not any(line.startswith(b"AUTH") for line in peers[0].received)


@pytest.mark.parametrize("driver", OURS)
def test_debug_output_shows_no_secret(driver: str, capsys: pytest.CaptureFixture[str]) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH LOGIN")
        peer.expect(b"AUTH LOGIN")
        peer.send(b"334 VXNlcm5hbWU6\r\n")
        peer.readline()
        peer.send(b"334 UGFzc3dvcmQ6\r\n")
        peer.readline()
        peer.send(b"235 2.7.0 ok\r\n")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (client, call):
        client.set_debuglevel(1)
        call("ehlo")
        call("auth", "LOGIN", Login("alice", "topsecret"))
    err = capsys.readouterr().err
    assert "AUTH LOGIN" in err
    assert b64(b"topsecret").decode() not in err and "topsecret" not in err


class Reverse(Mechanism):
    """A plug-in mechanism: answers each challenge with its bytes reversed."""

    name = "X-REVERSE"

    def respond(self, challenge: bytes) -> bytes:
        return challenge[::-1]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_plug_in_mechanism(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH X-REVERSE")
        peer.expect(b"AUTH X-REVERSE\r\n")
        peer.send(b"334 " + b64(b"stressed") + b"\r\n")
        assert unb64(peer.readline()) == b"desserts"
        peer.send(b"235 2.7.0 ok\r\n")
        finish(peer)

    with scripted_server(handler) as (port, _), connected(driver, port) as (_, call):
        call("ehlo")
        assert call("auth", "X-REVERSE", Reverse()) == (235, b"2.7.0 ok")


# --------------------------------------------------- the embedded real server


@pytest.mark.parametrize("driver", OURS)
@pytest.mark.parametrize("make", [Plain, Login], ids=["PLAIN", "LOGIN"])
def test_sink_server(driver: str, make: Callable[[str, str], Mechanism]) -> None:
    with SinkServer(starttls=True, auth={"jörg": "pässwörd"}) as server:
        with connected(driver, server.port) as (_, call):
            call("starttls", context=server.client_context())
            call("ehlo")
            mechanism = make("jörg", "pässwörd")
            assert call("auth", mechanism.name, mechanism)[0] == 235
            call("sendmail", "a@example.org", ["b@example.org"], "Subject: x\r\n\r\nhi\r\n")
        (received,) = server.wait_for_messages(1)
        assert received.auth_login == "jörg"
        with connected(driver, server.port) as (_, call):
            call("starttls", context=server.client_context())
            call("ehlo")
            with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
                call("auth", mechanism.name, make("jörg", "wrong"))
            assert caught.value.smtp_code == 535


def test_a_coroutine_provider_with_the_blocking_client() -> None:
    async def provider() -> str:
        return "t"

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH XOAUTH2")
        finish(peer)

    with scripted_server(handler) as (port, peers), connected("sync", port) as (_, call):
        call("ehlo")
        with pytest.raises(TypeError, match="asyncio"):
            call("auth", "XOAUTH2", XOAuth2("me@example.com", provider))
    # Nothing was sent, and (-W error) no coroutine was left un-awaited.
    assert not any(line.startswith(b"AUTH") for line in peers[0].received)
