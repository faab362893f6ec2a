"""smtplib's address and content helpers (``quoteaddr``, ``quotedata`` and the private
``_addr_only``, ``_fix_eols``, ``_quote_periods`` that programs import) and the envelope
checks that run before anything is sent."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable

__all__ = ["addr_only", "check_envelope", "fix_eols", "quote_periods", "quoteaddr", "quotedata"]


# A bare dot-atom addr-spec (RFC 5322 section 3.4.1), the common case: email.utils.parseaddr
# gives it back unchanged, so it can skip the parser (a tenth of the time of a 100-recipient
# transaction went there, measured with bench/run.py's fanout workload).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def quoteaddr(addrstring: str) -> str:
    """Quote an address for MAIL or RCPT: ``"Name <a@b>"`` gives ``"<a@b>"``.

    >>> quoteaddr("John <john@example.org>"), quoteaddr("<>"), quoteaddr("john")
    ('<john@example.org>', '<>', '<john>')
    """
    if _PLAIN_ADDRESS.fullmatch(addrstring):
        return f"<{addrstring}>"
    display, address = email.utils.parseaddr(addrstring)
    if (display, address) == ("", ""):
        # parseaddr could not parse it: pass it through, bracketed, as smtplib does.
        return addrstring if addrstring.strip().startswith("<") else f"<{addrstring}>"
    return f"<{address}>"


def addr_only(addrstring: str) -> str:
    """The bare address for VRFY and EXPN: ``"Name <a@b>"`` gives ``"a@b"``."""
    display, address = email.utils.parseaddr(addrstring)
    return addrstring if (display, address) == ("", "") else address


def quotedata(data: str) -> str:
    """smtplib's old helper: CRLF line ends and doubled leading dots, on a ``str``.

    >>> quotedata("abc\\n.jkl\\rfoo\\r\\n..blue")
    'abc\\r\\n..jkl\\r\\nfoo\\r\\n...blue'
    """
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("."):
        text = "." + text
    return text.replace("\n.", "\n..").replace("\n", "\r\n")


def fix_eols(data: str) -> str:
    """smtplib's ``_fix_eols``: every line end (CRLF, a lone LF, a lone CR) as CRLF.

    RFC 5321 section 2.3.8: lines end in CRLF only.  The CRLF pairs are folded to LF
    first, so each CR left over is a lone one.

    >>> fix_eols("a\\nb\\rc\\r\\nd\\r\\r\\n")
    'a\\r\\nb\\r\\nc\\r\\nd\\r\\n\\r\\n'
    """
    return data.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def quote_periods(bindata: bytes) -> bytes:
    """smtplib's ``_quote_periods``: a dot that starts a line is doubled (RFC 5321 section
    4.5.2), where a line starts at the beginning and after each LF (a lone CR starts none,
    as in smtplib).

    >>> quote_periods(b".a\\r\\n.b\\r.c\\n..d")
    b'..a\\r\\n..b\\r.c\\n...d'
    """
    data = bytes(bindata)
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\n.", b"\n..")


def check_envelope(addresses: Iterable[str], options: Iterable[str], encoding: str) -> None:
    """Refuse the whole envelope before anything is sent (see docs/compatibility.md).

    smtplib sends MAIL and the first RCPTs before it notices that a later address holds a
    line break or cannot be encoded, which leaves a half-built transaction open.
    """
    for text in (*addresses, *options):
        if "\r" in text or "\n" in text or "\0" in text:
            shown = text.replace("\r", "\\r").replace("\n", "\\n").replace("\0", "\\0")
            raise ValueError(
                f"address or option contains prohibited newline or NUL characters: {shown}"
            )
        text.encode(encoding)
