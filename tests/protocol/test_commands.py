"""Command value objects: their wire lines, and the refusal of CR, LF and NUL."""

from __future__ import annotations

import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx._protocol import Command

SETTINGS = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Command.ehlo("client.example"), b"ehlo client.example\r\n"),
        (Command.lhlo("client.example"), b"lhlo client.example\r\n"),
        (Command.helo("client.example"), b"helo client.example\r\n"),
        (Command.mail("<a@example.org>"), b"mail from:<a@example.org>\r\n"),
        (Command.mail("<>"), b"mail from:<>\r\n"),
        (
            Command.mail("<a@example.org>", ["SIZE=10", "BODY=8BITMIME"]),
            b"mail from:<a@example.org> SIZE=10 BODY=8BITMIME\r\n",
        ),
        (Command.rcpt("<b@example.org>"), b"rcpt to:<b@example.org>\r\n"),
        (
            Command.rcpt("<b@example.org>", ("NOTIFY=NEVER",)),
            b"rcpt to:<b@example.org> NOTIFY=NEVER\r\n",
        ),
        (Command.data(), b"data\r\n"),
        (Command.rset(), b"rset\r\n"),
        (Command.noop(), b"noop\r\n"),
        (Command.quit(), b"quit\r\n"),
        (Command.starttls(), b"STARTTLS\r\n"),
        (Command.auth("CRAM-MD5"), b"AUTH CRAM-MD5\r\n"),
        (Command.auth("PLAIN", "AGFsaWNlAHMzY3JldA=="), b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"),
        (Command.auth("PLAIN", "="), b"AUTH PLAIN =\r\n"),
        (Command("vrfy", "alice"), b"vrfy alice\r\n"),
        (Command("noop", ""), b"noop\r\n"),
        (Command("dXNlcg=="), b"dXNlcg==\r\n"),  # a SASL response line
    ],
)
def test_rendering(command: Command, wire: bytes) -> None:
    assert command.wire() == wire
    assert command.text + "\r\n" == wire.decode("ascii")


@pytest.mark.parametrize(
    ("command", "keyword"),
    [
        (Command.mail("<a@b>"), "MAIL"),
        (Command.ehlo("x"), "EHLO"),
        (Command.starttls(), "STARTTLS"),
        (Command.auth("LOGIN"), "AUTH"),
        (Command("Rcpt", "to:<x>"), "RCPT"),
    ],
)
def test_keyword_is_the_upper_cased_verb(command: Command, keyword: str) -> None:
    assert command.keyword == keyword


def test_commands_are_frozen_values() -> None:
    command = Command.noop()
    with pytest.raises(AttributeError):  # immutable (a named tuple)
        command.verb = "quit"  # type: ignore[misc]
    assert Command.noop() == command
    assert hash(Command.noop()) == hash(command)


@pytest.mark.parametrize(
    ("verb", "argument"),
    [
        ("noop", "x\r\nRCPT TO:<evil>"),
        ("noop", "x\nRSET"),
        ("noop", "x\r"),
        ("no\rop", ""),
        ("noop\n", ""),
        ("mail", "from:<a@b>\r\n"),
    ],
)
def test_newlines_refused(verb: str, argument: str) -> None:
    with pytest.raises(ValueError, match="prohibited newline characters"):
        Command(verb, argument)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Command.mail("<a@b>\r\nRCPT TO:<c@d>"),
        lambda: Command.mail("<a@b>", ["SIZE=1\r\nRSET"]),
        lambda: Command.rcpt("<a@b>\n"),
        lambda: Command.ehlo("host\r\nMAIL FROM:<x>"),
        lambda: Command.auth("PLAIN", "abc\r\n"),
    ],
)
def test_newlines_refused_by_constructors(make: object) -> None:
    with pytest.raises(ValueError, match="prohibited newline characters"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(("verb", "argument"), [("noop", "x\0y"), ("no\0op", ""), ("mail", "\0")])
def test_nul_refused(verb: str, argument: str) -> None:
    with pytest.raises(ValueError, match="prohibited NUL character"):
        Command(verb, argument)


def _smtplib_putcmd(verb: str, argument: str) -> str:
    """What smtplib.SMTP.putcmd sends, or the message of the error it raises."""
    client = smtplib.SMTP(local_hostname="localhost")
    sent: list[str] = []
    client.send = sent.append  # type: ignore[method-assign,assignment]
    try:
        client.putcmd(verb, argument)
    except ValueError as exc:
        return f"ValueError: {exc}"
    return sent[0]


def _putcmd(verb: str, argument: str) -> str:
    try:
        return Command(verb, argument).wire().decode("ascii")
    except ValueError as exc:
        return f"ValueError: {exc}"


@pytest.mark.parametrize(
    ("verb", "argument"),
    [("noop", "x\r\nRCPT TO:<evil>"), ("mail", "from:<a@b>"), ("rset", ""), ("x\ny", "\r")],
)
def test_same_line_and_message_as_smtplib(verb: str, argument: str) -> None:
    assert _putcmd(verb, argument) == _smtplib_putcmd(verb, argument)


def test_wire_encoding() -> None:
    command = Command.mail("<jörg@example.org>", ["SMTPUTF8"])
    with pytest.raises(UnicodeEncodeError):
        command.wire()
    with pytest.raises(UnicodeEncodeError):
        command.wire("ascii")
    assert command.wire("utf-8") == "mail from:<jörg@example.org> SMTPUTF8\r\n".encode()


# ----------------------------------------------------------------------- properties

_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("\r\n\0 :<>@.=-aZ"), st.characters(exclude_categories=["Cs"])
    ),
    max_size=20,
)
_ASCII_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from("\r\n\0"), st.characters(max_codepoint=0x7F)), max_size=20
)


@SETTINGS
@given(_TEXT, _TEXT)
def test_prohibited_characters_always_refused(verb: str, argument: str) -> None:
    if any(c in verb + argument for c in "\r\n\0"):
        with pytest.raises(ValueError, match="prohibited"):
            Command(verb, argument)
    else:
        wire = Command(verb, argument).wire("utf-8")
        assert wire.endswith(b"\r\n")
        assert wire.count(b"\r") == wire.count(b"\n") == 1
        assert wire.decode("utf-8") == (f"{verb} {argument}" if argument else verb) + "\r\n"


@SETTINGS
@given(_ASCII_TEXT, _ASCII_TEXT)
def test_same_as_smtplib_putcmd(verb: str, argument: str) -> None:
    """For ASCII text without NUL, the bytes (or the error message) are smtplib's."""
    if "\0" in verb + argument:
        # smtplib sends NUL; smtpx refuses it (RFC 5321 section 4.1.1 has no NUL in commands).
        with pytest.raises(ValueError):
            Command(verb, argument)
        return
    assert _putcmd(verb, argument) == _smtplib_putcmd(verb, argument)
