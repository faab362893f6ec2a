"""DataEncoder and normalize_line_ends: RFC 5321 sections 2.3.8 and 4.5.2 on raw bytes."""

from __future__ import annotations

import itertools
import re
import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx._protocol import DataEncoder, normalize_line_ends

# Hypothesis keys its internal caches by choice sequences, where b"" and 0 (or False) hash
# alike; a lookup then compares bytes with int inside hypothesis, which python -bb turns
# into an error.  Only warnings raised from hypothesis's own modules are ignored: a bytes
# comparison in smtpx or in these tests still fails.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:hypothesis")

SETTINGS = settings(max_examples=300, deadline=None)

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def encode(*chunks: bytes) -> bytes:
    encoder = DataEncoder()
    return b"".join(encoder.feed(chunk) for chunk in chunks) + encoder.finish()


def undot(out: bytes) -> bytes:
    """Undo the encoding as a server does: drop the terminator, unstuff leading dots."""
    assert out.endswith(b"\r\n.\r\n")
    body = out[: -len(b".\r\n")]
    lines = body.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


# ------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b"a\nb"], b"a\r\nb\r\n.\r\n", id="bare-lf"),
        pytest.param([b"a\rb"], b"a\r\nb\r\n.\r\n", id="bare-cr"),
        pytest.param([b"a\r\nb"], b"a\r\nb\r\n.\r\n", id="crlf"),
        pytest.param([b"a\r", b"\nb"], b"a\r\nb\r\n.\r\n", id="crlf-split"),
        pytest.param([b"a\r", b"b"], b"a\r\nb\r\n.\r\n", id="bare-cr-at-chunk-end"),
        pytest.param([b"a", b"\r", b"", b"\n", b"b"], b"a\r\nb\r\n.\r\n", id="cr-held-over-empty"),
        pytest.param([b"a\r\r\nb"], b"a\r\n\r\nb\r\n.\r\n", id="cr-then-crlf"),
        pytest.param([b"a\n\rb"], b"a\r\n\r\nb\r\n.\r\n", id="lf-then-cr"),
        pytest.param([b".a"], b"..a\r\n.\r\n", id="dot-at-start"),
        pytest.param([b"."], b"..\r\n.\r\n", id="only-a-dot"),
        pytest.param([b"x\n.a"], b"x\r\n..a\r\n.\r\n", id="dot-after-lf"),
        pytest.param([b"x\r.a"], b"x\r\n..a\r\n.\r\n", id="dot-after-cr"),
        pytest.param([b"x\r\n.a"], b"x\r\n..a\r\n.\r\n", id="dot-after-crlf"),
        pytest.param([b"x\r", b".a"], b"x\r\n..a\r\n.\r\n", id="dot-after-split-cr"),
        pytest.param([b"x\n", b".a"], b"x\r\n..a\r\n.\r\n", id="dot-at-chunk-start"),
        pytest.param([b"x\r\n", b"..a"], b"x\r\n...a\r\n.\r\n", id="two-dots"),
        pytest.param([b"a.b\n"], b"a.b\r\n.\r\n", id="inner-dot"),
        pytest.param([b"x\n.\n.\n"], b"x\r\n..\r\n..\r\n.\r\n", id="dot-lines"),
        pytest.param(
            [b"a\r.\r\nMAIL FROM:<evil>\r\n"],
            b"a\r\n..\r\nMAIL FROM:<evil>\r\n.\r\n",
            id="smuggling-cr-dot-crlf",
        ),
        pytest.param([b"a\n.\nRSET\n"], b"a\r\n..\r\nRSET\r\n.\r\n", id="smuggling-lf-dot-lf"),
        pytest.param([b"a\r\n.\rX"], b"a\r\n..\r\nX\r\n.\r\n", id="smuggling-crlf-dot-cr"),
        pytest.param([b"a\r\n.\r\nb"], b"a\r\n..\r\nb\r\n.\r\n", id="terminator-in-content"),
        pytest.param([], b"\r\n.\r\n", id="empty"),
        pytest.param([b"", b""], b"\r\n.\r\n", id="empty-chunks"),
        pytest.param([b"abc"], b"abc\r\n.\r\n", id="no-final-newline"),
        pytest.param([b"abc\r"], b"abc\r\n.\r\n", id="final-cr"),
        pytest.param([b"abc\n"], b"abc\r\n.\r\n", id="final-lf"),
        pytest.param([b"abc\r\n"], b"abc\r\n.\r\n", id="final-crlf"),
        pytest.param([b"\r"], b"\r\n.\r\n", id="only-cr"),
        pytest.param([b"\n"], b"\r\n.\r\n", id="only-lf"),
        pytest.param([b"\r\n\r\n"], b"\r\n\r\n.\r\n", id="two-empty-lines"),
        pytest.param([b"\x00\xff\n"], b"\x00\xff\r\n.\r\n", id="binary"),
    ],
)
def test_examples(chunks: list[bytes], expected: bytes) -> None:
    assert encode(*chunks) == expected


