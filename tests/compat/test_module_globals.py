"""Replacing one of smtplib's module globals changes what the client does, on smtpx too.

CPython's tests assign ``smtplib.socket = mock_socket``; programs patch ``smtplib.socket``,
``smtplib.ssl``, the limits ``_MAXLINE`` and ``_MAXCHALLENGE``, the classes on the module,
and ``SMTP.default_port``.  Where smtplib shows the behaviour too, a test runs against both
modules, so the expectation is smtplib's own and not a guess.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import trustme

import smtpx
from smtpx import _clientbase, _flows
from smtpx._protocol import _reply
from smtpx._sync import _client, _variants

BOTH = pytest.mark.parametrize("module", [smtplib, smtpx], ids=["smtplib", "smtpx"])


class Peer:
    """The server's end of one loopback connection, read line by line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[bytes] = []
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        self.lines.append(line + b"\n")
        return line + b"\n"

    def greet_and_ehlo(self, *extensions: bytes) -> None:
        self.send(b"220 test.example ESMTP\r\n")
        assert self.readline().lower().startswith(b"ehlo ")
        lines = [b"test.example", *extensions]
        self.send(b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1])
        self.send(b"\r\n")

    def until_quit(self) -> None:
        """Answer QUIT (or see the client go) and stop."""
        line = self.readline()
        if line.lower().startswith(b"quit"):
            self.send(b"221 bye\r\n")


@contextmanager
def server(handler: Callable[[Peer], None]) -> Iterator[tuple[int, list[Peer]]]:
    """One connection on an ephemeral loopback port, served by *handler* in a thread; an
    error in the handler is raised when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    peers: list[Peer] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            errors.append(exc)
            return
        conn.settimeout(10)
        try:
            peers.append(Peer(conn))
            handler(peers[0])
        except BaseException as exc:
            errors.append(exc)
        finally:
            (peers[0].sock if peers else conn).close()  # the TLS socket, if it was wrapped

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], peers
    finally:
        thread.join(15)
        listener.close()
    assert not thread.is_alive(), "the scripted server did not finish"
    if errors:
        raise errors[0]


def _fake_socket_module(port: int, calls: list[tuple[Any, ...]]) -> types.SimpleNamespace:
    """The socket module, but connections to any host go to 127.0.0.1:*port*, and the
    host name lookups answer with a fixed name: what a program's replacement would do."""
    real = socket

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        calls.append(("create_connection", address))
        return real.create_connection(("127.0.0.1", port), 10)

    def getfqdn(name: str = "") -> str:
        calls.append(("getfqdn",))
        return "fake.example"

    return types.SimpleNamespace(
        **{**vars(real), "create_connection": create_connection, "getfqdn": getfqdn}
    )


# ----------------------------------------------------------------------------- socket


@BOTH
@pytest.mark.parametrize("how", ["assign", "patch", "patch-string"])
def test_replacing_socket_reaches_connect_and_ehlo_name(module: Any, how: str) -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo()
        peer.until_quit()

    calls: list[tuple[Any, ...]] = []
    with server(handler) as (port, peers):
        fake = _fake_socket_module(port, calls)
        if how == "assign":
            module.socket = fake
            try:
                with module.SMTP("mail.invalid", 2525, timeout=10) as smtp:
                    smtp.ehlo()
            finally:
                module.socket = socket
        else:
            patcher = (
                mock.patch.object(module, "socket", fake)
                if how == "patch"
                else mock.patch(f"{module.__name__}.socket", fake)
            )
            with patcher, module.SMTP("mail.invalid", 2525, timeout=10) as smtp:
                smtp.ehlo()
    assert ("create_connection", ("mail.invalid", 2525)) in calls
    assert ("getfqdn",) in calls
    assert peers[0].lines[0] == b"ehlo fake.example\r\n"
    # Put back: the real module is what the clients see again.
    assert module.socket is socket
    if module is smtpx:
        assert _client.socket is socket
        assert _variants.socket is socket


