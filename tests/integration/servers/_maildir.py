"""Reading what a real server delivered: maildirs, polling, and trace fields.

Postfix delivers asynchronously (smtpd -> queue -> virtual), so a test that
has just seen ``250`` polls the recipient's maildir for a message carrying a
unique token. Maildir writes each message in ``tmp/`` and renames it into
``new/``, so a file seen in ``new/`` or ``cur/`` is always complete.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DELIVERY_TIMEOUT",
    "Mailbox",
    "check_trace_fields",
    "expected_delivery",
    "make_message",
    "strip_trace_fields",
    "to_lf",
    "trace_fields",
]

# Delivery through the Postfix queue takes a few milliseconds here; 15 s is
# the bound the brief allows for a loaded machine before a test fails.
DELIVERY_TIMEOUT = 15.0
POLL_INTERVAL = 0.05
# Bytes of context shown around the first difference when a message was altered.
DIFF_CONTEXT = 60

# Fields a delivering server prepends (RFC 5321 section 4.4 trace fields, and
# Postfix's / Dovecot's delivery records); everything after them is the
# message as the client sent it.
TRACE_FIELDS = frozenset({b"return-path", b"received", b"delivered-to", b"x-original-to"})
_EOL = re.compile(rb"\r\n|\r|\n")


def to_lf(data: bytes) -> bytes:
    """Every CRLF, bare CR and bare LF as one LF (maildir files use LF)."""
    return _EOL.sub(b"\n", data)


def expected_delivery(sent: bytes) -> bytes:
    """What a message sent as ``sent`` looks like in a maildir file.

    Line ends of any kind become LF, and the client terminates the last line
    if the message did not (RFC 5321 section 4.1.1.4: the body ends in CRLF).
    """
    lf = to_lf(sent)
    return lf if lf.endswith(b"\n") else lf + b"\n"


def strip_trace_fields(delivered: bytes) -> bytes:
    """The delivered message without the header fields the server prepended.

    Only LF separates lines here: maildir files end lines with LF, so a CR
    left in ``delivered`` is one the client failed to normalise, and it must
    make the comparison with ``expected_delivery`` fail.
    """
    lines = delivered.split(b"\n")
    index = 0
    in_trace_field = False
    while index < len(lines):
        line = lines[index]
        if line[:1] in (b" ", b"\t") and in_trace_field:
            index += 1  # folded continuation of a trace field
            continue
        name, colon, _ = line.partition(b":")
        if colon and name.strip().lower() in TRACE_FIELDS:
            in_trace_field = True
            index += 1
            continue
        break
    return b"\n".join(lines[index:])


def trace_fields(delivered: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields the server prepended, in order: (lowercase name, value), folded
    lines joined with one space."""
    fields: list[tuple[bytes, bytes]] = []
    for line in delivered.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if not (colon and name.strip().lower() in TRACE_FIELDS):
            break
        fields.append((name.strip().lower(), value.strip()))
    return fields


def check_trace_fields(
    delivered: bytes, *, sender: str, recipient: str, delivered_to: bool = True
) -> None:
    """The delivery records say who sent the message to whom.

    ``Return-Path`` is the MAIL FROM the server received (RFC 5321 section 4.4: the final
    delivery records the reverse-path), so a client that sent a wrong or mangled sender
    fails here.  ``Delivered-To`` (Postfix's and Dovecot's own field) must name
    *recipient*; with *delivered_to* False it may be missing (Dovecot writes it only for a
    transaction with one recipient), but is still checked when present.
    """
    fields = trace_fields(delivered)
    return_paths = [value for name, value in fields if name == b"return-path"]
    want = b"<" + sender.encode("utf-8") + b">"
    assert return_paths == [want], f"Return-Path {return_paths!r}, MAIL FROM was {want!r}"
    recorded = [value.lower() for name, value in fields if name == b"delivered-to"]
    assert recorded or not delivered_to, f"no Delivered-To among the trace fields {fields!r}"
    assert all(value == recipient.encode("utf-8").lower() for value in recorded), (
        f"Delivered-To {recorded!r}, the recipient was {recipient!r}"
    )


def new_token() -> str:
    """A unique marker to find one test's message among the delivered ones."""
    return f"smtpx-{uuid.uuid4().hex}"


def make_message(
    token: str,
    *,
    sender: str = "sender@client.test",
    to: str = "alice@example.test",
    body: bytes = b"Hello from smtpx.\r\n",
) -> bytes:
    """A small CRLF message whose Subject and Message-ID carry ``token``."""
    header = (
        f"From: <{sender}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {token}\r\n"
        f"Message-ID: <{token}@client.test>\r\n"
        "\r\n"
    )
    return header.encode("utf-8") + body


@dataclass(frozen=True)
class Mailbox:
    """One recipient's maildir, as the server under test writes it."""

    address: str
    path: Path
    #: The server writes Delivered-To on every delivery (see ``check_trace_fields``).
    delivered_to_always: bool = True

    def messages(self) -> list[bytes]:
        """Every delivered message, oldest file name first."""
        found: list[bytes] = []
        for sub in ("new", "cur"):
            directory = self.path / sub
            if not directory.is_dir():
                continue
            for entry in sorted(directory.iterdir()):
                try:
                    found.append(entry.read_bytes())
                except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                    continue
        return found

    def find(self, token: str | bytes) -> list[bytes]:
        """The delivered messages that contain ``token``."""
        needle = token.encode() if isinstance(token, str) else token
        return [message for message in self.messages() if needle in message]

    def wait_for(
        self, token: str | bytes, timeout: float = DELIVERY_TIMEOUT, *, sender: str
    ) -> bytes:
        """Poll until exactly one message with ``token`` has arrived; check its trace
        fields (``check_trace_fields``: *sender* and this mailbox) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            matches = self.find(token)
            if len(matches) > 1:
                raise AssertionError(f"{len(matches)} messages with {token!r} in {self.path}")
            if matches:
                check_trace_fields(
                    matches[0],
                    sender=sender,
                    recipient=self.address,
                    delivered_to=self.delivered_to_always,
                )
                return matches[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no message with {token!r} for {self.address} in {self.path} "
                    f"after {timeout:.0f} s ({len(self.messages())} other messages there)"
                )
            time.sleep(POLL_INTERVAL)

    def wait_for_intact(
        self, token: str | bytes, sent: bytes, *, sender: str, timeout: float = DELIVERY_TIMEOUT
    ) -> bytes:
        """Wait for the message with ``token`` and check it is ``sent``, byte for byte, and
        that the server recorded *sender* (the MAIL FROM) and this mailbox as its recipient.

        Returns the delivered file (trace fields included) for further checks.
        """
        delivered = self.wait_for(token, timeout, sender=sender)
        got, want = strip_trace_fields(delivered), expected_delivery(sent)
        if got != want:
            raise AssertionError(
                f"message for {self.address} altered in transit: {_difference(want, got)}\n"
                f"  delivered file begins: {delivered[: DIFF_CONTEXT * 4]!r}"
            )
        return delivered


def _difference(want: bytes, got: bytes) -> str:
    """Where two byte strings first differ, with a little context (not megabytes)."""
    offset = next(
        (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
        min(len(want), len(got)),
    )
    start = max(0, offset - DIFF_CONTEXT)
    end = offset + DIFF_CONTEXT
    return (
        f"expected {len(want)} bytes, got {len(got)}; first difference at byte {offset}:\n"
        f"  expected: ...{want[start:end]!r}...\n"
        f"  got:      ...{got[start:end]!r}..."
    )
