"""Conversations whose ``set_debuglevel`` output is kept as golden files.

Each scenario is a scripted server (``scripted.Peer``) and a client script, written once
and run by both front ends.  ``test_debug_output`` compares what the clients print on
stderr with ``golden/<scenario>.txt``, recorded before the debug output was produced from
structured events: the output must stay byte for byte what it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .scripted import Peer

USER, PASSWORD, TOKEN = "alice", "pa55-Secret!", "ya29.TokenValue"
MESSAGE = "Subject: hi\r\n\r\nhello\r\n.dot line\r\n"


def _quit(peer: Peer) -> None:
    peer.expect(b"quit")
    peer.send(b"221 bye\r\n")


def _ehlo(peer: Peer, *extensions: bytes) -> None:
    peer.greet_and_ehlo(*extensions)


def _transaction(peer: Peer, recipients: int, final: bytes = b"250 queued\r\n") -> None:
    peer.expect(b"mail from:")
    peer.send(b"250 sender ok\r\n")
    for _ in range(recipients):
        peer.expect(b"rcpt to:")
        peer.send(b"250 rcpt ok\r\n")
    peer.expect(b"data")
    peer.send(b"354 go on\r\n")
    peer.read_content()
    peer.send(final)


# ------------------------------------------------------------------ servers


def basic_server(peer: Peer) -> None:
    _ehlo(peer, b"PIPELINING", b"8BITMIME", b"SIZE 1000000", b"AUTH PLAIN LOGIN CRAM-MD5")
    peer.expect(b"noop")
    peer.send(b"250 noop ok\r\n")
    peer.expect(b"auth cram-md5")
    peer.send(b"334 " + base64.b64encode(b"<1.2@test>") + b"\r\n")
    peer.readline()
    peer.send(b"235 2.7.0 ok\r\n")
    peer.expect(b"mail from:")
    peer.expect(b"rcpt to:")
    peer.expect(b"rcpt to:")
    peer.expect(b"data")
    peer.send(b"250 sender ok\r\n250 rcpt ok\r\n550 5.1.1 no such user\r\n354 go on\r\n")
    peer.read_content()
    peer.send(b"250 2.0.0 queued as 1\r\n")
    _quit(peer)


def basic_client(smtp: Any) -> Any:
    yield smtp.ehlo()
    yield smtp.noop()
    yield smtp.login(USER, PASSWORD)
    yield smtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)
    yield smtp.quit()


def plain_server(peer: Peer) -> None:
    _ehlo(peer, b"AUTH PLAIN")
    peer.expect(b"auth plain ")
    peer.send(b"235 ok\r\n")
    _quit(peer)


def plain_client(smtp: Any) -> Any:
    yield smtp.login(USER, PASSWORD)
    yield smtp.quit()


def login_server(peer: Peer) -> None:
    _ehlo(peer, b"AUTH LOGIN")
    peer.expect(b"auth login ")
    peer.send(b"334 UGFzc3dvcmQ6\r\n")
    peer.readline()
    peer.send(b"235 ok\r\n")
    _quit(peer)


def login_client(smtp: Any) -> Any:
    yield smtp.login(USER, PASSWORD)
    yield smtp.quit()


def xoauth2_server(peer: Peer) -> None:
    _ehlo(peer, b"AUTH XOAUTH2")
    peer.expect(b"auth xoauth2 ")
    peer.send(b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n")
    peer.readline()
    peer.send(b"535 5.7.8 bad token\r\n")
    peer.expect(b"auth xoauth2")
    peer.send(b"334 \r\n")
    peer.readline()
    peer.send(b"235 ok\r\n")
    _quit(peer)


def _xoauth2(challenge: bytes | None = None) -> str:
    return f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01" if challenge is None else ""


def _xoauth2_late(challenge: bytes | None = None) -> str | None:
    return None if challenge is None else f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01"


def xoauth2_client(smtp: Any) -> Any:
    yield smtp.ehlo()
    try:
        yield smtp.auth("XOAUTH2", _xoauth2)
    except Exception as exc:
        yield repr(exc)
    yield smtp.auth("XOAUTH2", _xoauth2_late, initial_response_ok=False)
    yield smtp.quit()


def steps_server(peer: Peer) -> None:
    _ehlo(peer, b"8BITMIME")
    peer.expect(b"mail from:")
    peer.send(b"250 ok\r\n")
    peer.expect(b"rcpt to:")
    peer.send(b"250 ok\r\n")
    peer.expect(b"data")
    peer.send(b"354 go\r\n")
    peer.read_content()
    peer.send(b"250 done\r\n")
    peer.expect(b"rset")
    peer.send(b"250 reset\r\n")
    peer.expect(b"vrfy")
    peer.send(b"252 maybe\r\n")
    peer.expect(b"xraw")
    peer.send(b"500-what\r\n500 is that\r\n")
    peer.expect(b"help")
    peer.send(b"214 help\r\n")
    # sendmail without PIPELINING: one command at a time, a refused recipient
    peer.expect(b"mail from:")
    peer.send(b"250 ok\r\n")
    peer.expect(b"rcpt to:")
    peer.send(b"550 no\r\n")
    peer.expect(b"rcpt to:")
    peer.send(b"250 ok\r\n")
    peer.expect(b"data")
    peer.send(b"354 go\r\n")
    peer.read_content()
    peer.send(b"250 done\r\n")
    _quit(peer)


def steps_client(smtp: Any) -> Any:
    yield smtp.ehlo("client.test")
    yield smtp.mail("a@example.test", ["BODY=8BITMIME"])
    yield smtp.rcpt("b@example.test")
    yield smtp.data(b"Subject: x\n\nbody\n")
    yield smtp.rset()
    yield smtp.verify("b@example.test")
    yield smtp.send("XRAW thing\r\n")
    yield smtp.getreply()
    yield smtp.help()
    yield smtp.sendmail("a@example.test", ["x@example.test", "b@example.test"], b"hi\r\n")
    yield smtp.quit()


def graph_server(peer: Peer) -> None:
    _ehlo(peer, b"PIPELINING")
    _transaction(peer, 1)
    _quit(peer)


def graph_client(smtp: Any) -> Any:
    yield smtp.sendmail("a@example.test", "b@example.test", MESSAGE)
    yield smtp.quit()


def lmtp_server(peer: Peer) -> None:
    peer.send(b"220 lmtp ready\r\n")
    peer.expect(b"lhlo ")
    peer.send(b"250-test.example\r\n250 PIPELINING\r\n")
    peer.expect(b"mail from:")
    peer.expect(b"rcpt to:")
    peer.expect(b"rcpt to:")
    peer.expect(b"data")
    peer.send(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    peer.read_content()
    peer.send(b"250 2.0.0 b delivered\r\n452 4.2.2 c over quota\r\n")
    _quit(peer)


def lmtp_client(smtp: Any) -> Any:
    try:
        yield smtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)
    except Exception as exc:
        yield repr(exc)
    yield smtp.quit()


def starttls_server(context: ssl.SSLContext) -> Callable[[Peer], None]:
    def handler(peer: Peer) -> None:
        _ehlo(peer, b"STARTTLS")
        peer.expect(b"starttls")
        peer.send(b"220 go ahead\r\n")
        peer.starttls(context)
        peer.expect(b"ehlo ")
        peer.send(b"250-test.example\r\n250 AUTH PLAIN\r\n")
        _quit(peer)

    return handler


def starttls_client(context: ssl.SSLContext) -> Callable[[Any], Any]:
    def script(smtp: Any) -> Any:
        yield smtp.starttls(context=context)
        yield smtp.ehlo()
        yield smtp.quit()

    return script


def ssl_server(peer: Peer) -> None:
    _ehlo(peer, b"SIZE 100")
    _quit(peer)


def ssl_client(smtp: Any) -> Any:
    yield smtp.ehlo()
    yield smtp.quit()


@dataclass
class Scenario:
    name: str
    server: Callable[[Peer], None]
    script: Callable[[Any], Any]
    kind: str = "smtp"  # smtp, lmtp, ssl
    graph: bool = False  # a subclass replaces rcpt(): smtplib's graph, step by step
    level: int = 1


def cram(password: str, challenge: bytes) -> str:
    return hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()


SCENARIOS = [
    Scenario("basic", basic_server, basic_client),
    Scenario("basic2", basic_server, basic_client, level=2),
    Scenario("plain", plain_server, plain_client),
    Scenario("login", login_server, login_client),
    Scenario("xoauth2", xoauth2_server, xoauth2_client),
    Scenario("steps", steps_server, steps_client),
    Scenario("graph", graph_server, graph_client, graph=True),
    Scenario("lmtp", lmtp_server, lmtp_client, kind="lmtp"),
]

_TIME = re.compile(r"^\d\d:\d\d:\d\d(\.\d+)? ", re.MULTILINE)


def normalize(text: str, port: int) -> str:
    """Stable across runs: the server's port and level 2's timestamps."""
    text = _TIME.sub("HH:MM:SS ", text)
    return text.replace(f", {port})", ", PORT)")