@BOTH
def test_replacing_socket_reaches_lmtp_over_a_unix_socket(module: Any) -> None:
    """LMTP to a path makes its own socket (CPython's LMTP tests swap it this way)."""

    def handler(peer: Peer) -> None:
        peer.send(b"220 lmtp.example LMTP\r\n")
        assert peer.readline().lower().startswith(b"lhlo ")
        peer.send(b"250 lmtp.example\r\n")
        peer.until_quit()

    made: list[tuple[Any, ...]] = []
    with server(handler) as (port, _):

        class RedirectedSocket:
            """A unix socket, as the client asks for, that reaches the TCP test server."""

            def __init__(self, family: int, kind: int) -> None:
                made.append(("socket", family, kind))
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

            def connect(self, address: object) -> None:
                made.append(("connect", address))
                self._sock.connect(("127.0.0.1", port))

            def __getattr__(self, name: str) -> Any:
                return getattr(self._sock, name)

        fake = types.SimpleNamespace(**{**vars(socket), "socket": RedirectedSocket})
        with mock.patch.object(module, "socket", fake):
            lmtp = module.LMTP("/run/lmtp.sock", local_hostname="client.example", timeout=10)
            try:
                assert lmtp.ehlo_or_helo_if_needed() is None
            finally:
                lmtp.quit()
    assert made == [("socket", socket.AF_UNIX, socket.SOCK_STREAM), ("connect", "/run/lmtp.sock")]


# -------------------------------------------------------------------------------- ssl


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _fake_ssl_module(context: ssl.SSLContext, calls: list[str]) -> types.SimpleNamespace:
    """The ssl module, with a default context that trusts the test CA (the real default
    does not, so a handshake succeeds only if the replacement was used)."""

    def create_default_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        calls.append("create_default_context")
        return context

    return types.SimpleNamespace(**{**vars(ssl), "create_default_context": create_default_context})


def _trusting_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def test_replacing_ssl_reaches_starttls(ca: trustme.CA) -> None:
    server_context = _server_context(ca)

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS")
        assert peer.readline().lower() == b"starttls\r\n"
        peer.send(b"220 go ahead\r\n")
        peer.sock = server_context.wrap_socket(peer.sock, server_side=True)
        assert peer.readline().lower().startswith(b"ehlo ")
        peer.send(b"250 test.example\r\n")
        peer.until_quit()

    calls: list[str] = []
    with server(handler) as (port, _):
        fake = _fake_ssl_module(_trusting_context(ca), calls)
        with (
            mock.patch.object(smtpx, "ssl", fake),
            smtpx.SMTP("127.0.0.1", port, timeout=10) as smtp,
        ):
            assert smtp.starttls()[0] == 220
            assert smtp.ehlo()[0] == 250
            assert isinstance(smtp.sock, ssl.SSLSocket)
    assert calls == ["create_default_context"]
    assert smtpx.ssl is ssl and _client.ssl is ssl and _clientbase.ssl is ssl


def test_replacing_ssl_reaches_smtp_ssl(ca: trustme.CA) -> None:
    server_context = _server_context(ca)

    def handler(peer: Peer) -> None:
        peer.sock = server_context.wrap_socket(peer.sock, server_side=True)
        peer.send(b"220 test.example ESMTP\r\n")
        peer.until_quit()

    calls: list[str] = []
    with server(handler) as (port, _):
        fake = _fake_ssl_module(_trusting_context(ca), calls)
        with mock.patch.object(smtpx, "ssl", fake):
            smtp = smtpx.SMTP_SSL("127.0.0.1", port, timeout=10)
            smtp.quit()
    assert calls == ["create_default_context"]
    assert _variants.ssl is ssl


def test_replacing_ssl_reaches_the_keyfile_certfile_context(ca: trustme.CA, tmp_path: Path) -> None:
    """The context for the deprecated keyfile/certfile arguments is built in _clientbase."""
    certfile = tmp_path / "client.pem"
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    calls: list[str] = []
    fake = _fake_ssl_module(ssl.create_default_context(), calls)
    with (
        mock.patch.object(smtpx, "ssl", fake),
        pytest.warns(DeprecationWarning, match="keyfile and certfile"),
    ):
        context = _clientbase.legacy_context(None, str(certfile), None)
    assert calls == ["create_default_context"]
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert _clientbase.ssl is ssl


# ----------------------------------------------------------------------------- limits


