"""The DATA encoder: message content to the bytes of RFC 5321 section 4.5.2 and 2.3.8.

Every line end is made CRLF (a bare CR or bare LF becomes CRLF, so no ``\\r.\\r\\n`` or
``\\n.\\n`` can smuggle a second message past a server that reads line ends differently:
the 2023 "SMTP smuggling" attacks), every line that starts with '.' gets one more '.',
and the content ends with exactly one ``CRLF.CRLF``.  The encoder streams: its state
(a CR held at the end of a chunk, whether the next byte starts a line) survives chunk
boundaries, so any split of the input gives the same output.

It works with ``bytes.replace`` passes rather than a regular expression per line: the same
output, about three times faster (measured with ``bench/run.py``'s large workload).
"""

from __future__ import annotations

__all__ = ["DataEncoder", "normalize_line_ends", "normalized_size"]

_CRLF = b"\r\n"


def normalize_line_ends(data: bytes) -> bytes:
    """Turn CRLF, bare CR and bare LF into CRLF (what smtplib does to ``str`` bodies)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.replace(b"\n", _CRLF)


def normalized_size(data: str | bytes) -> int:
    """The length *data* will have once its line ends are CRLF, without copying it.

    This is what SIZE declares (RFC 1870 section 4: octets including CRLFs, not the
    terminator or the stuffed dots); like smtplib, a final line end that the encoder adds
    is not counted.
    """
    if isinstance(data, str):
        lf = data.count("\n")
        if "\r" not in data:
            return len(data) + lf  # LF-only text, the common case: one pass
        crlf, cr = data.count("\r\n"), data.count("\r")
    else:
        lf = data.count(b"\n")
        if b"\r" not in data:
            return len(data) + lf
        crlf, cr = data.count(b"\r\n"), data.count(b"\r")
    return len(data) + (lf - crlf) + (cr - crlf)


class DataEncoder:
    """Streaming CRLF normalization and dot-stuffing.

    >>> enc = DataEncoder()
    >>> enc.feed(b"line\\n.dot\\r") + enc.feed(b"\\nlast") + enc.finish()
    b'line\\r\\n..dot\\r\\nlast\\r\\n.\\r\\n'
    """

    __slots__ = ("_at_line_start", "_cr_pending", "_dot_stuffing", "_finished", "_octets")

    def __init__(self, *, dot_stuffing: bool = True) -> None:
        # BDAT (RFC 3030 section 2) frames content by length: line ends are still made
        # CRLF, but there is no dot-stuffing and no terminator line.
        self._dot_stuffing = dot_stuffing
        self._at_line_start = True
        self._cr_pending = False  # the last chunk ended in CR: is it a CRLF or a bare CR?
        self._finished = False
        self._octets = 0  # content bytes produced so far, terminator excluded

    @property
    def octets(self) -> int:
        """Bytes of encoded content produced so far (the terminator not counted)."""
        return self._octets

    def feed(self, chunk: bytes) -> bytes:
        """Encode the next piece of content."""
        if self._finished:
            raise ValueError("the message content was already finished")
        if self._cr_pending:
            chunk = b"\r" + chunk
            self._cr_pending = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr_pending = True
        if not chunk:
            return b""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._dot_stuffing:
            if self._at_line_start and chunk[0] == 0x2E:  # '.'
                chunk = b"." + chunk
            chunk = chunk.replace(b"\n.", b"\n..")
        self._at_line_start = chunk[-1] == 0x0A
        out = chunk.replace(b"\n", _CRLF)
        self._octets += len(out)
        return out

    def finish(self) -> bytes:
        """End the content: complete the last line and add the ``.`` terminator line
        (only the line completion without dot-stuffing)."""
        if self._finished:
            raise ValueError("the message content was already finished")
        self._finished = True
        tail = b""
        if self._cr_pending:
            self._cr_pending = False
            tail = _CRLF
        elif not self._at_line_start or self._octets == 0:
            # smtplib sends "\r\n.\r\n" for an empty message; so do we.
            tail = _CRLF
        self._octets += len(tail)
        return tail + b".\r\n" if self._dot_stuffing else tail
