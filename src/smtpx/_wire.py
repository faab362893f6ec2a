"""The exchanges every flow is built from: commands out, replies in, over the core.

These are smtplib's lowest methods (``send``, ``putcmd``, ``getreply``), written once as
flows: the drivers only perform the ``Write`` and ``Read`` steps.  Debug output
(``set_debuglevel``) is produced here, in smtplib's format, and AUTH lines are redacted
before they are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ._exceptions import SMTPServerDisconnected
from ._protocol import ClientConnection, Command, Reply, State
from ._steps import Close, Flow, Invoke, Read, Write

__all__ = [
    "CRLF",
    "Client",
    "Response",
    "connection",
    "encode_commands",
    "getreply",
    "putcmd",
    "redact",
    "send",
    "send_step",
    "show_reply",
    "write",
]

CRLF = "\r\n"
Response = tuple[int, bytes]


class Client(Protocol):
    """What the flows read and set on a client (no I/O happens through these)."""

    sock: Any
    debuglevel: int
    command_encoding: str
    _conn: ClientConnection | None
    _redacted: str | None

    def _print_debug(self, *args: object) -> None: ...


def connection(client: Client) -> ClientConnection:
    """The session's core, or smtplib's error when there is no connection."""
    conn = client._conn
    if conn is None or not client.sock:
        raise SMTPServerDisconnected("please run connect() first")
    return conn


def redact(command: Command) -> str:
    """The line as debug output shows it: SASL data replaced (no secret is ever shown)."""
    if command.keyword == "AUTH":
        mechanism, _, initial = command.argument.partition(" ")
        return f"{command.verb} {mechanism} ********" if initial else command.text
    return "********"


def write(client: Client, data: bytes) -> Write:
    """The step that writes *data*, with its debug line."""
    if client.debuglevel > 0:
        client._print_debug("send:", repr(data))
    return Write(data)


def send(client: Client, s: str | bytes) -> Flow[None]:
    """smtplib's ``send``: *s* as it is (str encoded with ``command_encoding``)."""
    if client.debuglevel > 0:
        shown = client._redacted if client._redacted is not None else s
        client._print_debug("send:", repr(shown))
    client._redacted = None
    if not client.sock:
        raise SMTPServerDisconnected("please run connect() first")
    yield Write(s.encode(client.command_encoding) if isinstance(s, str) else s)


def send_step(data: str | bytes) -> Invoke:
    """The step that writes *data* through the client's (overridable) ``send``."""
    return Invoke(lambda c: c.send(data))


def putcmd(client: Client, cmd: str, args: str) -> Flow[None]:
    """One command line through the overridable ``send``.  CR, LF or NUL in it raise
    ValueError before anything is queued or sent."""
    command = Command(cmd, args)
    conn = connection(client)
    if conn.state is State.CLOSED:
        yield Close()
        raise SMTPServerDisconnected("Server not connected")
    secret = conn.state is State.SASL or command.keyword == "AUTH"
    conn.send(command, client.command_encoding)  # checked and queued; send() writes it
    if secret:
        client._redacted = redact(command) + CRLF
    yield send_step(command.text + CRLF)


def encode_commands(client: Client, conn: ClientConnection, commands: Sequence[Command]) -> bytes:
    """A group of commands checked and queued by the core, as one write (RFC 2920), with
    the debug line of each."""
    data = conn.send_group(list(commands), client.command_encoding)
    if client.debuglevel > 0:
        for command in commands:
            shown = redact(command) if command.keyword == "AUTH" else command.text
            client._print_debug("send:", repr(shown + CRLF))
    return data


def show_reply(client: Client, reply: Reply) -> None:
    """smtplib's debug lines for one reply."""
    if client.debuglevel > 0:
        for line in reply.raw:
            client._print_debug("reply:", repr(line))
        client._print_debug(f"reply: retcode ({reply.code}); Msg: {reply.message!a}")


def getreply(client: Client) -> Flow[Response]:
    """smtplib's ``getreply``: one reply as ``(code, text)``, lines joined by \\n."""
    conn = connection(client)
    conn.expect_reply()
    (reply,) = yield Read(1, [])
    return reply.code, reply.message
