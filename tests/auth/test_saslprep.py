"""SASLprep (RFC 4013): the RFC's examples and properties over arbitrary text."""

from __future__ import annotations

import stringprep
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtpx.auth import SASLprepError, saslprep


# RFC 4013 section 3.
@pytest.mark.parametrize(
    ("given_text", "expected"),
    [
        ("I\u00adX", "IX"),  # 1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # 2: no transformation
        ("USER", "USER"),  # 3: case preserved
        ("\u00aa", "a"),  # 4: output is NFKC
        ("\u2168", "IX"),  # 5: output is NFKC, matches #1
    ],
)
def test_rfc4013_examples(given_text: str, expected: str) -> None:
    assert saslprep(given_text) == expected


@pytest.mark.parametrize(
    ("given_text", "reason"),
    [
        ("\u0007", "control"),  # 6: prohibited character
        ("\u0627\u0031", "right-to-left"),  # 7: bidirectional check
    ],
)
def test_rfc4013_error_examples(given_text: str, reason: str) -> None:
    with pytest.raises(SASLprepError, match=reason):
        saslprep(given_text)


def test_non_ascii_space_becomes_space() -> None:
    assert saslprep("a\u00a0b\u3000c") == "a b c"


def test_right_to_left_text_alone_is_allowed() -> None:
    assert saslprep("\u0627\u0628") == "\u0627\u0628"


def test_unassigned_code_points() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2, the version of RFC 3454
    assert stringprep.in_table_a1(unassigned)
    with pytest.raises(SASLprepError, match="unassigned"):
        saslprep("a" + unassigned)
    assert saslprep("a" + unassigned, allow_unassigned=True) == "a" + unassigned


@pytest.mark.parametrize("char", ["\ue000", "\ufdd0", "\u200e", "\U000e0001", "\ufff9", "\x7f"])
def test_prohibited_characters(char: str) -> None:
    with pytest.raises(SASLprepError, match=f"U\\+{ord(char):04X}"):
        saslprep("a" + char + "a")


def test_a_saslprep_error_is_a_value_error() -> None:
    assert issubclass(SASLprepError, ValueError)


_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


@given(st.text(max_size=40))
@example("\u0627\u0031")
@example("I\u00adX")
def test_output_is_normalized_and_clean_or_the_error_is_saslprep_error(text: str) -> None:
    try:
        prepared = saslprep(text, allow_unassigned=True)
    except SASLprepError:
        return
    assert unicodedata.ucd_3_2_0.normalize("NFKC", prepared) == prepared
    assert not any(check(char) for char in prepared for check in _PROHIBITED)
    assert not any(stringprep.in_table_b1(char) for char in prepared)


@given(st.text(max_size=40))
def test_saslprep_is_idempotent(text: str) -> None:
    try:
        prepared = saslprep(text, allow_unassigned=True)
    except SASLprepError:
        return
    assert saslprep(prepared, allow_unassigned=True) == prepared


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_printable_ascii_is_unchanged(text: str) -> None:
    assert saslprep(text) == text


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40))
def test_the_fast_path_agrees_with_the_full_algorithm(text: str) -> None:
    """The printable-ASCII shortcut gives what the full steps would: each one leaves
    such text alone."""
    if not (text.isascii() and text.isprintable()):
        return
    assert not any(stringprep.in_table_b1(c) or stringprep.in_table_c12(c) for c in text)
    assert unicodedata.ucd_3_2_0.normalize("NFKC", text) == text
