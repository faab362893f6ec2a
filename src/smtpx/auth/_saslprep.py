"""SASLprep (RFC 4013): the stringprep profile SCRAM applies to user names and passwords,
so that the same password typed on two systems gives the same bytes.

Built on the standard library's ``stringprep`` tables (RFC 3454, Unicode 3.2); the NFKC
step uses the same Unicode version (``unicodedata.ucd_3_2_0``), as RFC 3454 section 4
requires: a newer Unicode would normalize some strings differently from the server.
"""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable

__all__ = ["SASLprepError", "saslprep"]


class SASLprepError(ValueError):
    """The string is not allowed by SASLprep (a control character, unassigned code
    point, or a mix of right-to-left and left-to-right text)."""


# RFC 4013 section 2.3: the tables of prohibited output.  C.1.2 is checked too although
# step 2.1 maps it away: NFKC could, in principle, bring one back.
_PROHIBITED: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("a non-ASCII space (C.1.2)", stringprep.in_table_c12),
    ("a control character (C.2)", stringprep.in_table_c21_c22),
    ("a private use code point (C.3)", stringprep.in_table_c3),
    ("a non-character code point (C.4)", stringprep.in_table_c4),
    ("a surrogate code point (C.5)", stringprep.in_table_c5),
    ("a character inappropriate for plain text (C.6)", stringprep.in_table_c6),
    ("a character inappropriate for canonical representation (C.7)", stringprep.in_table_c7),
    ("a character that changes display properties (C.8)", stringprep.in_table_c8),
    ("a tagging character (C.9)", stringprep.in_table_c9),
)


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """*text* prepared by SASLprep (RFC 4013).

    *allow_unassigned*: a "query" string (RFC 3454 section 7), such as SCRAM's user name;
    passwords are "stored" strings, where unassigned code points are refused.

    >>> saslprep("I\\u00adX"), saslprep("\\u2168"), saslprep("\\u00aa")
    ('IX', 'IX', 'a')
    >>> saslprep("\\u0007")
    Traceback (most recent call last):
    ...
    smtpx.auth._saslprep.SASLprepError: SASLprep refuses U+0007: a control character (C.2)
    """
    if text.isascii() and text.isprintable():
        return text  # nothing maps, normalizes or is prohibited in printable ASCII
    if not allow_unassigned:
        for char in text:
            if stringprep.in_table_a1(char):
                raise SASLprepError(f"SASLprep refuses {_describe(char)}: unassigned (A.1)")
    # Section 2.1: non-ASCII spaces become SPACE, "commonly mapped to nothing" (B.1) go.
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    # Section 2.2: normalization form KC.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    # Section 2.3: prohibited output.
    for char in prepared:
        for why, in_table in _PROHIBITED:
            if in_table(char):
                raise SASLprepError(f"SASLprep refuses {_describe(char)}: {why}")
    # Section 2.4, RFC 3454 section 6: right-to-left text must not mix with left-to-right
    # text, and must begin and end with a right-to-left character.
    if any(stringprep.in_table_d1(char) for char in prepared):
        if any(stringprep.in_table_d2(char) for char in prepared):
            raise SASLprepError("SASLprep refuses a mix of right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLprepError(
                "SASLprep refuses right-to-left text that does not begin and end with a"
                " right-to-left character"
            )
    return prepared
