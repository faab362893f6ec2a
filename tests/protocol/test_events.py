"""The core's events, on bytes: what is reported, in what order, and that no secret is.

Secrets are redacted where each event is made (``_protocol._events``): an AUTH command's
initial response, every line sent while an AUTH exchange is in progress, and the same in
bytes written raw.  The property test at the end renders every event every way there is
and looks for the secret in any form the client sent it.
"""

from __future__ import annotations

import base64
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx import (
    CommandSent,
    ConnectionClosed,
    ContentSent,
    LogObserver,
    RawSent,
    ReplyReceived,
    SessionEvent,
    TLSInfo,
    TLSStarted,
    Transcript,
)
from smtpx._log import SmtplibDebug, render
from smtpx._protocol import REDACTED, ClientConnection, Command, State
from smtpx._protocol._events import redact_raw


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ready(*extensions: bytes, **kwargs: object) -> tuple[ClientConnection, list[SessionEvent]]:
    """A core past its greeting and EHLO, with a list observing it."""
    events: list[SessionEvent] = []
    conn = ClientConnection(observer=events.append, **kwargs)  # type: ignore[arg-type]
    conn.receive_data(b"220 hi\r\n")
    conn.next_replies(1)
    conn.send(Command.ehlo("me"))
    lines = [b"srv", *extensions]
    ehlo = b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"
    conn.receive_data(ehlo)
    conn.next_replies(1)
    return conn, events


def reply(conn: ClientConnection, data: bytes, count: int = 1) -> None:
    conn.receive_data(data)
    assert len(conn.next_replies(count)) == count


def sent_lines(events: list[SessionEvent]) -> list[str]:
    return [event.line for event in events if isinstance(event, CommandSent)]


# ------------------------------------------------------------------ what is reported


def test_a_session_in_events() -> None:
    clock = Clock()
    conn, events = ready(b"PIPELINING", clock=clock)
    assert [type(e).__name__ for e in events] == ["ReplyReceived", "CommandSent", "ReplyReceived"]
    greeting, ehlo, ehlo_reply = events
    assert isinstance(greeting, ReplyReceived) and greeting.answers == "<greeting>"
    assert ehlo == CommandSent("ehlo me", False, 0.0)
    assert isinstance(ehlo_reply, ReplyReceived) and ehlo_reply.answers == "EHLO"
    events.clear()

    clock.now += 1.0
    conn.send_group([Command.mail("<a@x>"), Command.rcpt("<b@x>"), Command.data()])
    clock.now += 0.25
    reply(conn, b"250 ok\r\n250 ok\r\n354 go\r\n", 3)
    clock.now += 0.5
    tail = conn.end_data(b"hello\r\n.dot\r\n")
    reply(conn, b"250 queued\r\n")
    conn.send(Command.quit())
    reply(conn, b"221 bye\r\n")
    conn.close()  # the driver closes too: reported once

    assert sent_lines(events) == ["mail from:<a@x>", "rcpt to:<b@x>", "data", "quit"]
    replies = [e for e in events if isinstance(e, ReplyReceived)]
    assert [r.answers for r in replies] == ["MAIL", "RCPT", "DATA", "<end of data>", "QUIT"]
    assert [r.reply.code for r in replies] == [250, 250, 354, 250, 221]
    assert replies[0].elapsed == pytest.approx(1.25)
    assert replies[0].latency == pytest.approx(0.25)  # since the group was sent
    (content,) = [e for e in events if isinstance(e, ContentSent)]
    assert content == ContentSent(len(tail), "DATA", True, None, pytest.approx(1.75))
    assert tail == b"hello\r\n..dot\r\n.\r\n"
    assert [e for e in events if isinstance(e, ConnectionClosed)] == [
        ConnectionClosed("QUIT", pytest.approx(1.75))
    ]