def test_feed_returns_what_it_can_now() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"line\n.dot\r") == b"line\r\n..dot"  # the CR waits for its LF
    assert encoder.feed(b"\nlast") == b"\r\nlast"
    assert encoder.finish() == b"\r\n.\r\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),
        (b"abc", b"abc"),
        (b"a\nb", b"a\r\nb"),
        (b"a\rb", b"a\r\nb"),
        (b"a\r\nb", b"a\r\nb"),
        (b"a\r\r\n\n\r", b"a\r\n\r\n\r\n\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b".a\n.b", b".a\r\n.b"),  # no dot-stuffing here
    ],
)
def test_normalize_line_ends(data: bytes, expected: bytes) -> None:
    assert normalize_line_ends(data) == expected


def test_octets() -> None:
    encoder = DataEncoder()
    assert encoder.octets == 0
    first = encoder.feed(b".a\nb")
    assert encoder.octets == len(first) == len(b"..a\r\nb")
    encoder.feed(b"\r")
    assert encoder.octets == len(first)  # the held CR is not produced yet
    tail = encoder.finish()
    assert tail == b"\r\n.\r\n"
    assert encoder.octets == len(first) + len(b"\r\n")  # the terminator is not counted


def test_octets_of_empty_message() -> None:
    encoder = DataEncoder()
    assert encoder.finish() == b"\r\n.\r\n"
    assert encoder.octets == 2


def test_feed_after_finish() -> None:
    encoder = DataEncoder()
    encoder.feed(b"x")
    encoder.finish()
    with pytest.raises(ValueError, match="already finished"):
        encoder.feed(b"more")
    with pytest.raises(ValueError, match="already finished"):
        encoder.feed(b"")
    with pytest.raises(ValueError, match="already finished"):
        encoder.finish()


# ----------------------------------------------------------------------- properties

# Bytes rich in what matters (line ends and dots), with anything else mixed in.
_CONTENT = st.one_of(
    st.binary(max_size=60),
    st.lists(
        st.sampled_from([b"\r", b"\n", b".", b"\r\n", b"a", b"\x00", b"\xff", b" "]), max_size=40
    ).map(b"".join),
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(_CONTENT)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


@SETTINGS
@given(chunked())
def test_any_chunking_gives_the_same_output(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    assert encode(*chunks) == encode(data)
    assert encode(*(data[i : i + 1] for i in range(len(data)))) == encode(data)


@SETTINGS
@given(chunked())
def test_output_has_only_crlf_line_ends(case: tuple[bytes, list[bytes]]) -> None:
    out = encode(*case[1])
    assert _BARE.search(out) is None, out


@SETTINGS
@given(chunked())
def test_output_ends_with_the_only_dot_line(case: tuple[bytes, list[bytes]]) -> None:
    out = encode(*case[1])
    assert out.endswith(b"\r\n.\r\n")
    lines = out.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    assert b"." not in lines[:-2]


@SETTINGS
@given(chunked())
def test_unstuffing_gives_the_normalized_input(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    expected = normalize_line_ends(data)
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"  # includes the empty message: b"\r\n.\r\n"
    assert undot(encode(*chunks)) == expected


@SETTINGS
@given(chunked())
def test_octets_counts_the_content(case: tuple[bytes, list[bytes]]) -> None:
    encoder = DataEncoder()
    produced = b"".join(encoder.feed(chunk) for chunk in case[1])
    assert encoder.octets == len(produced)
    total = produced + encoder.finish()
    assert encoder.octets == len(total) - len(b".\r\n")


@SETTINGS
@given(chunked())
def test_matches_smtplib_for_text(case: tuple[bytes, list[bytes]]) -> None:
    """smtplib.SMTP.data on a str: quotedata, then CRLF if missing, then ".CRLF"."""
    data, chunks = case
    quoted = smtplib.quotedata(data.decode("latin-1")).encode("latin-1")
    if quoted[-2:] != b"\r\n":
        quoted += b"\r\n"
    assert encode(*chunks) == quoted + b".\r\n"


@SETTINGS
@given(_CONTENT)
def test_normalize_line_ends_properties(data: bytes) -> None:
    out = normalize_line_ends(data)
    assert _BARE.search(out) is None
    assert normalize_line_ends(out) == out
    assert out.replace(b"\r\n", b"") == data.replace(b"\r", b"").replace(b"\n", b"")
