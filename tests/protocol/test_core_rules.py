"""The core's rules the engine relies on, on bytes only (``_protocol/_connection.py``).

- What may be sent while replies are outstanding (RFC 2920 section 3.1, RFC 3030 section
  4.2): after MAIL, RCPT, RSET anything; between BDAT chunks only BDAT or RSET; after the
  end of a message's content only MAIL, RSET or QUIT; nothing without PIPELINING.
- Bytes that answer no command are refused (a reply injection), except a ``421`` (RFC 5321
  section 3.8), which is kept as the reply to the next command.
- QUIT closes the session on a 2xx reply only.
- ``ReplyParser.buffered_code()``, which the two rules above read.
"""

# The state changes inside method calls, which mypy's narrowing of ``conn.state`` cannot see.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import pytest

from smtpx._protocol import (
    ClientConnection,
    Command,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    State,
)
from smtpx._protocol._reply import ReplyParser

OFFER = b"250-mx.example.org\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000\r\n"
NO_PIPELINING = b"250-mx.example.org\r\n250 CHUNKING\r\n"


def ready(ehlo_reply: bytes = OFFER, *, lmtp: bool = False) -> ClientConnection:
    conn = ClientConnection(lmtp=lmtp)
    conn.receive_data(b"220 mx.example.org ESMTP\r\n")
    assert isinstance(conn.next_event(), Reply)
    conn.send(Command.lhlo("me") if lmtp else Command.ehlo("me"))
    conn.receive_data(ehlo_reply)
    event = conn.next_event()
    assert isinstance(event, Reply) and event.code == 250
    assert conn.pending == 0
    return conn


def replies(conn: ClientConnection, data: bytes) -> list[int]:
    """Feed *data* and take every reply it completes (the engine's batched read)."""
    conn.receive_data(data)
    return [reply.code for reply in conn.next_replies(100)]


# Commands by name, for the tables below (each is a fresh value: commands are frozen).
def _command(name: str) -> Command:
    return {
        "MAIL": Command.mail("<a@b>"),
        "RCPT": Command.rcpt("<c@d>"),
        "RSET": Command.rset(),
        "QUIT": Command.quit(),
        "DATA": Command.data(),
        "NOOP": Command.noop(),
        "EHLO": Command.ehlo("me"),
        "VRFY": Command("vrfy", "x"),
        "STARTTLS": Command.starttls(),
    }[name]


ALL = ["MAIL", "RCPT", "RSET", "QUIT", "DATA", "NOOP", "EHLO", "VRFY", "STARTTLS"]
AFTER_CONTENT = ["MAIL", "RSET", "QUIT"]


# ------------------------------------------------------- the continuable pending set


@pytest.mark.parametrize("first", ["MAIL", "RCPT", "RSET"])
@pytest.mark.parametrize("then", ALL)
def test_anything_may_follow_mail_rcpt_and_rset(first: str, then: str) -> None:
    conn = ready()
    conn.send(_command(first))
    conn.send(_command(then))
    assert conn.pending == 2


def test_nothing_may_follow_without_pipelining() -> None:
    conn = ready(NO_PIPELINING)
    conn.send(Command.mail("<a@b>"))
    with pytest.raises(LocalProtocolError, match="pending"):
        conn.send(Command.rcpt("<c@d>"))
    with pytest.raises(LocalProtocolError, match="a reply to 'MAIL'"):
        conn.send_bdat(10, last=True)
    assert conn.pending == 1


def _after_content(*, bdat: bool = False) -> ClientConnection:
    """MAIL, RCPT and the whole content sent (DATA or one BDAT LAST); the final reply due."""
    conn = ready()
    conn.send(Command.mail("<a@b>"))
    conn.send(Command.rcpt("<c@d>"))
    if bdat:
        conn.send_bdat(5, last=True)
        assert conn.pending == 3
    else:
        conn.send(Command.data())
        assert replies(conn, b"250 ok\r\n250 ok\r\n354 go\r\n") == [250, 250, 354]
        conn.send_data(b"hello\r\n")
        conn.end_data()
        assert conn.pending == 1
    assert conn.state is State.READY
    return conn


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
@pytest.mark.parametrize("then", ALL)
def test_after_the_content_only_a_new_transaction_or_quit(bdat: bool, then: str) -> None:
    """RFC 2920 section 3.1: the next transaction's MAIL (or RSET) may go in the group that
    ends a message, and QUIT may end it; nothing else may be sent before the final reply."""
    conn = _after_content(bdat=bdat)
    pending = conn.pending
    if then in AFTER_CONTENT:
        conn.send(_command(then))
        assert conn.pending == pending + 1
    else:
        with pytest.raises(LocalProtocolError, match="content"):
            conn.send(_command(then))
        assert conn.pending == pending


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
def test_no_chunk_after_the_content(bdat: bool) -> None:
    conn = _after_content(bdat=bdat)
    with pytest.raises(LocalProtocolError, match="content"):
        conn.send_bdat(5, last=True)