def test_content_bytes_only_when_asked() -> None:
    conn, events = ready(content=True)
    conn.send(Command.mail("<a@x>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.rcpt("<b@x>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.data())
    reply(conn, b"354 go\r\n")
    first = conn.send_data(b"line one\r\nline")
    last = conn.end_data(b" two\r\n")
    pieces = [e for e in events if isinstance(e, ContentSent)]
    assert [(p.data, p.last, p.via) for p in pieces] == [
        (first, False, "DATA"),
        (last, True, "DATA"),
    ]


def test_bdat_reports_the_command_and_the_chunk() -> None:
    conn, events = ready(b"PIPELINING", b"CHUNKING", content=True)
    conn.send_group([Command.mail("<a@x>"), Command.rcpt("<b@x>")])
    conn.send_bdat(5, last=False, chunk=b"hello")
    conn.send_bdat(3, last=True, chunk=b"bye")
    assert sent_lines(events)[-2:] == ["BDAT 5", "BDAT 3 LAST"]
    chunks = [e for e in events if isinstance(e, ContentSent)]
    assert [(c.size, c.via, c.last, c.data) for c in chunks] == [
        (5, "BDAT", False, b"hello"),
        (3, "BDAT", True, b"bye"),
    ]


def test_tls_started_and_closing_reasons() -> None:
    conn, events = ready(b"STARTTLS")
    conn.send(Command.starttls())
    reply(conn, b"220 go\r\n")
    info = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 128, "CN=srv")
    conn.start_tls(info)
    assert isinstance(events[-1], TLSStarted) and events[-1].tls == info

    conn.send(Command.noop())
    reply(conn, b"421 shutting down\r\n")
    assert events[-1] == ConnectionClosed("421", pytest.approx(events[-1].elapsed))
    conn.close()
    assert sum(isinstance(e, ConnectionClosed) for e in events) == 1

    lost, lost_events = ready()
    lost.receive_data(b"")
    lost.next_event()
    assert isinstance(lost_events[-1], ConnectionClosed) and lost_events[-1].reason == "lost"


def test_observe_none_stops_reporting() -> None:
    conn, events = ready()
    conn.observe(None)
    conn.send(Command.noop())
    reply(conn, b"250 ok\r\n")
    conn.sent_raw(b"NOOP\r\n")
    assert len(events) == 3  # greeting, EHLO and its reply only


# ------------------------------------------------------------------------ redaction


def test_auth_plain_initial_response_is_redacted() -> None:
    conn, events = ready(b"AUTH PLAIN")
    conn.send(Command.auth("PLAIN", base64.b64encode(b"\0alice\0s3cret").decode()))
    assert events[-1] == CommandSent(f"AUTH PLAIN {REDACTED}", True, events[-1].elapsed)


