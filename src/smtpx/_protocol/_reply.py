"""Replies, and the incremental parser that builds them from bytes.

The parser gives the same replies whether the bytes arrive whole or one at a time (a
hypothesis test checks it), bounds every reply by the limits in ``_limits``, and treats
anything that is not a well-formed reply (RFC 5321 section 4.2) as an error, never as a
success: smtplib's ``-1`` code for an unreadable reply is not reproduced.
"""

from __future__ import annotations

from typing import NamedTuple

from ._errors import RemoteProtocolError, ReplyTooLong
from ._limits import MAX_LINE, MAX_REPLY_BYTES, MAX_REPLY_LINES
from ._status import EnhancedStatus

__all__ = ["Reply", "ReplyParser"]

_DIGITS = b"0123456789"
# RFC 5321 section 4.2.1: the first digit is 2 to 5.  1yz is not used by SMTP but is kept
# (smtplib's own tests feed a "199" greeting and expect a connect error, not a parse error).
_FIRST_DIGITS = b"12345"
# The code of a well-formed one-line reply, looked up rather than checked digit by digit.
_CODES = {b"%d" % code: code for code in range(100, 600)}


class Reply(NamedTuple):
    """One complete server reply: a three-digit code and its text lines.

    ``lines`` hold the text after the code and separator, stripped of spaces and tabs, as
    smtplib returns them; ``raw`` holds each line exactly as received (for debug output).
    Immutable; a named tuple because a pipelined batch builds hundreds of them and a
    frozen dataclass costs several times more to create.

    >>> r = Reply(250, (b"mx.example.org", b"PIPELINING"), ())
    >>> r.message
    b'mx.example.org\\nPIPELINING'
    >>> r.is_positive
    True
    """

    code: int
    lines: tuple[bytes, ...]
    raw: tuple[bytes, ...] = ()

    @property
    def message(self) -> bytes:
        """The text of all lines joined with ``\\n``, as ``smtplib.SMTP.getreply`` gives it."""
        return b"\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        """2yz: the requested action was completed."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3yz: the server waits for more (DATA's 354, AUTH's 334)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4yz: a temporary failure; the same request may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5yz: a permanent failure; repeating the request will not help."""
        return 500 <= self.code < 600

    @property
    def enhanced_status(self) -> EnhancedStatus | None:
        """The RFC 3463 status code at the start of the text, if the server sent one."""
        return EnhancedStatus.parse(self.lines[0], self.code) if self.lines else None

    def as_tuple(self) -> tuple[int, bytes]:
        """The ``(code, message)`` pair that smtplib's methods return."""
        return self.code, self.message


# Reply(...) through tuple.__new__ directly: the named tuple's own __new__ is a Python-level
# call, measurable when a pipelined batch builds hundreds of replies.
_new_reply = tuple.__new__


def _split_line(line: bytes) -> tuple[int, bool, bytes]:
    """Split one reply line (line end removed) into code, is-last-line and text."""
    if (
        len(line) < 3
        or line[0] not in _FIRST_DIGITS
        or line[1] not in _DIGITS
        or line[2] not in _DIGITS
    ):
        raise RemoteProtocolError(f"malformed reply line: {line[:80]!r}")
    separator = line[3:4]
    if separator == b"-":
        last = False
    elif separator in (b" ", b""):
        last = True
    else:
        raise RemoteProtocolError(f"malformed reply line: {line[:80]!r}")
    return int(line[:3]), last, line[4:].strip(b" \t")


