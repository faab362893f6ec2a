"""One table of scenarios, run against both drivers.

Each scenario gives the server's side (the line the client must send, the bytes the server
answers), the client's calls, and what each call must return or raise.  The blocking and
the asyncio classes must produce the same client bytes and the same results: one policy
(``smtpx._flows``), two drivers.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

import smtpx

from .scripted import Peer, scripted_server

PLAIN = base64.b64encode(b"\0alice\0s3cret").decode()


@dataclass(frozen=True)
class Scenario:
    name: str
    #: (what the client's next line starts with, what the server answers); b"" answers
    #: nothing.  "<content>" reads message content up to the terminator line.
    exchanges: list[tuple[bytes, bytes]]
    #: (method, args, kwargs) called in turn on a connected client.
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]
    #: What each call returns, or the exception type it raises.
    outcomes: list[Any]
    lmtp: bool = False
    greeting: bytes = b"220 test.example ESMTP\r\n"
    content: list[bytes] = field(default_factory=list)


def ehlo(*extensions: bytes, verb: bytes = b"ehlo") -> tuple[bytes, bytes]:
    lines = [b"test.example", *extensions]
    reply = b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"
    return verb + b" ", reply


CONTENT = b"<content>"
SCENARIOS = [
    Scenario(
        "ehlo features",
        [ehlo(b"SIZE 1000", b"AUTH=LOGIN", b"AUTH PLAIN")],
        [("ehlo", (), {}), ("has_extn", ("size",), {})],
        [(250, b"test.example\nSIZE 1000\nAUTH=LOGIN\nAUTH PLAIN"), True],
    ),
    Scenario(
        "helo fallback",
        [(b"ehlo ", b"502 5.5.1 no ehlo\r\n"), (b"helo ", b"250 hi\r\n")],
        [("ehlo_or_helo_if_needed", (), {}), ("has_extn", ("size",), {})],
        [None, False],
    ),
    Scenario(
        "helo refused",
        [(b"ehlo ", b"502 no\r\n"), (b"helo ", b"501 no\r\n")],
        [("ehlo_or_helo_if_needed", (), {})],
        [smtpx.SMTPHeloError],
    ),
    Scenario(
        "login plain with initial response",
        [ehlo(b"AUTH PLAIN"), (b"AUTH PLAIN " + PLAIN.encode(), b"235 2.7.0 ok\r\n")],
        [("login", ("alice", "s3cret"), {})],
        [(235, b"2.7.0 ok")],
    ),
    Scenario(
        "login falls back from a mechanism that fails",
        [
            ehlo(b"AUTH CRAM-MD5 PLAIN"),
            (b"AUTH CRAM-MD5", b"334 PDEyMzQ1QGV4YW1wbGU+\r\n"),
            (b"YWxpY2Ug", b"535 5.7.8 no\r\n"),
            (b"AUTH PLAIN ", b"235 ok\r\n"),
        ],
        [("login", ("alice", "s3cret"), {})],
        [(235, b"ok")],
    ),
    Scenario(
        "login refused everywhere",
        [ehlo(b"AUTH PLAIN"), (b"AUTH PLAIN ", b"535 5.7.8 bad credentials\r\n")],
        [("login", ("alice", "wrong"), {})],
        [smtpx.SMTPAuthenticationError],
    ),
    Scenario(
        "auth login challenge loop",
        [
            ehlo(b"AUTH LOGIN"),
            (b"AUTH LOGIN", b"334 VXNlcm5hbWU6\r\n"),
            (base64.b64encode(b"alice"), b"334 UGFzc3dvcmQ6\r\n"),
            (base64.b64encode(b"s3cret"), b"235 ok\r\n"),
        ],
        [("ehlo", (), {}), ("_set_credentials", (), {}), ("auth_login_flow", (), {})],
        [(250, b"test.example\nAUTH LOGIN"), None, (235, b"ok")],
    ),
    Scenario(
        "auth with a challenge that is not base64",
        [
            ehlo(b"AUTH LOGIN"),
            (b"AUTH LOGIN", b"334 %%%\r\n"),
            (b"*", b"501 cancelled\r\n"),
            (b"noop", b"250 in step\r\n"),
        ],
        [
            ("ehlo", (), {}),
            ("_set_credentials", (), {}),
            ("auth_login_flow", (), {}),
            ("noop", (), {}),
        ],
        [
            (250, b"test.example\nAUTH LOGIN"),
            None,
            smtpx.SMTPAuthenticationError,
            (250, b"in step"),
        ],
    ),
    Scenario(
        "sendmail",
        [
            ehlo(b"SIZE 1000"),
            (b"mail from:<a@example.test> size=4", b"250 ok\r\n"),
            (b"rcpt to:<b@example.test>", b"250 ok\r\n"),
            (b"data", b"354 go\r\n"),
            (CONTENT, b"250 2.0.0 queued as 42\r\n"),
        ],
        [("sendmail", ("a@example.test", ["b@example.test"], "hi\n"), {})],
        [{}],
        content=[b"hi\r\n.\r\n"],
    ),
    Scenario(
        "sendmail one refused",
        [
            ehlo(b"SIZE 1000"),
            (b"mail from:", b"250 ok\r\n"),
            (b"rcpt to:<b@", b"250 ok\r\n"),
            (b"rcpt to:<c@", b"550 5.1.1 unknown\r\n"),
            (b"data", b"354 go\r\n"),
            (CONTENT, b"250 queued\r\n"),
        ],
        [("sendmail", ("a@example.test", ["b@example.test", "c@example.test"], b".x"), {})],
        [{"c@example.test": (550, b"5.1.1 unknown")}],
        content=[b"..x\r\n.\r\n"],
    ),
    Scenario(
        "sendmail sender refused",
        [
            ehlo(b"SIZE 1000"),
            (b"mail from:", b"553 5.1.8 bad sender\r\n"),
            (b"rset", b"250 ok\r\n"),
        ],
        [("sendmail", ("a@example.test", ["b@example.test"], "hi"), {})],
        [smtpx.SMTPSenderRefused],
    ),
    Scenario(
        "sendmail content refused",
        [
            ehlo(b"SIZE 1000"),
            (b"mail from:", b"250 ok\r\n"),
            (b"rcpt to:", b"250 ok\r\n"),
            (b"data", b"354 go\r\n"),
            (CONTENT, b"554 5.6.0 spam\r\n"),
            (b"rset", b"250 ok\r\n"),
        ],
        [("sendmail", ("a@example.test", ["b@example.test"], "hi"), {})],
        [smtpx.SMTPDataError],
    ),
    Scenario(
        "sendmail pipelined",
        [
            ehlo(b"PIPELINING", b"SIZE 1000"),
            (b"mail from:", b"250 ok\r\n"),
            (b"rcpt to:<b@", b"250 ok\r\n"),
            (b"rcpt to:<c@", b"451 4.3.0 later\r\n"),
            (b"data", b"354 go\r\n"),
            (CONTENT, b"250 queued\r\n"),
        ],
        [("sendmail", ("a@example.test", ["b@example.test", "c@example.test"], "hi"), {})],
        [{"c@example.test": (451, b"4.3.0 later")}],
    ),
    Scenario(
        "rcpt 421 closes",
        [
            ehlo(b"SIZE 1000"),
            (b"mail from:", b"250 ok\r\n"),
            (b"rcpt to:", b"421 4.3.2 bye\r\n"),
        ],
        [("sendmail", ("a@example.test", ["b@example.test"], "hi"), {}), ("noop", (), {})],
        [smtpx.SMTPRecipientsRefused, smtpx.SMTPServerDisconnected],
    ),
    Scenario(
        "smtputf8 not offered",
        [ehlo(b"SIZE 1000"), (b"noop", b"250 ok\r\n")],
        [("ehlo", (), {}), ("mail", ("a@example.test", ["SMTPUTF8"]), {}), ("noop", (), {})],
        [(250, b"test.example\nSIZE 1000"), smtpx.SMTPNotSupportedError, (250, b"ok")],
    ),
    Scenario(
        "starttls not offered",
        [ehlo(b"SIZE 1000")],
        [("starttls", (), {})],
        [smtpx.SMTPNotSupportedError],
    ),
    Scenario(
        "injection refused before anything is sent",
        [(b"noop", b"250 ok\r\n")],
        [("mail", ("a@example.test\r\nRSET",), {}), ("noop", (), {})],
        [ValueError, (250, b"ok")],
    ),
    Scenario(
        "malformed reply",
        [(b"noop", b"2500 what\r\n")],
        [("noop", (), {}), ("noop", (), {})],
        [smtpx.SMTPProtocolError, smtpx.SMTPServerDisconnected],
    ),
    Scenario(
        "simple commands",
        [
            (b"vrfy a@example.test", b"252 2.1.5 maybe\r\n"),
            (b"expn list", b"250-a <a@example.test>\r\n250 b <b@example.test>\r\n"),
            (b"help", b"214 read the RFC\r\n"),
            (b"rset", b"250 ok\r\n"),
            (b"quit", b"221 bye\r\n"),
        ],
        [
            ("verify", ("Alice <a@example.test>",), {}),
            ("expn", ("list",), {}),
            ("help", (), {}),
            ("rset", (), {}),
            ("quit", (), {}),
        ],
        [
            (252, b"2.1.5 maybe"),
            (250, b"a <a@example.test>\nb <b@example.test>"),
            b"read the RFC",
            (250, b"ok"),
            (221, b"bye"),
        ],
    ),
    Scenario(
        "lmtp replies per recipient",
        [
            ehlo(b"PIPELINING", verb=b"lhlo"),
            (b"mail from:", b"250 ok\r\n"),
            (b"rcpt to:<b@", b"250 ok\r\n"),
            (b"rcpt to:<c@", b"250 ok\r\n"),
            (b"data", b"354 go\r\n"),
            (CONTENT, b"250 2.0.0 b delivered\r\n452 4.2.2 c over quota\r\n"),
            (b"noop", b"250 still in step\r\n"),
        ],
        [
            ("sendmail", ("a@example.test", ["b@example.test", "c@example.test"], "hi"), {}),
            ("noop", (), {}),
        ],
        [{"c@example.test": (452, b"4.2.2 c over quota")}, (250, b"still in step")],
        lmtp=True,
        greeting=b"220 lmtp.example LMTP\r\n",
    ),
]


def _handler(scenario: Scenario, content: list[bytes]):  # type: ignore[no-untyped-def]
    def handler(peer: Peer) -> None:
        peer.send(scenario.greeting)
        for expected, reply in scenario.exchanges:
            if expected == CONTENT:
                content.append(peer.read_content())
            else:
                line = peer.readline()
                assert line.lower().startswith(expected.lower()), (line, expected)
            if reply:
                peer.send(reply)
            if reply.startswith(b"421"):
                break  # the server closes the channel: the client must send nothing more
        # Nothing more than the script: the runners close without QUIT, so the next thing
        # the server reads is the end of the connection.  A QUIT, RSET or NOOP the script
        # does not list fails here (as a missing line fails above).
        extra = peer.readline()
        assert extra == b"", f"the client sent {extra!r} after the script ended"

    return handler


def _classes(scenario: Scenario) -> tuple[type, type]:
    if scenario.lmtp:
        return smtpx.LMTP, smtpx.AsyncLMTP
    return smtpx.SMTP, smtpx.AsyncSMTP


def _extra(client: Any, name: str) -> Any:
    """Steps that need more than one method call, written once for both drivers."""
    if name == "_set_credentials":
        client.user, client.password = "alice", "s3cret"
        return lambda: None
    if name == "auth_login_flow":
        return lambda: client.auth("LOGIN", client.auth_login, initial_response_ok=False)
    return getattr(client, name)


def _record(outcome: Any, exc: BaseException | None) -> Any:
    return type(exc) if exc is not None else outcome


def _run_sync(scenario: Scenario, port: int) -> list[Any]:
    client = _classes(scenario)[0]("127.0.0.1", port, local_hostname="client.test", timeout=5)
    results = []
    for name, args, kwargs in scenario.calls:
        try:
            results.append(_extra(client, name)(*args, **kwargs))
        except Exception as exc:
            results.append(_record(None, exc))
    client.close()
    return results


async def _run_async(scenario: Scenario, port: int) -> list[Any]:
    client = _classes(scenario)[1]("127.0.0.1", port, local_hostname="client.test", timeout=5)
    await client.connect()
    results = []
    for name, args, kwargs in scenario.calls:
        try:
            value = _extra(client, name)(*args, **kwargs)
            results.append(await value if asyncio.iscoroutine(value) else value)
        except Exception as exc:
            results.append(_record(None, exc))
    await client.close()
    return results


def _play(scenario: Scenario, driver: str) -> tuple[list[Any], list[bytes]]:
    """Run *scenario*'s calls on *driver* against its script.  Raises the script's
    AssertionError if the client sent a line it does not list, or left one out."""
    content: list[bytes] = []
    with scripted_server(_handler(scenario, content)) as (port, peers):
        if driver == "sync":
            results = _run_sync(scenario, port)
        else:
            results = asyncio.run(_run_async(scenario, port))
    assert peers, "the client never connected"
    return results, content


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_scenario(scenario: Scenario, driver: str) -> None:
    # Every line the script expects was sent, nothing more, nothing less (checked by the
    # script as the server reads).
    results, content = _play(scenario, driver)
    assert results == scenario.outcomes
    if scenario.content:
        assert content == scenario.content


def _by_name(name: str) -> Scenario:
    return next(scenario for scenario in SCENARIOS if scenario.name == name)


@pytest.mark.parametrize("extra", ["noop", "rset", "quit"])
@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_the_script_refuses_an_extra_command(driver: str, extra: str) -> None:
    """The table can fail: a client that sends one command more than the script (here
    an extra call at the end) is caught by the server's side, whatever the command."""
    base = _by_name("sendmail")
    scenario = dataclasses.replace(
        base, calls=[*base.calls, (extra, (), {})], outcomes=[*base.outcomes, None]
    )
    with pytest.raises(AssertionError, match="after the script ended"):
        _play(scenario, driver)


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_the_script_refuses_a_missing_command(driver: str) -> None:
    base = _by_name("simple commands")  # its script ends with QUIT
    scenario = dataclasses.replace(base, calls=base.calls[:-1], outcomes=base.outcomes[:-1])
    with pytest.raises(AssertionError, match="quit"):
        _play(scenario, driver)
