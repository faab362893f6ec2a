"""The exchanges every flow is built from: commands out, replies in, over the core.

These are smtplib's lowest methods (``send``, ``putcmd``, ``getreply``), written once as
flows: the drivers only perform the ``Write`` and ``Read`` steps.  What is sent and
received is reported by the core to the client's observers (``_protocol._events``, with
AUTH data redacted there); ``send`` reports what a caller writes raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ._exceptions import SMTPServerDisconnected
from ._protocol import ClientConnection, Command, State
from ._steps import Close, Flow, Invoke, Read, Write

__all__ = [
    "CRLF",
    "Client",
    "Response",
    "connection",
    "encode_commands",
    "getreply",
    "putcmd",
    "send",
    "send_step",
]

CRLF = "\r\n"
Response = tuple[int, bytes]


class Client(Protocol):
    """What the flows read and set on a client (no I/O happens through these)."""

    sock: Any
    command_encoding: str
    _conn: ClientConnection | None
    _announced: object  # the last data send_step wrote: the core reported it already


def connection(client: Client) -> ClientConnection:
    """The session's core, or smtplib's error when there is no connection."""
    conn = client._conn
    if conn is None or not client.sock:
        raise SMTPServerDisconnected("please run connect() first")
    return conn


def send(client: Client, s: str | bytes) -> Flow[None]:
    """smtplib's ``send``: *s* as it is (str encoded with ``command_encoding``).  Data
    the caller wrote itself is reported here; a command or content the core made (and
    reported) comes through ``send_step``."""
    conn = client._conn
    if s is client._announced:
        client._announced = None
    elif conn is not None and client.sock:
        conn.sent_raw(s)
    if not client.sock:
        raise SMTPServerDisconnected("please run connect() first")
    yield Write(s.encode(client.command_encoding) if isinstance(s, str) else s)


def send_step(data: str | bytes) -> Invoke:
    """The step that writes *data*, which the core made and reported, through the
    client's (overridable) ``send``."""

    def call(client: Any) -> Any:
        # By identity: an override of send() that never calls ours leaves a stale mark
        # that no later object can match.
        client._announced = data
        return client.send(data)

    return Invoke(call)


def putcmd(client: Client, cmd: str, args: str) -> Flow[None]:
    """One command line through the overridable ``send``.  CR, LF or NUL in it raise
    ValueError before anything is queued or sent."""
    command = Command(cmd, args)
    conn = connection(client)
    if conn.state is State.CLOSED:
        yield Close()
        raise SMTPServerDisconnected("Server not connected")
    conn.send(command, client.command_encoding)  # checked, queued, reported; send() writes
    yield send_step(command.text + CRLF)


def encode_commands(client: Client, conn: ClientConnection, commands: Sequence[Command]) -> bytes:
    """A group of commands checked, queued and reported by the core, as one write
    (RFC 2920)."""
    return conn.send_group(list(commands), client.command_encoding)


def getreply(client: Client) -> Flow[Response]:
    """smtplib's ``getreply``: one reply as ``(code, text)``, lines joined by \\n."""
    conn = connection(client)
    conn.expect_reply()
    (reply,) = yield Read(1, [])
    return reply.code, reply.message