@BOTH
def test_lowering_maxline_takes_effect(module: Any) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"220 " + b"x" * 150 + b"\r\n")
        peer.readline()  # QUIT, or the client closing

    with server(handler) as (port, _), mock.patch.object(module, "_MAXLINE", 100):
        smtp = module.SMTP(timeout=10)
        with pytest.raises(smtplib.SMTPResponseException) as caught:
            smtp.connect("127.0.0.1", port)
        smtp.close()
    # smtplib's text is "Line too long."; smtpx names the limit (the code is what counts).
    assert caught.value.smtp_code == 500
    assert module._MAXLINE == 8192
    if module is smtpx:
        assert _reply.MAX_LINE == 8192


@BOTH
def test_raising_maxline_takes_effect(module: Any) -> None:
    long_text = b"y" * 10000  # over the default 8192

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo()
        assert peer.readline().lower() == b"noop\r\n"
        peer.send(b"250 " + long_text + b"\r\n")
        peer.until_quit()

    with (
        server(handler) as (port, _),
        mock.patch.object(module, "_MAXLINE", 20000),
        module.SMTP("127.0.0.1", port, timeout=10) as smtp,
    ):
        smtp.ehlo()
        assert smtp.noop() == (250, long_text)


@BOTH
@pytest.mark.parametrize("limit", [1, 3])
def test_maxchallenge_takes_effect(module: Any, limit: int) -> None:
    """A server that answers every AUTH line with another challenge: the client gives up
    after _MAXCHALLENGE of them, whatever the program set it to."""
    after_auth: list[bytes] = []

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"AUTH PLAIN")
        assert peer.readline().startswith(b"AUTH PLAIN ")
        peer.send(b"334 \r\n")
        while True:
            line = peer.readline()
            if not line or line.lower().startswith(b"quit"):
                return
            after_auth.append(line)
            peer.send(b"334 \r\n")

    with server(handler) as (port, _), mock.patch.object(module, "_MAXCHALLENGE", limit):
        smtp = module.SMTP("127.0.0.1", port, timeout=10)
        try:
            with pytest.raises(smtplib.SMTPException, match="infinite loop"):
                smtp.login("user", "secret")
        finally:
            smtp.close()
    # smtpx then cancels the exchange with "*" (RFC 4954 section 4; docs/compatibility.md).
    answers = [line for line in after_auth if line != b"*\r\n"]
    assert len(answers) == limit
    assert after_auth[limit:] == ([b"*\r\n"] if module is smtpx else [])
    if module is smtpx:
        assert _flows.MAX_CHALLENGES == 5


# ----------------------------------------------------------- classes and default ports


@BOTH
def test_patching_the_class_on_the_module(module: Any) -> None:
    """``mock.patch("smtplib.SMTP")``, the commonest patch of all: code that looks the
    class up on the module gets the mock, and the class is back afterwards."""
    original = module.SMTP
    with mock.patch(f"{module.__name__}.SMTP") as fake:
        fake.return_value.__enter__.return_value.sendmail.return_value = {}
        with module.SMTP("mail.invalid") as smtp:
            assert smtp.sendmail("a@example.org", ["b@example.org"], "hi") == {}
    fake.assert_called_once_with("mail.invalid")
    assert module.SMTP is original


@BOTH
def test_default_port_is_read_at_connect_time(module: Any) -> None:
    """smtplib copies SMTP_PORT into ``default_port`` when the class is made; a program
    that wants another default sets ``default_port``, which both read at connect time."""

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo()
        peer.until_quit()

    assert module.SMTP.default_port == module.SMTP_PORT == 25
    with (
        server(handler) as (port, _),
        mock.patch.object(module.SMTP, "default_port", port),
        module.SMTP("127.0.0.1", timeout=10) as smtp,
    ):
        assert smtp.ehlo()[0] == 250


def test_module_class_is_the_seam() -> None:
    """The forwarding works because smtpx's module object has a class of its own, with
    a ``__setattr__`` (a module cannot define one for itself)."""
    assert type(sys.modules["smtpx"]).__name__ == "SmtplibModule"
    assert type(smtpx).__setattr__ is not types.ModuleType.__setattr__