@pytest.mark.parametrize("then", AFTER_CONTENT)
def test_nothing_after_the_content_without_pipelining(then: str) -> None:
    conn = ready(NO_PIPELINING)
    for command, answer in [(Command.mail("<a@b>"), b"250 ok\r\n"), (Command.data(), b"354\r\n")]:
        conn.send(command)
        assert len(replies(conn, answer)) == 1
    conn.end_data()
    with pytest.raises(LocalProtocolError, match="pending"):
        conn.send(_command(then))
    assert conn.pending == 1


@pytest.mark.parametrize("then", ALL)
def test_between_chunks_only_rset(then: str) -> None:
    """RFC 3030 section 4.2: BDAT chunks may be pipelined; a command other than BDAT or
    RSET between them would be read as part of the transaction's content stream."""
    conn = ready()
    conn.send(Command.mail("<a@b>"))
    conn.send_bdat(3, last=False)
    if then == "RSET":
        conn.send(_command(then))
        assert conn.pending == 3
    else:
        with pytest.raises(LocalProtocolError, match="between the chunks"):
            conn.send(_command(then))
        assert conn.pending == 2
        conn.send_bdat(3, last=True)  # the next chunk still may
        assert conn.awaiting_final_reply is False  # MAIL's reply comes first
        assert conn.pending == 3


def test_chunks_pipelined_and_the_next_transaction() -> None:
    """Two messages in one group of writes: MAIL RCPT BDAT BDAT-LAST MAIL RCPT BDAT-LAST,
    each reply paired with its command in order."""
    conn = ready()
    wire = b"".join(
        [
            conn.send(Command.mail("<a@b>")),
            conn.send(Command.rcpt("<c@d>")),
            conn.send_bdat(3, last=False),
            conn.send_bdat(2, last=True),
            conn.send(Command.mail("<e@f>")),
            conn.send(Command.rcpt("<g@h>")),
            conn.send_bdat(4, last=True),
            conn.send(Command.quit()),
        ]
    )
    assert wire.count(b"BDAT") == 3 and wire.endswith(b"BDAT 4 LAST\r\nquit\r\n")
    assert conn.pending == 8
    assert replies(conn, b"250 s\r\n250 r\r\n250 chunk\r\n") == [250, 250, 250]
    assert conn.in_transaction and conn.awaiting_final_reply
    assert replies(conn, b"250 queued 1\r\n") == [250]
    assert not conn.awaiting_final_reply
    assert replies(conn, b"250 s\r\n250 r\r\n250 queued 2\r\n221 bye\r\n") == [250] * 3 + [221]
    assert conn.state is State.CLOSED and conn.pending == 0


def test_lmtp_content_awaits_one_reply_per_accepted_recipient() -> None:
    conn = ready(OFFER.replace(b"250-mx", b"250-lmtp"), lmtp=True)
    conn.send(Command.mail("<a@b>"))
    conn.send(Command.rcpt("<c@d>"))
    conn.send(Command.rcpt("<e@f>"))
    conn.send(Command.rcpt("<g@h>"))
    assert replies(conn, b"250 s\r\n250 r\r\n550 no\r\n250 r\r\n") == [250, 250, 550, 250]
    conn.send_bdat(1, last=True)
    conn.send(Command.mail("<next@b>"))  # may follow, as with SMTP
    assert conn.pending == 3  # two final replies (two accepted) and MAIL
    assert replies(conn, b"250 c done\r\n452 g full\r\n250 s\r\n") == [250, 452, 250]
    assert conn.in_transaction and conn.pending == 0


@pytest.mark.parametrize("middle", ["DATA", "NOOP", "QUIT", "EHLO"])
def test_a_group_continues_only_after_mail_rcpt_rset(middle: str) -> None:
    conn = ready()
    group = [Command.mail("<a@b>"), _command(middle), Command.rcpt("<c@d>")]
    with pytest.raises(LocalProtocolError, match="cannot be followed"):
        conn.send_group(group)
    assert conn.pending == 0  # a refused group leaves no trace


