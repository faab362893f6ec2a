"""The steps a flow asks its driver to take.

Every multi-step behaviour of smtpx (a command and its reply, smtplib's ``sendmail`` policy,
the transaction engine, AUTH) is a generator in the policy layer that yields *steps* and is
sent each step's result, like httpx's ``Auth.auth_flow``.  A driver does what a step says
and nothing more: the blocking one with a socket, the asyncio one with a transport.

=========  =========================================  ==================================
step       the driver                                 sends back
=========  =========================================  ==================================
Write      writes the bytes (``smtplib.send`` audit)  None
Read       reads until N more replies are complete    the list it appended them to
StartTLS   performs the TLS handshake                 None
Close      closes (``abort``: cuts at once)           None
Invoke     calls one of smtplib's public methods      what the method returns
=========  =========================================  ==================================

``Invoke`` is how the policy reaches smtplib's overridable method graph (``send``,
``putcmd``, ``getreply``, ``mail``, ``rcpt``, ``data``...): a subclass or a test that replaces
one of them sees the same calls as with smtplib.  Its callable is typed against ``Graph``,
so mypy checks the method names and arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from ._protocol import Reply

__all__ = [
    "Close",
    "Flow",
    "Graph",
    "Invoke",
    "Read",
    "StartTLS",
    "Step",
    "Write",
]

T = TypeVar("T")


class Write(NamedTuple):
    """Write *data* to the server (whole; a failure closes the connection)."""

    data: bytes


class Read(NamedTuple):
    """Read until *number* more replies are complete, appending them to *into* (so that a
    flow keeps those read before a failure); fewer when the server closes with 421 on
    the way, RFC 5321 section 3.8 (the driver closes too).  Each reply has its own time
    limit, and a server that drips bytes cannot stretch it."""

    number: int
    into: list[Reply]


class StartTLS(NamedTuple):
    """The TLS handshake after the server's 220 to STARTTLS (an ``ssl.SSLContext`` or None
    for the default; typed ``object`` because this layer imports no I/O module)."""

    context: object


class Close(NamedTuple):
    """Close the connection.  *abort*: cut it at once, without waiting for a graceful
    close (after a timeout or a broken exchange the peer may never read or answer)."""

    abort: bool = False


class Invoke(NamedTuple):
    """Call a public method of smtplib's graph on the client; the asyncio driver awaits
    the call."""

    call: Callable[[Graph], Any]


Step = Write | Read | StartTLS | Close | Invoke
#: A flow yields steps, is sent each step's result, and returns a ``T``.
Flow = Generator[Step, Any, T]


class Graph(Protocol):
    """The overridable methods of smtplib's ``SMTP`` that flows call through ``Invoke``
    (the blocking class returns the values, the asyncio class coroutines of them)."""

    def send(self, s: str | bytes) -> Any: ...
    def putcmd(self, cmd: str, args: str = "") -> Any: ...
    def getreply(self) -> Any: ...
    def docmd(self, cmd: str, args: str = "") -> Any: ...
    def helo(self, name: str = "") -> Any: ...
    def ehlo(self, name: str = "") -> Any: ...
    def ehlo_or_helo_if_needed(self) -> Any: ...
    def rset(self) -> Any: ...
    def mail(self, sender: str, options: Sequence[str] = ()) -> Any: ...
    def rcpt(self, recip: str, options: Sequence[str] = ()) -> Any: ...
    def data(self, msg: str | bytes) -> Any: ...
    def close(self) -> Any: ...
    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: str | bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> Any: ...
    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> Any: ...
    def starttls(self, *, context: Any = None) -> Any: ...
    def auth(
        self,
        mechanism: str,
        authobject: Callable[..., str | bytes | None],
        *,
        initial_response_ok: bool = True,
    ) -> Any: ...
