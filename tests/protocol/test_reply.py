"""ReplyParser and Reply on raw bytes: RFC 5321 section 4.2 replies, fed whole and in pieces."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx._protocol import (
    MAX_LINE,
    MAX_REPLY_BYTES,
    MAX_REPLY_LINES,
    RemoteProtocolError,
    Reply,
    ReplyParser,
    ReplyTooLong,
)

# Hypothesis keys its internal caches by choice sequences, where b"" and 0 (or False) hash
# alike; a lookup then compares bytes with int inside hypothesis, which python -bb turns
# into an error.  Only warnings raised from hypothesis's own modules are ignored: a bytes
# comparison in smtpx or in these tests still fails.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:hypothesis")

SETTINGS = settings(max_examples=250, deadline=None)


def drain(parser: ReplyParser) -> list[Reply]:
    replies = []
    while (reply := parser.next_reply()) is not None:
        replies.append(reply)
    return replies


def parse(*chunks: bytes) -> list[Reply]:
    """Feed *chunks* one after another, collecting every reply as soon as it is complete."""
    parser = ReplyParser()
    replies = []
    for chunk in chunks:
        parser.feed(chunk)
        replies.extend(drain(parser))
    return replies


def one(data: bytes) -> Reply:
    replies = parse(data)
    assert len(replies) == 1, replies
    return replies[0]


# ------------------------------------------------------------------ well-formed replies


def test_single_line() -> None:
    assert one(b"250 OK\r\n") == Reply(250, (b"OK",), (b"250 OK\r\n",))


def test_multi_line() -> None:
    data = b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
    reply = one(data)
    assert reply.code == 250
    assert reply.lines == (b"mx.example.org", b"PIPELINING", b"SIZE 1000")
    assert b"".join(reply.raw) == data


def test_lf_only_line_ends() -> None:
    reply = one(b"250-first\n250 last\n")
    assert reply.lines == (b"first", b"last")
    assert reply.raw == (b"250-first\n", b"250 last\n")


def test_mixed_line_ends_in_one_reply() -> None:
    assert one(b"250-a\n250-b\r\n250 c\n").lines == (b"a", b"b", b"c")


def test_code_alone() -> None:
    assert one(b"250\r\n") == Reply(250, (b"",), (b"250\r\n",))


def test_code_and_space_alone() -> None:
    assert one(b"354 \r\n").lines == (b"",)


def test_continuation_with_empty_text() -> None:
    assert one(b"250-\r\n250-\r\n250 end\r\n").lines == (b"", b"", b"end")


def test_text_is_stripped_of_spaces_and_tabs_only() -> None:
    reply = one(b"250-  \t padded \t \r\n250 \tx y\r\n")
    assert reply.lines == (b"padded", b"x y")
    assert reply.raw[0] == b"250-  \t padded \t \r\n"


def test_text_keeps_other_bytes() -> None:
    assert one(b"550 5.1.1 <\xff\x00@x> no\r\n").lines == (b"5.1.1 <\xff\x00@x> no",)


def test_1yz_is_parsed() -> None:
    # Not used by SMTP, but smtplib's tests expect a 199 greeting to be a connect error
    # raised by the client, not a parse error.
    assert one(b"199 hmm\r\n").code == 199


def test_several_replies_in_one_chunk() -> None:
    replies = parse(b"250 a\r\n251 b\r\n354 go\r\n")
    assert [r.code for r in replies] == [250, 251, 354]


def test_incomplete_reply_waits() -> None:
    parser = ReplyParser()
    parser.feed(b"250-first\r\n250 la")
    assert parser.next_reply() is None
    assert parser.next_reply() is None
    parser.feed(b"st\r")
    assert parser.next_reply() is None
    parser.feed(b"\n")
    assert parser.next_reply() == Reply(
        250, (b"first", b"last"), (b"250-first\r\n", b"250 last\r\n")
    )
    assert parser.next_reply() is None


def test_byte_by_byte() -> None:
    data = b"220-mx\r\n220 ready\r\n250 ok\n"
    assert parse(*(data[i : i + 1] for i in range(len(data)))) == parse(data)


# --------------------------------------------------------------------- malformed lines


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"abc hello\r\n", id="letters"),
        pytest.param(b"2x0 hello\r\n", id="letter-in-code"),
        pytest.param(b"25x hello\r\n", id="letter-last-digit"),
        pytest.param(b"-250 hello\r\n", id="sign"),
        pytest.param(b" 250 hello\r\n", id="leading-space"),
        pytest.param(b"050 hello\r\n", id="first-digit-0"),
        pytest.param(b"650 hello\r\n", id="first-digit-6"),
        pytest.param(b"750 hello\r\n", id="first-digit-7"),
        pytest.param(b"850 hello\r\n", id="first-digit-8"),
        pytest.param(b"950 hello\r\n", id="first-digit-9"),
        pytest.param(b"250x\r\n", id="bad-separator"),
        pytest.param(b"250xhello\r\n", id="bad-separator-text"),
        pytest.param(b"2500 hello\r\n", id="four-digits"),
        pytest.param(b"250\thello\r\n", id="tab-separator"),
        pytest.param(b"\r\n", id="empty-crlf"),
        pytest.param(b"\n", id="empty-lf"),
        pytest.param(b"25\r\n", id="short"),
        pytest.param(b"2\n", id="one-digit"),
        pytest.param(b"250-ok\r\n\r\n", id="empty-line-inside-reply"),
        pytest.param(b"250-ok\r\nhello\r\n", id="garbage-continuation"),
    ],
)
def test_malformed_line(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed reply line"):
        parse(data)


@pytest.mark.parametrize(
    "data", [b"250-a\r\n251 b\r\n", b"250-a\r\n550 b\r\n", b"250-a\n250-b\n354 c\n"]
)
def test_mixed_codes_in_one_reply(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="different codes"):
        parse(data)


def test_mixed_codes_across_chunks() -> None:
    with pytest.raises(RemoteProtocolError):
        parse(b"250-a\r\n", b"450 b\r\n")


# ---------------------------------------------------------------------------- limits


def test_line_at_the_limit_is_accepted() -> None:
    text = b"x" * (MAX_LINE - 4)
    assert one(b"250 " + text + b"\r\n").lines == (text,)
    assert one(b"250 " + text + b"\n").lines == (text,)


def test_line_at_the_limit_split_before_its_crlf() -> None:
    parser = ReplyParser()
    parser.feed(b"250 " + b"x" * (MAX_LINE - 4) + b"\r")
    assert parser.next_reply() is None  # the CR may be the start of the line end
    parser.feed(b"\n")
    assert parser.next_reply() is not None


@pytest.mark.parametrize("end", [b"\r\n", b"\n"])
def test_line_over_the_limit_with_its_line_end(end: bytes) -> None:
    with pytest.raises(ReplyTooLong):
        parse(b"250 " + b"x" * (MAX_LINE - 3) + end)


def test_line_over_the_limit_before_its_line_end() -> None:
    parser = ReplyParser()
    parser.feed(b"250 " + b"x" * MAX_LINE)
    with pytest.raises(ReplyTooLong):
        parser.next_reply()


def test_long_line_is_refused_without_waiting_for_more() -> None:
    """Fed a byte at a time, the parser refuses the line as soon as it cannot end within
    the limit (MAX_LINE plus a pending CR), so a server cannot make it buffer without end."""
    parser = ReplyParser()
    parser.feed(b"250 ")
    buffered = 4
    with pytest.raises(ReplyTooLong):
        while buffered <= MAX_LINE + 2:
            parser.next_reply()  # None while the line may still end within the limit
            parser.feed(b"x")
            buffered += 1


def test_long_line_after_complete_lines() -> None:
    parser = ReplyParser()
    parser.feed(b"250-ok\r\n" * 10 + b"250-" + b"y" * MAX_LINE)
    with pytest.raises(ReplyTooLong):
        parser.next_reply()


def test_most_lines_accepted() -> None:
    data = b"250-x\r\n" * (MAX_REPLY_LINES - 1) + b"250 x\r\n"
    assert len(one(data).lines) == MAX_REPLY_LINES


def test_too_many_lines() -> None:
    with pytest.raises(ReplyTooLong, match="lines"):
        parse(b"250-x\r\n" * MAX_REPLY_LINES + b"250 x\r\n")


def test_too_many_lines_refused_before_the_reply_ends() -> None:
    with pytest.raises(ReplyTooLong):
        parse(b"250-x\r\n" * (MAX_REPLY_LINES + 1))


def _big_reply(extra: int) -> bytes:
    # 128 lines of 8192 bytes (CRLF included) are exactly MAX_REPLY_BYTES.
    line_text = b"x" * (8192 - 6)
    count = MAX_REPLY_BYTES // 8192
    assert count * 8192 == MAX_REPLY_BYTES
    lines = [b"250-" + line_text + b"\r\n"] * (count - 1)
    lines.append(b"250 " + line_text + b"x" * extra + b"\r\n")
    return b"".join(lines)


def test_reply_of_exactly_max_bytes_is_accepted() -> None:
    assert sum(len(raw) for raw in one(_big_reply(0)).raw) == MAX_REPLY_BYTES


def test_reply_over_max_bytes() -> None:
    with pytest.raises(ReplyTooLong, match="bytes"):
        parse(_big_reply(1))


def test_too_many_bytes_refused_before_the_reply_ends() -> None:
    line = b"250-" + b"x" * (MAX_LINE - 4) + b"\r\n"
    count = MAX_REPLY_BYTES // len(line) + 1
    with pytest.raises(ReplyTooLong):
        parse(line * count)


def test_reply_too_long_is_a_remote_protocol_error() -> None:
    assert issubclass(ReplyTooLong, RemoteProtocolError)


# ---------------------------------------------------------------- buffer management


def test_has_buffered() -> None:
    parser = ReplyParser()
    assert not parser.has_buffered
    parser.feed(b"25")
    assert parser.has_buffered
    parser.feed(b"0-a\r\n")
    assert parser.next_reply() is None
    assert parser.has_buffered  # a line of an unfinished reply is held, not the buffer
    parser.feed(b"250 b\r\n")
    assert parser.next_reply() is not None
    assert not parser.has_buffered
    parser.feed(b"220 next\r\n")
    assert parser.has_buffered


def test_discard_forgets_bytes_and_partial_reply() -> None:
    parser = ReplyParser()
    parser.feed(b"250-old\r\n250 ha")
    assert parser.next_reply() is None
    parser.discard()
    assert not parser.has_buffered
    assert parser.next_reply() is None
    parser.feed(b"220 new\r\n")
    assert parser.next_reply() == Reply(220, (b"new",), (b"220 new\r\n",))


def test_discard_forgets_complete_replies() -> None:
    parser = ReplyParser()
    parser.feed(b"220 ready\r\n250 injected\r\n")
    parser.discard()
    assert parser.next_reply() is None
    assert not parser.has_buffered


def test_discard_after_a_partial_long_line() -> None:
    parser = ReplyParser()
    parser.feed(b"250 " + b"x" * 100)
    assert parser.next_reply() is None
    parser.discard()
    parser.feed(b"250 ok\r\n")
    assert parser.next_reply() == Reply(250, (b"ok",), (b"250 ok\r\n",))


# -------------------------------------------------------------------------- Reply


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (199, (False, False, False, False)),
        (200, (True, False, False, False)),
        (250, (True, False, False, False)),
        (299, (True, False, False, False)),
        (334, (False, True, False, False)),
        (354, (False, True, False, False)),
        (421, (False, False, True, False)),
        (499, (False, False, True, False)),
        (500, (False, False, False, True)),
        (554, (False, False, False, True)),
        (599, (False, False, False, True)),
    ],
)
def test_severity(code: int, expected: tuple[bool, bool, bool, bool]) -> None:
    reply = Reply(code, (b"x",))
    assert (
        reply.is_positive,
        reply.is_intermediate,
        reply.is_transient,
        reply.is_permanent,
    ) == expected


def test_message_and_as_tuple() -> None:
    reply = one(b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
    assert reply.message == b"mx.example.org\nPIPELINING\n8BITMIME"
    assert reply.as_tuple() == (250, b"mx.example.org\nPIPELINING\n8BITMIME")
    assert Reply(250, (b"",)).as_tuple() == (250, b"")


def test_reply_is_frozen() -> None:
    reply = Reply(250, (b"ok",))
    with pytest.raises(AttributeError):
        reply.code = 550  # type: ignore[misc]


# ------------------------------------------------------------------------ properties

_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
_END = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def replies(draw: st.DrawFn) -> tuple[bytes, Reply]:
    """One valid reply as bytes, and the Reply it must parse to."""
    code = draw(st.integers(200, 599))
    texts = draw(st.lists(_TEXT, min_size=1, max_size=5))
    raw = []
    for index, text in enumerate(texts):
        if index < len(texts) - 1:
            separator = b"-"
        else:
            separator = draw(st.sampled_from([b" ", b""])) if not text else b" "
        raw.append(b"%d" % code + separator + text.encode("ascii") + draw(_END))
    lines = tuple(text.strip(" \t").encode("ascii") for text in texts)
    return b"".join(raw), Reply(code, lines, tuple(raw))


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=max(1, len(data) // 2))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@SETTINGS
@given(st.lists(replies(), min_size=1, max_size=6), st.data())
def test_whole_bytewise_and_split_agree(
    generated: list[tuple[bytes, Reply]], data: st.DataObject
) -> None:
    stream = b"".join(raw for raw, _ in generated)
    expected = [reply for _, reply in generated]
    assert parse(stream) == expected
    assert parse(*(stream[i : i + 1] for i in range(len(stream)))) == expected
    assert parse(*data.draw(split(stream))) == expected


@st.composite
def noisy(draw: st.DrawFn) -> bytes:
    """Bytes that are often almost replies: valid pieces and junk run together."""
    pieces = draw(
        st.lists(
            st.one_of(
                replies().map(lambda pair: pair[0]),
                st.binary(max_size=12),
                st.sampled_from([b"\r", b"\n", b"\r\n", b"250", b"250-", b"250 ", b"999 ", b"-"]),
            ),
            max_size=8,
        )
    )
    return b"".join(pieces)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), noisy()), st.data())
def test_arbitrary_bytes_give_replies_none_or_a_protocol_error(
    stream: bytes, data: st.DataObject
) -> None:
    parser = ReplyParser()
    budget = len(stream) + 2  # each reply consumes at least one byte: no endless loop
    try:
        for chunk in data.draw(split(stream)):
            parser.feed(chunk)
            while True:
                reply = parser.next_reply()
                if reply is None:
                    break
                assert isinstance(reply, Reply)
                assert 100 <= reply.code <= 599
                assert len(reply.lines) == len(reply.raw) >= 1
                budget -= 1
                assert budget > 0
    except RemoteProtocolError:
        pass


def _batched(chunks: list[bytes], limit: int) -> list[Reply]:
    parser = ReplyParser()
    out: list[Reply] = []
    for chunk in chunks:
        parser.feed(chunk)
        while batch := parser.next_replies(limit):
            assert len(batch) <= limit
            out.extend(batch)
    return out


@SETTINGS
@given(st.lists(replies(), min_size=1, max_size=12), st.integers(1, 8), st.data())
def test_batched_replies_agree_with_one_at_a_time(
    generated: list[tuple[bytes, Reply]], limit: int, data: st.DataObject
) -> None:
    """The fast path for runs of one-line replies gives what next_reply gives."""
    stream = b"".join(raw for raw, _ in generated)
    expected = [reply for _, reply in generated]
    assert _batched([stream], limit) == expected
    assert _batched(data.draw(split(stream)), limit) == expected


@SETTINGS
@given(st.one_of(st.binary(max_size=200), noisy()), st.integers(1, 8))
def test_batched_replies_on_arbitrary_bytes(stream: bytes, limit: int) -> None:
    """Same replies, or the same error, as the careful path."""
    try:
        expected: list[Reply] | type[Exception] = parse(stream)
    except RemoteProtocolError as exc:
        expected = type(exc)
    try:
        got: list[Reply] | type[Exception] = _batched([stream], limit)
    except RemoteProtocolError as exc:
        got = type(exc)
    assert got == expected