def test_a_group_needs_pipelining() -> None:
    conn = ready(NO_PIPELINING)
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send_group([Command.mail("<a@b>"), Command.rcpt("<c@d>")])
    assert conn.pending == 0


def test_a_group_after_the_content() -> None:
    conn = _after_content()
    conn.send_group([Command.mail("<a@b>"), Command.rcpt("<c@d>"), Command.data()])
    assert conn.pending == 4
    conn = _after_content()
    with pytest.raises(LocalProtocolError, match="content"):
        conn.send_group([Command.rcpt("<a@b>"), Command.data()])


# ------------------------------------------- a buffered 421, and other unsolicited data


CLOSING = b"421 4.7.0 too many messages, closing\r\n"


def _send_next(conn: ClientConnection, how: str) -> None:
    if how == "send":
        conn.send(Command.mail("<a@b>"))
    elif how == "group":
        conn.send_group([Command.mail("<a@b>"), Command.rcpt("<c@d>"), Command.data()])
    else:
        conn.send_bdat(5, last=True)


@pytest.mark.parametrize("how", ["send", "group", "bdat"])
@pytest.mark.parametrize(
    "closing", [CLOSING, b"421-4.7.0 shutting\r\n421 4.7.0 down\r\n"], ids=["one", "multi"]
)
def test_a_buffered_421_is_the_next_commands_reply(how: str, closing: bytes) -> None:
    """RFC 5321 section 3.8: a server that must shut down may send 421 "on the assumption
    that the client will receive it after the next command is issued"."""
    conn = ready()
    conn.receive_data(closing)
    assert conn.closing_reply_buffered
    _send_next(conn, how)
    assert conn.pending >= 1
    conn.receive_data(b"")  # and the server closed the connection
    (reply,) = conn.next_replies(10)
    assert reply.code == 421
    assert conn.state is State.CLOSED and conn.closed
    assert conn.pending == 0


def test_a_buffered_421_after_a_message_ends_the_session_not_the_message() -> None:
    """The issue's case: the message's final 250, then 421 and a close; the 250 is the
    message's reply, the 421 the reply to the next MAIL."""
    conn = _after_content()
    assert replies(conn, b"250 2.0.0 queued\r\n" + CLOSING) == [250]
    assert conn.state is State.READY and not conn.in_transaction
    assert conn.closing_reply_buffered
    conn.send(Command.mail("<a@b>"))
    assert replies(conn, b"") == [421]
    assert conn.closed


@pytest.mark.parametrize("how", ["send", "group", "bdat"])
@pytest.mark.parametrize(
    "data",
    [b"250 2.0.0 ok\r\n", b"354 go\r\n", b"221 bye\r\n", b"42", b"421 closing", b"550 no\r\n"],
)
def test_other_unsolicited_data_is_refused(how: str, data: bytes) -> None:
    """Anything else that answers no command (a complete reply other than 421, or a line
    not yet ended, whose code cannot be known) is a reply injection: refused before the
    command is queued."""
    conn = ready()
    conn.receive_data(data)
    assert not conn.closing_reply_buffered
    with pytest.raises(RemoteProtocolError, match="answers no command"):
        _send_next(conn, how)
    assert conn.pending == 0


def test_a_421_buffered_while_a_reply_is_due_is_that_commands_reply() -> None:
    conn = ready()
    conn.send(Command.noop())
    conn.receive_data(CLOSING)
    assert not conn.closing_reply_buffered  # it answers the NOOP, not the next command
    assert conn.next_replies(5)[0].code == 421
    assert conn.closed


def test_nothing_read_after_the_421() -> None:
    """What follows a 421 is never taken as a reply: the session is over."""
    conn = ready()
    conn.receive_data(CLOSING + b"250 injected\r\n")
    assert conn.closing_reply_buffered
    conn.send(Command.mail("<a@b>"))
    assert [r.code for r in conn.next_replies(5)] == [421]
    assert conn.next_replies(5) == []
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.send(Command.rset())


def test_closing_reply_buffered() -> None:
    conn = ready()
    assert not conn.closing_reply_buffered  # nothing buffered
    conn.receive_data(b"421 4.7.0 clos")
    assert not conn.closing_reply_buffered  # the line is not whole yet
    conn.receive_data(b"ing\r\n")
    assert conn.closing_reply_buffered
    assert conn.has_buffered


def test_closing_reply_buffered_is_false_with_a_command_outstanding() -> None:
    conn = ready()
    conn.send(Command.rset())
    conn.receive_data(CLOSING)
    assert not conn.closing_reply_buffered