class ReplyParser:
    """Turns a byte stream into ``Reply`` objects.

    >>> p = ReplyParser()
    >>> p.feed(b"250-first\\r\\n250 la")
    >>> p.next_reply() is None
    True
    >>> p.feed(b"st\\r\\n")
    >>> p.next_reply().lines
    (b'first', b'last')
    """

    __slots__ = ("_buffer", "_code", "_lines", "_pos", "_raw", "_scanned", "_size")

    def __init__(self) -> None:
        # Received bytes; those before _pos were already parsed.  Lines are taken by
        # offset rather than deleted one by one: a pipelined batch of 100 replies is
        # parsed without moving the rest of the buffer each time.
        self._buffer = b""
        self._pos = 0
        self._scanned = 0  # offset from which no line feed has been seen yet
        self._code = 0
        self._lines: list[bytes] = []
        self._raw: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server."""
        if self._pos:
            self._buffer = self._buffer[self._pos :] + data
            self._scanned -= self._pos
            self._pos = 0
        else:
            self._buffer += data

    @property
    def has_buffered(self) -> bool:
        """True when any received byte has not been returned in a reply yet."""
        return len(self._buffer) > self._pos or bool(self._lines)

    def buffered_code(self) -> int | None:
        """The code of the next reply, once its first line is buffered whole; else None."""
        if self._lines:
            return self._code
        buffer, pos = self._buffer, self._pos
        if buffer.find(b"\n", pos) < 0:
            return None
        return _CODES.get(buffer[pos : pos + 3])

    def discard(self) -> None:
        """Forget every buffered byte (RFC 3207 section 4.2, after STARTTLS)."""
        self._buffer = b""
        self._pos = self._scanned = 0
        self._reset_reply()

    def _reset_reply(self) -> None:
        self._code = 0
        self._lines = []
        self._raw = []
        self._size = 0

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or None when more bytes are needed."""
        buffer = self._buffer
        pos = self._pos
        while True:
            end = buffer.find(b"\n", max(pos, self._scanned))
            if end < 0:
                # A line that is already too long is an error now, not when it ends: a
                # server must not make us buffer without bound (+1 for a pending CR).
                if len(buffer) - pos > MAX_LINE + 1:
                    raise ReplyTooLong(f"reply line longer than {MAX_LINE} bytes")
                self._pos = pos
                self._scanned = len(buffer)
                return None
            raw = buffer[pos : end + 1]
            line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            pos = end + 1
            if len(line) > MAX_LINE:
                raise ReplyTooLong(f"reply line longer than {MAX_LINE} bytes")
            if line[3:4] == b" " and line[:3].isdigit() and line[0] in _FIRST_DIGITS:
                code, last, text = int(line[:3]), True, line[4:].strip(b" \t")  # fast path
            else:
                code, last, text = _split_line(line)
            if self._lines and code != self._code:
                raise RemoteProtocolError(
                    f"reply lines with different codes: {self._code} and {code}"
                )
            if last and not self._lines:
                # The common case, a one-line reply: no lists to build.
                self._pos = pos
                return Reply(code, (text,), (raw,))
            self._code = code
            self._lines.append(text)
            self._raw.append(raw)
            self._size += len(raw)
            if len(self._lines) > MAX_REPLY_LINES:
                raise ReplyTooLong(f"reply has more than {MAX_REPLY_LINES} lines")
            if self._size > MAX_REPLY_BYTES:
                raise ReplyTooLong(f"reply longer than {MAX_REPLY_BYTES} bytes")
            if last:
                reply = Reply(code, tuple(self._lines), tuple(self._raw))
                self._reset_reply()
                self._pos = pos
                return reply

    def next_replies(self, limit: int) -> list[Reply]:
        """Up to *limit* complete replies: ``next_reply`` in a loop, with a fast path for
        a run of one-line replies (a pipelined fan-out answers 100 RCPTs at once)."""
        replies: list[Reply] = []
        buffer, pos = self._buffer, self._pos
        if len(buffer) == pos and not self._lines:
            return replies  # nothing received: the usual case before a read
        if not self._lines:
            end = buffer.rfind(b"\n", pos)
            if end >= 0 and end - pos < MAX_REPLY_BYTES:
                # Only complete lines, and no more than *limit* of them.
                for line in buffer[pos:end].split(b"\n", limit)[:limit]:
                    code = _CODES.get(line[:3])
                    if code is None or line[3:4] != b" " or len(line) > MAX_LINE:
                        break  # anything else takes the careful path below
                    text = line[4:-1] if line.endswith(b"\r") else line[4:]
                    replies.append(
                        _new_reply(Reply, (code, (text.strip(b" \t"),), (line + b"\n",)))
                    )
                    pos += len(line) + 1
                self._pos = pos
        while len(replies) < limit:
            reply = self.next_reply()
            if reply is None:
                break
            replies.append(reply)
        return replies
