"""Commands as value objects that render their own wire line.

A command refuses CR, LF and NUL anywhere in its verb or argument: those are how a caller's
string would smuggle a second command onto the wire (CPython bpo-43124, and RFC 5321
section 2.3.8: CR and LF must only appear together, as the line end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Command"]


def _escape(text: str) -> str:
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\0", "\\0")


class _Fields(NamedTuple):
    verb: str
    argument: str
    text: str


class Command(_Fields):
    """One command line: a verb and its argument text (``text`` is the whole line
    without its CRLF).  Immutable; a named tuple because a 100-recipient transaction
    builds a hundred of them and a frozen dataclass costs several times more to create.

    >>> Command.mail("<a@example.org>", ["SIZE=10"]).wire()
    b'mail from:<a@example.org> SIZE=10\\r\\n'
    >>> Command("noop", "x\\r\\nRCPT TO:<evil>")
    Traceback (most recent call last):
    ...
    ValueError: command and arguments contain prohibited newline characters: ...
    """

    __slots__ = ()

    def __new__(cls, verb: str, argument: str = "") -> Command:
        text = f"{verb} {argument}" if argument else verb
        if "\r" in text or "\n" in text:
            # The message matches smtplib's, which callers and CPython's tests look for.
            raise ValueError(
                f"command and arguments contain prohibited newline characters: {_escape(text)}"
            )
        if "\0" in text:
            raise ValueError(
                f"command and arguments contain a prohibited NUL character: {_escape(text)}"
            )
        return tuple.__new__(cls, (verb, argument, text))

    @property
    def keyword(self) -> str:
        """The upper-cased verb, which the session state machine acts on."""
        return self.verb.upper()

    def wire(self, encoding: str = "ascii") -> bytes:
        """The bytes to send, CRLF included.  Raises UnicodeEncodeError if unencodable."""
        return (self.text + "\r\n").encode(encoding)

    # Constructors for the commands of RFC 5321 section 4.1 and its extensions.  smtplib
    # sends verbs in lower case (and CPython's tests check "mail from:"), so do we.

    @classmethod
    def ehlo(cls, name: str) -> Command:
        return cls("ehlo", name)

    @classmethod
    def lhlo(cls, name: str) -> Command:
        """RFC 2033 section 4.1: LMTP's EHLO."""
        return cls("lhlo", name)

    @classmethod
    def helo(cls, name: str) -> Command:
        return cls("helo", name)

    @classmethod
    def mail(cls, reverse_path: str, params: Sequence[str] = ()) -> Command:
        """*reverse_path* is already in angle brackets (``<>`` for the null sender)."""
        return cls("mail", " ".join(["from:" + reverse_path, *params]))

    @classmethod
    def rcpt(cls, forward_path: str, params: Sequence[str] = ()) -> Command:
        return cls("rcpt", " ".join(["to:" + forward_path, *params]))

    @classmethod
    def data(cls) -> Command:
        return cls("data")

    @classmethod
    def rset(cls) -> Command:
        return cls("rset")

    @classmethod
    def noop(cls) -> Command:
        return cls("noop")

    @classmethod
    def quit(cls) -> Command:
        return cls("quit")

    @classmethod
    def starttls(cls) -> Command:
        return cls("STARTTLS")

    @classmethod
    def auth(cls, mechanism: str, initial_response: str | None = None) -> Command:
        """RFC 4954 section 4; *initial_response* is already base64 (``=`` for empty)."""
        argument = mechanism if initial_response is None else f"{mechanism} {initial_response}"
        return cls("AUTH", argument)