def test_auth_login_continuation_lines_are_redacted() -> None:
    conn, events = ready(b"AUTH LOGIN")
    conn.send(Command.auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.state is State.SASL
    conn.send(Command(base64.b64encode(b"alice").decode()))
    reply(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.send(Command(base64.b64encode(b"s3cret").decode()))
    reply(conn, b"235 ok\r\n")
    assert sent_lines(events)[-3:] == ["AUTH LOGIN", REDACTED, REDACTED]
    assert [e.redacted for e in events if isinstance(e, CommandSent)][-3:] == [False, True, True]


def test_xoauth2_and_cancel_lines_are_redacted() -> None:
    token = base64.b64encode(b"user=a\x01auth=Bearer ya29.tok\x01\x01").decode()
    conn, events = ready(b"AUTH XOAUTH2")
    conn.send(Command.auth("XOAUTH2", token))
    reply(conn, b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n")
    conn.send(Command("*"))  # RFC 4954: cancel
    reply(conn, b"501 cancelled\r\n")
    assert sent_lines(events)[-2:] == [f"AUTH XOAUTH2 {REDACTED}", REDACTED]


@pytest.mark.parametrize("separator", [" ", "\t", "  "])
def test_any_whitespace_before_an_initial_response(separator: str) -> None:
    conn, events = ready(b"AUTH PLAIN")
    conn.send(Command("auth", f"plain{separator}c2VjcmV0"))
    assert "c2VjcmV0" not in repr(events[-1])
    assert events[-1].redacted  # type: ignore[union-attr]


def test_auth_last_in_a_pipelined_group_is_redacted() -> None:
    conn, events = ready(b"PIPELINING", b"AUTH PLAIN")
    conn.send_group([Command.rset(), Command.auth("PLAIN", "AGEAYg==")])
    assert sent_lines(events)[-2:] == ["rset", f"AUTH PLAIN {REDACTED}"]


@pytest.mark.parametrize(
    ("data", "in_sasl", "shown"),
    [
        ("AUTH PLAIN AGEAYg==\r\n", False, f"AUTH PLAIN {REDACTED}\r\n"),
        (b"auth plain AGEAYg==\r\n", False, f"auth plain {REDACTED}\r\n".encode()),
        (
            "AUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n",
            False,
            f"AUTH LOGIN\r\n{REDACTED}\r\n" * 1 + f"{REDACTED}\r\n",
        ),
        (b"YWxpY2U=\r\n", True, f"{REDACTED}\r\n".encode()),
        ("NOOP\r\nAUTH XOAUTH2 dG9r\r\n", False, f"NOOP\r\nAUTH XOAUTH2 {REDACTED}\r\n"),
        (b"NOOP\r\n", False, b"NOOP\r\n"),
    ],
)
def test_raw_writes_are_redacted_line_by_line(
    data: str | bytes, in_sasl: bool, shown: str | bytes
) -> None:
    assert redact_raw(data, in_sasl) == (shown, shown != data)


def test_raw_writes_are_reported_redacted_and_content_only_when_asked() -> None:
    conn, events = ready(b"AUTH PLAIN")
    conn.sent_raw("AUTH PLAIN AGEAYg==\r\n")
    assert events[-1] == RawSent(f"AUTH PLAIN {REDACTED}\r\n", 21, True, events[-1].elapsed)
    conn.expect_reply()
    reply(conn, b"235 ok\r\n")
    conn.send(Command.mail("<a@x>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.rcpt("<b@x>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.data())
    reply(conn, b"354 go\r\n")
    conn.sent_raw(b"private body\r\n.\r\n")
    assert events[-1] == RawSent(None, 17, False, events[-1].elapsed)


# ----------------------------------------------------------- no secret, rendered any way

_SECRET = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=24,
).map(lambda s: "Sx!" + s)  # a prefix no protocol text contains


def _exchange(user: str, password: str, token: str) -> list[SessionEvent]:
    """PLAIN, LOGIN and XOAUTH2 through commands, the same through raw writes."""
    conn, events = ready(b"AUTH PLAIN LOGIN XOAUTH2", content=True)

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    conn.send(Command.auth("PLAIN", b64(f"\0{user}\0{password}")))
    reply(conn, b"535 no\r\n")
    conn.send(Command.auth("LOGIN", b64(user)))
    reply(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.send(Command(b64(password)))
    reply(conn, b"535 no\r\n")
    conn.send(Command.auth("XOAUTH2"))
    reply(conn, b"334 \r\n")
    conn.send(Command(b64(f"user={user}\x01auth=Bearer {token}\x01\x01")))
    reply(conn, b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n")
    conn.send(Command("*"))
    reply(conn, b"501 cancelled\r\n")
    # The same, written raw (smtplib's send) as str and as bytes.
    conn.sent_raw(f"AUTH PLAIN {b64(chr(0) + user + chr(0) + password)}\r\n")
    conn.expect_reply()
    reply(conn, b"535 no\r\n")
    conn.sent_raw(f"AUTH LOGIN\r\n{b64(user)}\r\n".encode())
    conn.expect_reply()
    reply(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.sent_raw(f"AUTH LOGIN {b64(user)}\r\n")
    conn.expect_reply()
    reply(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.sent_raw(b64(password).encode() + b"\r\n")
    conn.expect_reply()
    reply(conn, b"235 ok\r\n")
    return events


@settings(max_examples=60, deadline=None)
@given(user=_SECRET, password=_SECRET, token=_SECRET)
def test_no_secret_in_any_rendered_line(user: str, password: str, token: str) -> None:
    events = _exchange(user, password, token)
    printed: list[str] = []
    debug = SmtplibDebug(lambda *args: printed.append(" ".join(map(str, args))))
    transcript = Transcript(content=True)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("smtpx.test.secrets")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Keep()
    logger.addHandler(handler)
    try:
        log = LogObserver(logger, bodies=True)
        for event in events:
            debug(event)
            transcript(event)
            log(event)
    finally:
        logger.removeHandler(handler)
    rendered = "\n".join(
        [
            *printed,
            *transcript.lines(timings=True),
            *(record.getMessage() for record in records),
            *(repr(event) for event in events),
            *(line for event in events for line in render(event, bodies=True)),
        ]
    )
    forbidden = {user, password, token}
    for payload in (
        f"\0{user}\0{password}",
        user,
        password,
        f"user={user}\x01auth=Bearer {token}\x01\x01",
    ):
        encoded = base64.b64encode(payload.encode()).decode()
        forbidden |= {encoded, encoded.rstrip("=")}
    for secret in forbidden:
        assert secret not in rendered