# --------------------------------------------------------------------------- QUIT


@pytest.mark.parametrize("code", [b"221", b"250", b"200"])
def test_quit_closes_on_2xx(code: bytes) -> None:
    conn = ready()
    conn.send(Command.quit())
    assert replies(conn, code + b" bye\r\n") == [int(code)]
    assert conn.state is State.CLOSED and conn.closed


@pytest.mark.parametrize("code", [b"503", b"500", b"451"])
def test_quit_refused_closes_nothing(code: bytes) -> None:
    """A 503 to a QUIT pipelined after a message (Haraka) leaves the session open: the
    client says QUIT again once the message is settled."""
    conn = _after_content()
    conn.send(Command.quit())
    assert replies(conn, b"250 queued\r\n" + code + b" not now\r\n") == [250, int(code)]
    assert conn.state is State.READY and not conn.closed
    conn.send(Command.quit())
    assert replies(conn, b"221 bye\r\n") == [221]
    assert conn.closed


def test_quit_answered_421_closes() -> None:
    conn = ready()
    conn.send(Command.quit())
    assert replies(conn, b"421 closing anyway\r\n") == [421]
    assert conn.closed


# ---------------------------------------------------------- ReplyParser.buffered_code


def test_buffered_code_needs_a_whole_first_line() -> None:
    parser = ReplyParser()
    assert parser.buffered_code() is None
    for byte in b"250 o":
        parser.feed(bytes([byte]))
        assert parser.buffered_code() is None
    parser.feed(b"k\r")
    assert parser.buffered_code() is None
    parser.feed(b"\n")
    assert parser.buffered_code() == 250


def test_buffered_code_of_the_next_reply_only() -> None:
    parser = ReplyParser()
    parser.feed(b"250 first\r\n421 second\r\n")
    assert parser.buffered_code() == 250
    reply = parser.next_reply()
    assert reply is not None and reply.code == 250
    assert parser.buffered_code() == 421
    assert parser.next_reply() is not None
    assert parser.buffered_code() is None
    assert not parser.has_buffered


def test_buffered_code_of_a_multiline_reply_in_progress() -> None:
    parser = ReplyParser()
    parser.feed(b"421-4.7.0 going\r\n421-4.7.0 down\r\n421 4.7.0 n")
    assert parser.buffered_code() == 421
    assert parser.next_reply() is None  # not complete: the last line has no end yet
    assert parser.buffered_code() == 421  # still known while the reply is read
    parser.feed(b"ow\r\n")
    reply = parser.next_reply()
    assert reply is not None and reply.lines == (b"4.7.0 going", b"4.7.0 down", b"4.7.0 now")
    assert parser.buffered_code() is None


@pytest.mark.parametrize("line", [b"abc hi\r\n", b"099 low\r\n", b"600 high\r\n", b"\r\n"])
def test_buffered_code_of_a_line_that_is_no_reply(line: bytes) -> None:
    """Not a reply code: None, so a core that asks about a 421 never mistakes it."""
    parser = ReplyParser()
    parser.feed(line)
    assert parser.buffered_code() is None
    assert parser.has_buffered


def test_buffered_code_after_discard() -> None:
    parser = ReplyParser()
    parser.feed(b"421 planted\r\n")
    parser.discard()
    assert parser.buffered_code() is None
    assert not parser.has_buffered


def _data_sent() -> ClientConnection:
    """A session whose DATA is sent and whose 354 has not arrived yet (one step at a time)."""
    conn = ClientConnection()
    conn.receive_data(b"220 ready\r\n")
    assert conn.next_event().code == 220
    for command in (
        Command.ehlo("client.test"),
        Command.mail("a@example.org"),
        Command.rcpt("b@example.org"),
    ):
        conn.send(command)
        conn.receive_data(b"250 ok\r\n")
        assert conn.next_event().code == 250
    conn.send(Command.data())
    return conn


def test_data_after_354_is_refused() -> None:
    """A reply that arrives with the 354 cannot answer the content, which is not sent yet:
    taken as the final reply it would fake a delivery (reply injection)."""
    conn = _data_sent()
    conn.receive_data(b"354 go ahead\r\n250 2.0.0 queued as FAKE\r\n")
    with pytest.raises(RemoteProtocolError, match="after its 354"):
        conn.next_event()


def test_354_alone_starts_the_content() -> None:
    conn = _data_sent()
    conn.receive_data(b"354 go ahead\r\n")
    assert conn.next_event().code == 354
    assert conn.send_data(b"hello\r\n") == b"hello\r\n"
