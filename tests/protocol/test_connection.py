"""ClientConnection, the session state machine, driven with bytes only."""

# The state changes inside method calls, which mypy's narrowing of ``conn.state`` cannot see.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpx._protocol import (
    ClientConnection,
    Command,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    State,
)

# Hypothesis keys its internal caches by choice sequences, where b"" and 0 (or False) hash
# alike; a lookup then compares bytes with int inside hypothesis, which python -bb turns
# into an error.  Only warnings raised from hypothesis's own modules are ignored: a bytes
# comparison in smtpx or in these tests still fails.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:hypothesis")

EHLO_REPLY = b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"
PLAIN_EHLO_REPLY = b"250-mx.example.org\r\n250 STARTTLS\r\n"


def reply(conn: ClientConnection, data: bytes) -> Reply:
    """Feed *data* and return the one reply it completes."""
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, Reply), event
    return event


def greeted(*, lmtp: bool = False) -> ClientConnection:
    conn = ClientConnection(lmtp=lmtp)
    reply(conn, b"220 mx.example.org ESMTP\r\n")
    return conn


def ready(*, lmtp: bool = False, ehlo_reply: bytes = EHLO_REPLY) -> ClientConnection:
    conn = greeted(lmtp=lmtp)
    conn.send(Command.lhlo("me") if lmtp else Command.ehlo("me"))
    assert reply(conn, ehlo_reply).code == 250
    assert conn.state is State.READY
    assert conn.pending == 0
    return conn


def in_message(*, lmtp: bool = False, recipients: int = 1) -> ClientConnection:
    conn = ready(lmtp=lmtp, ehlo_reply=PLAIN_EHLO_REPLY)
    conn.send(Command.mail("<a@example.org>"))
    reply(conn, b"250 ok\r\n")
    for n in range(recipients):
        conn.send(Command.rcpt(f"<r{n}@example.org>"))
        reply(conn, b"250 ok\r\n")
    conn.send(Command.data())
    reply(conn, b"354 go ahead\r\n")
    assert conn.state is State.MESSAGE
    return conn


# ------------------------------------------------------------- greeting and EHLO


def test_greeting_then_ehlo() -> None:
    conn = ClientConnection()
    assert conn.state is State.GREETING
    assert conn.pending == 1
    assert conn.next_event() is Event.NEED_DATA
    conn.receive_data(b"220-mx.example.org\r\n220 ")
    assert conn.next_event() is Event.NEED_DATA
    greeting = reply(conn, b"ESMTP ready\r\n")
    assert greeting.as_tuple() == (220, b"mx.example.org\nESMTP ready")
    assert conn.state is State.READY
    assert conn.pending == 0
    assert conn.send(Command.ehlo("client.example")) == b"ehlo client.example\r\n"
    assert conn.pending == 1
    assert reply(conn, EHLO_REPLY).code == 250
    assert "pipelining" in conn.extensions
    assert "STARTTLS" in conn.extensions
    assert conn.extensions.size_limit == 1000
    assert conn.pending == 0


def test_send_before_greeting() -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError, match="greeting"):
        conn.send(Command.ehlo("me"))
    assert conn.pending == 1


def test_refused_ehlo_empties_extensions() -> None:
    conn = ready()
    conn.send(Command.ehlo("me"))
    reply(conn, b"502 no\r\n")
    assert conn.extensions.as_dict() == {}


def test_helo_empties_extensions() -> None:
    conn = ready()
    conn.send(Command.helo("me"))
    reply(conn, b"250 hello\r\n")
    assert conn.extensions.as_dict() == {}


def test_lhlo_sets_extensions() -> None:
    conn = ready(lmtp=True)
    assert "pipelining" in conn.extensions


# --------------------------------------------------------------- unsolicited replies


def test_unsolicited_reply_from_next_event() -> None:
    conn = greeted()
    conn.receive_data(b"250 extra\r\n")
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()


