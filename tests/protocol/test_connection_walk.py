"""ClientConnection driven through random sequences of every input (h2 style): only protocol
errors and ValueError may come out, and the state invariants always hold."""

# The state changes inside method calls, which mypy's narrowing of ``conn.state`` cannot see.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from smtpx._protocol import (
    ClientConnection,
    Command,
    Event,
    LocalProtocolError,
    ProtocolError,
    State,
)

# See test_connection.py: hypothesis's own caches compare bytes with int under -bb.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:hypothesis")


# ------------------------------------------------------------- random walk (h2 style)

_CODES = st.one_of(
    st.sampled_from([220, 221, 235, 250, 251, 334, 354, 421, 450, 454, 501, 503, 535, 550, 554]),
    st.integers(200, 599),
)
_LINE_TEXT = st.one_of(
    st.sampled_from([b"mx", b"PIPELINING", b"STARTTLS", b"AUTH PLAIN LOGIN", b"SIZE 100"]),
    st.binary(max_size=10).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
_COMMANDS = st.one_of(
    st.sampled_from(
        [
            Command.ehlo("me"),
            Command.lhlo("me"),
            Command.helo("me"),
            Command.mail("<a@b>"),
            Command.rcpt("<c@d>"),
            Command.data(),
            Command.rset(),
            Command.noop(),
            Command.quit(),
            Command.starttls(),
            Command.auth("PLAIN"),
            Command.auth("PLAIN", "AGEAYg=="),
            Command("*"),
            Command("vrfy", "x"),
        ]
    ),
    st.tuples(st.text(max_size=6), st.text(max_size=6)),
)


@st.composite
def _reply_bytes(draw: st.DrawFn) -> bytes:
    code = draw(_CODES)
    texts = draw(st.lists(_LINE_TEXT, min_size=1, max_size=4))
    end = draw(st.sampled_from([b"\r\n", b"\n"]))
    return b"".join(
        b"%d%s%s%s" % (code, b" " if i == len(texts) - 1 else b"-", text, end)
        for i, text in enumerate(texts)
    )


class ConnectionMachine(RuleBasedStateMachine):
    """Random sequences of every input; only protocol errors and ValueError may come out."""

    conn: ClientConnection

    def __init__(self) -> None:
        super().__init__()
        self.conn = ClientConnection()
        self.was_closed = False

    @initialize(lmtp=st.booleans())
    def start(self, lmtp: bool) -> None:
        self.conn = ClientConnection(lmtp=lmtp)

    def attempt(self, action: Callable[[], object]) -> object:
        before = self.conn.state
        try:
            return action()
        except ProtocolError:
            return None
        except ValueError:  # a command with CR/LF/NUL, or unencodable
            return None
        finally:
            if self.was_closed:
                assert self.conn.state is State.CLOSED, f"left CLOSED (was {before})"

    def drain(self) -> None:
        for _ in range(50):
            event = self.attempt(self.conn.next_event)
            if event is None or isinstance(event, Event):
                return

    @rule(command=_COMMANDS, encoding=st.sampled_from(["ascii", "utf-8"]))
    def send(self, command: Command | tuple[str, str], encoding: str) -> None:
        def act() -> bytes:
            cmd = command if isinstance(command, Command) else Command(*command)
            wire = self.conn.send(cmd, encoding)
            assert wire.endswith(b"\r\n")
            assert wire.count(b"\n") == 1
            return wire

        self.attempt(act)

    @rule(data=_reply_bytes())
    def feed_reply(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.drain()

    @rule(data=st.binary(min_size=1, max_size=20))
    def feed_bytes(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.drain()

    @rule()
    def eof(self) -> None:
        self.conn.receive_data(b"")
        self.drain()

    @rule()
    def start_tls(self) -> None:
        self.attempt(self.conn.start_tls)

    @rule(chunk=st.binary(max_size=20))
    def send_data(self, chunk: bytes) -> None:
        out = self.attempt(lambda: self.conn.send_data(chunk))
        if isinstance(out, bytes):
            assert b"\n" not in out.replace(b"\r\n", b"")

    @rule()
    def end_data(self) -> None:
        out = self.attempt(self.conn.end_data)
        if out is not None:
            assert isinstance(out, bytes)
            assert out.endswith(b"\r\n.\r\n") or out == b".\r\n"

    @rule()
    def expect_reply(self) -> None:
        self.attempt(self.conn.expect_reply)

    @invariant()
    def state_invariants(self) -> None:
        conn = self.conn
        assert isinstance(conn.state, State)
        assert conn.pending >= 0
        assert conn.accepted_recipients >= 0
        if conn.state is State.GREETING:
            assert conn.pending == 1
        if conn.state is State.MESSAGE:
            # DATA ends any pipelined group: nothing can be queued after it.
            assert conn.pending == 0
        if conn.state is State.SASL:
            assert conn.pending <= 1
        if conn.state is State.CLOSED:
            self.was_closed = True
        if self.was_closed:
            assert conn.state is State.CLOSED
            with pytest.raises(LocalProtocolError):
                conn.send(Command.noop())
            with pytest.raises(LocalProtocolError):
                conn.send_data(b"x")
            with pytest.raises(LocalProtocolError):
                conn.start_tls()


ConnectionMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None
)
test_connection_random_walk = ConnectionMachine.TestCase