def test_unsolicited_bytes_refused_by_send() -> None:
    conn = greeted()
    conn.receive_data(b"250 injected\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.send(Command.ehlo("me"))


def test_unsolicited_partial_bytes_refused_by_send() -> None:
    conn = greeted()
    conn.receive_data(b"25")
    with pytest.raises(RemoteProtocolError):
        conn.send(Command.noop())


def test_bytes_after_the_greeting_in_one_read() -> None:
    conn = ClientConnection()
    assert reply(conn, b"220 hi\r\n250 injected\r\n").code == 220
    with pytest.raises(RemoteProtocolError):
        conn.send(Command.ehlo("me"))


def test_extra_reply_after_the_answer() -> None:
    conn = ready()
    conn.send(Command.noop())
    assert reply(conn, b"250 ok\r\n250 again\r\n").code == 250
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()


# ------------------------------------------------------------------------ pipelining


def test_second_command_refused_without_pipelining() -> None:
    conn = ready(ehlo_reply=PLAIN_EHLO_REPLY)
    conn.send(Command.mail("<a@b>"))
    with pytest.raises(LocalProtocolError, match="pending"):
        conn.send(Command.rcpt("<c@d>"))
    assert conn.pending == 1


def test_pipelined_group() -> None:
    conn = ready()
    wire = b"".join(
        [
            conn.send(Command.mail("<a@b>")),
            conn.send(Command.rcpt("<c@d>")),
            conn.send(Command.rcpt("<e@f>")),
            conn.send(Command.data()),
        ]
    )
    assert wire == b"mail from:<a@b>\r\nrcpt to:<c@d>\r\nrcpt to:<e@f>\r\ndata\r\n"
    assert conn.pending == 4
    with pytest.raises(LocalProtocolError):
        conn.send(Command.noop())  # DATA must be the last of the group
    conn.receive_data(b"250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n")
    codes = [conn.next_event() for _ in range(4)]
    assert [c.code for c in codes if isinstance(c, Reply)] == [250, 250, 550, 354]
    assert conn.state is State.MESSAGE
    assert conn.accepted_recipients == 1
    assert conn.pending == 0


def test_rset_is_pipelinable() -> None:
    conn = ready()
    conn.send(Command.rset())
    conn.send(Command.mail("<a@b>"))
    conn.send(Command.rcpt("<c@d>"))
    assert conn.pending == 3


@pytest.mark.parametrize(
    "first",
    [Command.noop(), Command.ehlo("me"), Command.data(), Command("vrfy", "x"), Command.auth("X")],
)
def test_nothing_after_a_command_that_ends_a_group(first: Command) -> None:
    conn = ready()
    conn.send(first)
    with pytest.raises(LocalProtocolError, match="pending"):
        conn.send(Command.mail("<a@b>"))
    assert conn.pending == 1


@pytest.mark.parametrize("last", [Command.noop(), Command.quit(), Command.data()])
def test_group_may_end_with_a_non_pipelinable_command(last: Command) -> None:
    conn = ready()
    conn.send(Command.mail("<a@b>"))
    conn.send(last)
    assert conn.pending == 2


@pytest.mark.parametrize("ender", [Command.rset(), Command.ehlo("me")], ids=["RSET", "EHLO"])
def test_pipelined_transaction_end_is_applied_in_order(ender: Command) -> None:
    """RSET (or EHLO) pipelined after MAIL and RCPT ends the transaction they opened.

    RFC 5321 section 4.1.1.5: RSET aborts the transaction; the server's replies come in
    command order, so after the group the session holds no transaction.
    """
    conn = ready()
    conn.send(Command.mail("<a@b>"))
    conn.send(Command.rcpt("<c@d>"))
    conn.send(ender)
    conn.receive_data(b"250 sender ok\r\n250 rcpt ok\r\n")
    conn.receive_data(b"250 reset\r\n" if ender.keyword == "RSET" else EHLO_REPLY)
    for _ in range(3):
        assert isinstance(conn.next_event(), Reply)
    assert conn.pending == 0
    assert conn.in_transaction is False
    assert conn.accepted_recipients == 0


# --------------------------------------------------------------------- transaction


def test_mail_rcpt_data() -> None:
    conn = ready(ehlo_reply=PLAIN_EHLO_REPLY)
    conn.send(Command.mail("<a@b>"))
    reply(conn, b"250 ok\r\n")
    assert conn.in_transaction
    conn.send(Command.rcpt("<c@d>"))
    reply(conn, b"251 forwarded\r\n")
    conn.send(Command.rcpt("<e@f>"))
    reply(conn, b"550 unknown\r\n")
    assert conn.accepted_recipients == 1
    conn.send(Command.data())
    reply(conn, b"354 go\r\n")
    assert conn.state is State.MESSAGE
    assert conn.send_data(b"a\n.b\r") == b"a\r\n..b"
    assert conn.send_data(b"\n") == b"\r\n"
    assert conn.end_data() == b".\r\n"
    assert conn.state is State.READY
    assert conn.pending == 1
    assert conn.in_transaction  # until the final reply
    reply(conn, b"250 queued\r\n")
    assert not conn.in_transaction
    assert conn.accepted_recipients == 0
    assert conn.pending == 0


def test_end_data_of_empty_content() -> None:
    conn = in_message()
    assert conn.end_data() == b"\r\n.\r\n"


def test_refused_data_stays_ready() -> None:
    conn = ready()
    conn.send(Command.data())
    reply(conn, b"554 no valid recipients\r\n")
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.end_data()


def test_failed_mail_opens_no_transaction() -> None:
    conn = ready()
    conn.send(Command.mail("<a@b>"))
    reply(conn, b"550 no\r\n")
    assert not conn.in_transaction


def test_rset_ends_the_transaction() -> None:
    conn = ready()
    conn.send(Command.mail("<a@b>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.rset())
    reply(conn, b"250 ok\r\n")
    assert not conn.in_transaction


# -------------------------------------------------------------- states that refuse


def _in_greeting() -> ClientConnection:
    return ClientConnection()


def _in_tls() -> ClientConnection:
    conn = ready()
    conn.send(Command.starttls())
    reply(conn, b"220 go ahead\r\n")
    return conn


def _closed() -> ClientConnection:
    conn = ready()
    conn.send(Command.quit())
    reply(conn, b"221 bye\r\n")
    return conn


STATES: dict[State, Callable[[], ClientConnection]] = {
    State.GREETING: _in_greeting,
    State.MESSAGE: in_message,
    State.TLS: _in_tls,
    State.CLOSED: _closed,
}


@pytest.mark.parametrize("state", list(STATES), ids=lambda s: s.name)
@pytest.mark.parametrize(
    "command",
    [Command.noop(), Command.ehlo("me"), Command.quit(), Command.data(), Command.rset()],
    ids=lambda c: c.keyword,
)
def test_commands_refused(state: State, command: Command) -> None:
    conn = STATES[state]()
    assert conn.state is state
    pending = conn.pending
    with pytest.raises(LocalProtocolError):
        conn.send(command)
    assert conn.state is state
    assert conn.pending == pending


@pytest.mark.parametrize("state", [State.GREETING, State.TLS, State.CLOSED], ids=lambda s: s.name)
def test_content_refused_outside_message(state: State) -> None:
    conn = STATES[state]()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.end_data()


@pytest.mark.parametrize(
    "state", [State.GREETING, State.MESSAGE, State.CLOSED], ids=lambda s: s.name
)
def test_start_tls_refused_outside_tls(state: State) -> None:
    conn = STATES[state]()
    with pytest.raises(LocalProtocolError):
        conn.start_tls()


def test_start_tls_refused_when_ready() -> None:
    with pytest.raises(LocalProtocolError):
        ready().start_tls()


def test_unencodable_command_changes_nothing() -> None:
    conn = ready()
    with pytest.raises(UnicodeEncodeError):
        conn.send(Command.mail("<jörg@example.org>"))
    assert conn.pending == 0
    assert conn.send(Command.mail("<jörg@example.org>"), "utf-8").startswith(b"mail from:")


# -------------------------------------------------------------------------- STARTTLS


def test_starttls_discards_injected_bytes_and_extensions() -> None:
    conn = ready()
    assert conn.send(Command.starttls()) == b"STARTTLS\r\n"
    assert reply(conn, b"220 ready\r\n250 injected\r\n").code == 220
    assert conn.state is State.TLS
    with pytest.raises(LocalProtocolError, match="TLS"):
        conn.send(Command.ehlo("me"))
    conn.start_tls()
    assert conn.state is State.READY
    assert conn.extensions.as_dict() == {}
    assert "starttls" not in conn.extensions
    assert conn.next_event() is Event.NEED_DATA  # the injected reply is gone
    conn.send(Command.ehlo("me"))  # not refused as unsolicited bytes either
    assert reply(conn, b"250-mx\r\n250 AUTH PLAIN\r\n").code == 250
    assert conn.extensions.auth_mechanisms == {"PLAIN"}


def test_starttls_discards_a_partial_injected_line() -> None:
    conn = ready()
    conn.send(Command.starttls())
    reply(conn, b"220 ready\r\n250-inj")
    conn.start_tls()
    conn.send(Command.ehlo("me"))
    assert reply(conn, b"250 mx\r\n").lines == (b"mx",)


def test_refused_starttls_keeps_the_session() -> None:
    conn = ready()
    conn.send(Command.starttls())
    reply(conn, b"454 TLS not available\r\n")
    assert conn.state is State.READY
    assert "pipelining" in conn.extensions


# ------------------------------------------------------------------------------ AUTH


def test_auth_challenge_loop() -> None:
    conn = ready()
    assert conn.send(Command.auth("LOGIN")) == b"AUTH LOGIN\r\n"
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.state is State.SASL
    assert conn.send(Command("YWxpY2U=")) == b"YWxpY2U=\r\n"
    assert conn.pending == 1
    with pytest.raises(LocalProtocolError):
        conn.send(Command("again"))
    reply(conn, b"334 UGFzc3dvcmQ6\r\n")
    assert conn.state is State.SASL
    conn.send(Command("czNjcmV0"))
    reply(conn, b"235 2.7.0 Authentication successful\r\n")
    assert conn.state is State.READY
    assert conn.pending == 0


@pytest.mark.parametrize(
    "line", [Command("*"), Command(""), Command("any text at all"), Command.noop()]
)
def test_sasl_response_is_any_line(line: Command) -> None:
    conn = ready()
    conn.send(Command.auth("PLAIN"))
    reply(conn, b"334 \r\n")
    assert conn.send(line) == line.wire()
    reply(conn, b"501 cancelled\r\n")
    assert conn.state is State.READY


@pytest.mark.parametrize("code", [b"235", b"501", b"535", b"454", b"503"])
def test_auth_without_challenge(code: bytes) -> None:
    conn = ready()
    conn.send(Command.auth("PLAIN", "AGEAYg=="))
    reply(conn, code + b" done\r\n")
    assert conn.state is State.READY


# ------------------------------------------------------------------- closing events


def _steps_to_421() -> list[object]:
    """A connection waiting for a reply at each step of a session, one param per step."""

    def greeting() -> ClientConnection:
        return ClientConnection()

    def after(
        command: Command, *, setup: Callable[[], ClientConnection] = ready
    ) -> Callable[[], ClientConnection]:
        def make() -> ClientConnection:
            conn = setup()
            conn.send(command)
            return conn

        return make

    def end_of_data() -> ClientConnection:
        conn = in_message()
        conn.end_data()
        return conn

    def sasl() -> ClientConnection:
        conn = ready()
        conn.send(Command.auth("LOGIN"))
        reply(conn, b"334 VXNlcm5hbWU6\r\n")
        conn.send(Command("YWxpY2U="))
        return conn

    def pipelined() -> ClientConnection:
        conn = ready()
        conn.send(Command.mail("<a@b>"))
        conn.send(Command.rcpt("<c@d>"))
        conn.send(Command.data())
        return conn

    steps: dict[str, Callable[[], ClientConnection]] = {
        "greeting": greeting,
        "ehlo": after(Command.ehlo("me"), setup=greeted),
        "helo": after(Command.helo("me"), setup=greeted),
        "mail": after(Command.mail("<a@b>")),
        "rcpt": after(Command.rcpt("<c@d>")),
        "data": after(Command.data()),
        "end-of-data": end_of_data,
        "auth": after(Command.auth("PLAIN")),
        "sasl-response": sasl,
        "starttls": after(Command.starttls()),
        "noop": after(Command.noop()),
        "pipelined": pipelined,
    }
    return [pytest.param(make, id=name) for name, make in steps.items()]


@pytest.mark.parametrize("make", _steps_to_421())
def test_421_closes_at_any_step(make: Callable[[], ClientConnection]) -> None:
    conn = make()
    assert conn.pending >= 1
    assert reply(conn, b"421 4.3.2 shutting down\r\n").code == 421
    assert conn.state is State.CLOSED
    assert conn.pending == 0
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.send(Command.noop())


def test_quit_closes() -> None:
    conn = ready()
    assert conn.send(Command.quit()) == b"quit\r\n"
    assert conn.state is State.READY
    reply(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED
    assert conn.pending == 0


def test_close_by_the_driver() -> None:
    conn = in_message()
    conn.close()
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")


def test_eof_mid_reply_is_not_a_reply() -> None:
    conn = greeted()
    conn.send(Command.ehlo("me"))
    conn.receive_data(b"250-mx\r\n250 PIPELI")
    assert conn.next_event() is Event.NEED_DATA
    conn.receive_data(b"")
    assert conn.next_event() is Event.CONNECTION_CLOSED
    assert conn.state is State.CLOSED
    assert "pipelining" not in conn.extensions


def test_eof_before_a_line_end() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 ready")
    conn.receive_data(b"")
    assert conn.next_event() is Event.CONNECTION_CLOSED


def test_eof_after_a_complete_reply_gives_the_reply_first() -> None:
    conn = ready()
    conn.send(Command.quit())
    conn.receive_data(b"221 bye\r\n")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Reply)
    assert conn.next_event() is Event.CONNECTION_CLOSED


def test_eof_with_nothing_buffered() -> None:
    conn = ready()
    conn.send(Command.noop())
    conn.receive_data(b"")
    assert conn.next_event() is Event.CONNECTION_CLOSED
    assert conn.state is State.CLOSED
    assert conn.pending == 0


# ------------------------------------------------------------------------------ LMTP


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    conn = ready(lmtp=True, ehlo_reply=PLAIN_EHLO_REPLY)
    conn.send(Command.mail("<a@b>"))
    reply(conn, b"250 ok\r\n")
    for code in (b"250", b"550", b"251"):
        conn.send(Command.rcpt("<x@y>"))
        reply(conn, code + b" rcpt\r\n")
    assert conn.accepted_recipients == 2
    conn.send(Command.data())
    reply(conn, b"354 go\r\n")
    conn.send_data(b"hello\n")
    conn.end_data()
    assert conn.pending == 2
    reply(conn, b"250 delivered to first\r\n")
    assert conn.in_transaction
    assert conn.pending == 1
    with pytest.raises(LocalProtocolError):
        conn.send(Command.noop())
    reply(conn, b"452 mailbox full\r\n")
    assert not conn.in_transaction
    assert conn.pending == 0
    conn.receive_data(b"250 a third\r\n")
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()


def test_smtp_one_reply_after_data_whatever_the_recipients() -> None:
    conn = in_message(recipients=2)
    conn.end_data()
    assert conn.pending == 1
    reply(conn, b"250 queued\r\n")
    conn.receive_data(b"250 second\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_lmtp_expects_at_least_one_reply() -> None:
    conn = in_message(lmtp=True, recipients=0)
    conn.end_data()
    assert conn.pending == 1


def test_lmtp_recipients_counted_per_transaction() -> None:
    conn = in_message(lmtp=True, recipients=3)
    conn.end_data()
    for _ in range(3):
        reply(conn, b"250 ok\r\n")
    conn.send(Command.mail("<a@b>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.rcpt("<c@d>"))
    reply(conn, b"250 ok\r\n")
    conn.send(Command.data())
    reply(conn, b"354 go\r\n")
    conn.end_data()
    assert conn.pending == 1


# ----------------------------------------------------------------- raw-bytes callers


def test_expect_reply_for_a_raw_command() -> None:
    conn = ready()  # the caller wrote b"NOOP\r\n" itself
    conn.expect_reply()
    assert conn.pending == 1
    assert reply(conn, b"250 ok\r\n").code == 250
    assert conn.pending == 0


def test_expect_reply_adds_nothing_when_a_reply_is_pending() -> None:
    conn = ready()
    conn.send(Command.noop())
    conn.expect_reply()
    assert conn.pending == 1


def test_reply_without_expect_reply_is_unsolicited() -> None:
    conn = ready()  # the caller wrote b"NOOP\r\n" itself
    conn.receive_data(b"250 ok\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_raw_content_in_message() -> None:
    conn = in_message()  # the caller wrote b"hello\r\n.\r\n" itself
    conn.expect_reply()
    assert conn.state is State.READY
    assert conn.pending == 1
    reply(conn, b"250 queued\r\n")
    assert not conn.in_transaction
