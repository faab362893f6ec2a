"""``deliver()`` against a scripted server, on both drivers: the exact bytes the server
receives (PIPELINING, BDAT, SIZE, DSN, 8BITMIME, SMTPUTF8, streamed content) and the
result or exception the caller gets for every outcome, LMTP included."""

from __future__ import annotations

import asyncio
import contextlib
import email
import io
import ssl
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

import smtpx
from smtpx._protocol import EnhancedStatus, Reply

from .scripted import Peer, scripted_server

SENDER = "from@client.test"
A, B, C = "a@example.test", "b@example.test", "c@example.test"
MIB = 1024 * 1024
CLIENT: dict[str, Any] = {"local_hostname": "client.test", "timeout": 5}

Handler = Callable[[Peer], None]


@pytest.fixture(params=["sync", "asyncio"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def deliver(
    driver: str,
    handler: Handler,
    *args: Any,
    lmtp: bool = False,
    starttls: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> smtpx.SendResult:
    """Serve one connection with *handler*; connect with *driver* and ``deliver(*args,
    **kwargs)`` (after STARTTLS with *starttls*).  The client is closed afterwards, so the
    server sees EOF once it has read everything.  A failed assert in the handler (what
    the server received was wrong) is raised in preference to the client's exception."""
    failure: Exception | None = None
    try:
        with scripted_server(handler) as (port, _):
            try:
                result = _client_deliver(driver, port, lmtp, starttls, args, kwargs)
            except Exception as exc:
                failure = exc
    except AssertionError:
        raise
    except OSError:
        if failure is None:
            raise
        # The server hit the closed connection: the client's exception says why.
    if failure is not None:
        raise failure
    return result


def _client_deliver(
    driver: str, port: int, lmtp: bool, tls: Any, args: Any, kwargs: dict[str, Any]
) -> smtpx.SendResult:
    if driver == "sync":
        with (smtpx.LMTP if lmtp else smtpx.SMTP)("127.0.0.1", port, **CLIENT) as client:
            try:
                if tls is not None:
                    client.starttls(context=tls)
                return client.deliver(*args, **kwargs)
            finally:
                client.close()  # no QUIT: the server sees EOF

    async def main() -> smtpx.SendResult:
        client = (smtpx.AsyncLMTP if lmtp else smtpx.AsyncSMTP)("127.0.0.1", port, **CLIENT)
        await client.connect()
        try:
            if tls is not None:
                await client.starttls(context=tls)
            return await client.deliver(*args, **kwargs)
        finally:
            await client.close()

    return asyncio.run(main())


def greet(peer: Peer, *extensions: bytes, lmtp: bool = False) -> None:
    if not lmtp:
        peer.greet_and_ehlo(*extensions)
        return
    peer.send(b"220 lmtp.example LMTP\r\n")
    peer.expect(b"lhlo client.test")
    lines = [b"lmtp.example", *extensions]
    peer.send(b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1] + b"\r\n")


def segment(peer: Peer) -> bytes:
    """What the client wrote in one go after the last reply (one recv on loopback); it
    stays buffered for ``readline``."""
    assert not peer._buffer
    data = peer.sock.recv(65536)
    peer._buffer = data
    return data


def read_exact(peer: Peer, size: int) -> bytes:
    data = peer._buffer
    while len(data) < size:
        more = peer.sock.recv(MIB)
        if not more:
            break
        data += more
    chunk, peer._buffer = data[:size], data[size:]
    return chunk


def answer(peer: Peer, *replies: bytes) -> list[bytes]:
    """Read one command per reply and answer it; the commands read."""
    lines = []
    for reply in replies:
        lines.append(peer.readline())
        peer.send(reply + b"\r\n")
    return lines


def read_bdat(peer: Peer, reply_each: bool = True) -> list[tuple[bytes, bytes]]:
    """(BDAT line, chunk) up to the LAST one; chunks but the last answered 250."""
    chunks = []
    while True:
        line = peer.readline()
        verb, size, *last = line.split()
        assert verb == b"BDAT", line
        chunks.append((line, read_exact(peer, int(size))))
        if last:
            assert last == [b"LAST"], line
            return chunks
        if reply_each:
            peer.send(b"250 2.0.0 chunk received\r\n")


def closed(peer: Peer) -> None:
    """The client sends nothing more: EOF."""
    assert peer.readline() == b""


def rset_then_closed(peer: Peer) -> None:
    peer.expect(b"rset\r\n")
    peer.send(b"250 2.0.0 reset\r\n")
    closed(peer)


def mail_line(*params: str) -> bytes:
    return ("mail from:<from@client.test>" + "".join(" " + p for p in params) + "\r\n").encode()


def rcpt_line(address: str, *params: str) -> bytes:
    return (f"rcpt to:<{address}>" + "".join(" " + p for p in params) + "\r\n").encode()


def transaction(
    *offer: bytes,
    envelope: list[bytes],
    content: bytes | None = None,
    received: list[bytes] | None = None,
) -> Handler:
    """A server offering PIPELINING and *offer*: MAIL, every RCPT (*envelope*) and DATA
    must come in one write; all accepted; the DATA content (dot-stuffed, terminator
    included) must be *content*, or is kept in *received*."""

    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", *offer)
        assert segment(peer) == b"".join(envelope) + b"data\r\n"
        answer(peer, *[b"250 ok"] * len(envelope), b"354 go")
        got = peer.read_content()
        assert content is None or got == content
        if received is not None:
            received.append(got)
        peer.send(b"250 2.0.0 ok\r\n")
        closed(peer)

    return handler


MESSAGE = b"Subject: hi\n\n.dot at the start\nbare\rcr\r\nlast line"
STUFFED = b"Subject: hi\r\n\r\n..dot at the start\r\nbare\r\ncr\r\nlast line\r\n.\r\n"
NORMALIZED = b"Subject: hi\r\n\r\n.dot at the start\r\nbare\r\ncr\r\nlast line\r\n"


@pytest.mark.parametrize("pipelining", [True, False])
def test_envelope_and_data(driver: str, pipelining: bool) -> None:
    envelope = [mail_line(), rcpt_line(A), rcpt_line(B), b"data\r\n"]

    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING" if pipelining else b"8BITMIME")
        if pipelining:  # MAIL, every RCPT and DATA in one write (RFC 2920)
            assert segment(peer) == b"".join(envelope)
            answer(peer, b"250 2.1.0 ok", b"250 2.1.5 ok", b"250 2.1.5 ok", b"354 go")
        else:
            for line, reply in zip(
                envelope, [b"250 ok", b"250 ok", b"250 ok", b"354 go"], strict=False
            ):
                assert segment(peer) == line
                answer(peer, reply)
        assert peer.read_content() == STUFFED
        peer.send(b"250 2.0.0 Ok: queued as 4F3A2B1C\r\n")
        closed(peer)

    result = deliver(driver, handler, MESSAGE, SENDER, [A, B])
    assert [r.status for r in result.recipients] == ["accepted", "accepted"]
    assert (result.reply.code, result.queue_id, result.as_smtplib_dict()) == (250, "4F3A2B1C", {})


@pytest.mark.parametrize("offer", [(b"PIPELINING", b"CHUNKING"), (b"CHUNKING",)])
def test_bdat_when_chunking_offered(driver: str, offer: tuple[bytes, ...]) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, *offer, b"SIZE 1000000")
        size = f"SIZE={len(NORMALIZED) - 2}"  # the line end the client adds is not counted
        assert answer(peer, b"250 ok", b"250 ok") == [mail_line(size), rcpt_line(A)]
        # Line ends normalized, no dot-stuffing, no terminator (RFC 3030 section 2).
        assert read_bdat(peer) == [(b"BDAT %d LAST\r\n" % len(NORMALIZED), NORMALIZED)]
        peer.send(b"250 2.0.0 Ok: 58 bytes queued as 7D1E\r\n")
        closed(peer)

    result = deliver(driver, handler, MESSAGE, SENDER, [A])
    assert result.queue_id == "7D1E"
    assert [r.status for r in result.recipients] == ["accepted"]


@pytest.mark.parametrize("offer", [(b"PIPELINING", b"CHUNKING"), (b"CHUNKING",)])
def test_bdat_splits_a_large_message_into_chunks(driver: str, offer: tuple[bytes, ...]) -> None:
    body = b"".join(b".%07d dotted line of a large message\n" % i for i in range(64 * 1024))
    message = b"Subject: big\n\n" + body  # about 2.5 MiB once CRLF
    expected = message.replace(b"\n", b"\r\n")
    assert 2 * MIB < len(expected) < 3 * MIB
    chunks: list[tuple[bytes, bytes]] = []

    def handler(peer: Peer) -> None:
        greet(peer, *offer)
        answer(peer, b"250 ok", b"250 ok")
        chunks.extend(read_bdat(peer))
        peer.send(b"250 2.0.0 Ok: queued as 99AA\r\n")
        closed(peer)

    assert deliver(driver, handler, message, SENDER, A).queue_id == "99AA"
    assert len(chunks) >= 3
    assert [line.endswith(b" LAST\r\n") for line, _ in chunks] == [False] * (len(chunks) - 1) + [
        True
    ]
    assert all(int(line.split()[1]) == len(chunk) for line, chunk in chunks)
    assert all(MIB <= len(chunk) <= 2 * MIB for _, chunk in chunks[:-1])
    assert sum(len(chunk) for _, chunk in chunks) == len(expected)
    assert b"".join(chunk for _, chunk in chunks) == expected


@pytest.mark.parametrize("pipelining", [True, False])
def test_per_recipient_results(driver: str, pipelining: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING" if pipelining else b"8BITMIME")
        replies = (b"250 ok", b"250 2.1.5 ok", b"450 4.2.0 try later", b"550 5.1.1 unknown")
        assert answer(peer, *replies) == [mail_line(), rcpt_line(A), rcpt_line(B), rcpt_line(C)]
        peer.expect(b"data\r\n")
        peer.send(b"354 go\r\n")
        assert peer.read_content() == STUFFED
        peer.send(b"250 2.0.0 queued as 1A\r\n")
        closed(peer)

    result = deliver(driver, handler, MESSAGE, SENDER, [A, B, C])
    assert [(r.address, r.status, r.code) for r in result.recipients] == [
        (A, "accepted", 250),
        (B, "deferred", 450),
        (C, "refused", 550),
    ]
    assert [str(r.enhanced_status) for r in result.recipients] == ["2.1.5", "4.2.0", "5.1.1"]
    assert result.recipients[1].enhanced_status == EnhancedStatus(4, 2, 0)
    assert result.recipients[2].text == "5.1.1 unknown"
    assert [r.data_reply for r in result.recipients] == [None] * 3
    assert (result.accepted, result.deferred, result.refused) == tuple(
        (r,) for r in result.recipients
    )
    assert result.as_smtplib_dict() == {B: (450, b"4.2.0 try later"), C: (550, b"5.1.1 unknown")}


@pytest.mark.parametrize("pipelining", [True, False])
def test_no_recipient_accepted(driver: str, pipelining: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING" if pipelining else b"8BITMIME")
        answer(peer, b"250 ok", b"550 5.1.1 unknown", b"450 4.2.0 later")
        if pipelining:  # DATA was in the same write; without PIPELINING it is never sent
            peer.expect(b"data\r\n")
            peer.send(b"554 5.5.1 no valid recipients\r\n")
        rset_then_closed(peer)

    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A, B])
    assert caught.value.recipients == {A: (550, b"5.1.1 unknown"), B: (450, b"4.2.0 later")}
    result = caught.value.result  # type: ignore[attr-defined]
    assert [r.status for r in result.recipients] == ["refused", "deferred"]


TEXT = "Subject: s\n\nline one\nline two\n"
EIGHTBIT = "Subject: caf\u00e9\n\nna\u00efve body\n".encode()
DSN_RECIPIENTS = [
    smtpx.Recipient(A, notify=["failure", "delay"], orcpt="a+orig@example.test"),
    B,
    smtpx.Recipient(C, orcpt=C),
]
DSN_ENVELOPE = [
    mail_line("RET=HDRS", "ENVID=id+201+2Bx+3Dy"),
    rcpt_line(A, "NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;a+2Borig@example.test"),
    rcpt_line(B, "NOTIFY=SUCCESS,FAILURE"),  # the call's NOTIFY: B has none of its own
    rcpt_line(C, "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;c@example.test"),
]
DSN_OPTIONS = {"ret": "hdrs", "envid": "id 1+x=y", "notify": ["success", "failure"]}
EIGHTBIT_ENVELOPE = [mail_line("BODY=8BITMIME"), rcpt_line(A)]
EIGHTBIT_CONTENT = EIGHTBIT.replace(b"\n", b"\r\n") + b".\r\n"
ENVELOPES = {  # offered besides PIPELINING, message, recipients, options, envelope, content
    "chunking=False forces DATA": (
        b"CHUNKING",
        MESSAGE,
        A,
        {"chunking": False},
        [mail_line(), rcpt_line(A)],
        STUFFED,
    ),
    "SIZE declared": (
        b"SIZE 1000",
        TEXT,
        A,
        {},
        [mail_line("SIZE=34"), rcpt_line(A)],
        TEXT.replace("\n", "\r\n").encode() + b".\r\n",
    ),
    "DSN": (b"DSN", MESSAGE, DSN_RECIPIENTS, DSN_OPTIONS, DSN_ENVELOPE, None),
    "8-bit bytes": (b"8BITMIME", EIGHTBIT, A, {}, EIGHTBIT_ENVELOPE, EIGHTBIT_CONTENT),
    "non-ASCII str as UTF-8": (
        b"8BITMIME",
        EIGHTBIT.decode(),
        A,
        {},
        EIGHTBIT_ENVELOPE,
        EIGHTBIT_CONTENT,
    ),
    "ASCII: no BODY": (
        b"8BITMIME",
        b"Subject: a\n\nb\n",
        A,
        {},
        [mail_line(), rcpt_line(A)],
        b"Subject: a\r\n\r\nb\r\n.\r\n",
    ),
}


@pytest.mark.parametrize("case", ENVELOPES)
def test_envelope_parameters(driver: str, case: str) -> None:
    offer, message, recipients, options, envelope, content = ENVELOPES[case]
    handler = transaction(offer, envelope=envelope, content=content)
    deliver(driver, handler, message, SENDER, recipients, **options)


TOO_LARGE = b"Subject: big\r\n\r\n" + b"x" * 80 + b"\nmore\n"  # 104 octets with CRLFs
ALL = (b"PIPELINING", b"CHUNKING", b"8BITMIME", b"SMTPUTF8", b"DSN", b"SIZE 100")
NOT_DSN = ALL[:4]
REFUSALS = {  # (offered, message, recipient, options)
    "too large": (ALL, TOO_LARGE, A, {}),
    "too large with DATA": (ALL, TOO_LARGE, A, {"chunking": False}),
    "chunking not offered": (ALL[:1], MESSAGE, A, {"chunking": True}),
    "RET without DSN": (NOT_DSN, MESSAGE, A, {"ret": "FULL"}),
    "ENVID without DSN": (NOT_DSN, MESSAGE, A, {"envid": "x"}),
    "NOTIFY without DSN": (NOT_DSN, MESSAGE, A, {"notify": ["NEVER"]}),
    "ORCPT without DSN": (NOT_DSN, MESSAGE, smtpx.Recipient(A, orcpt=A), {}),
    "own NOTIFY without DSN": (NOT_DSN, MESSAGE, smtpx.Recipient(A, notify=["DELAY"]), {}),
    "REQUIRETLS without TLS": ((*ALL, b"REQUIRETLS"), MESSAGE, A, {"requiretls": True}),
    "8-bit without 8BITMIME": ((b"CHUNKING", b"SMTPUTF8"), "caf\u00e9\n", A, {}),
    "8-bit bytes without 8BITMIME": ((b"PIPELINING",), b"caf\xc3\xa9\n", A, {}),
    "UTF-8 address without SMTPUTF8": (ALL[:3], MESSAGE, "j\u00f6hn@example.test", {}),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refused_before_anything_is_sent(driver: str, case: str) -> None:
    offered, message, recipient, options = REFUSALS[case]

    def handler(peer: Peer) -> None:
        greet(peer, *offered)
        closed(peer)  # nothing after EHLO

    error = smtpx.SMTPMessageTooLarge if "large" in case else smtpx.SMTPNotSupportedError
    with pytest.raises(error) as caught:
        deliver(driver, handler, message, SENDER, [recipient], **options)
    if "large" in case:
        assert (caught.value.size, caught.value.limit) == (104, 100)  # type: ignore[attr-defined]


@pytest.mark.parametrize("offered", [True, False])
def test_requiretls_over_tls(
    driver: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext, offered: bool
) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"STARTTLS")
        answer(peer, b"220 go ahead")
        peer.starttls(server_context)
        peer.expect(b"ehlo client.test")
        peer.send(
            b"250-test.example\r\n250-PIPELINING\r\n250 %s\r\n"
            % (b"REQUIRETLS" if offered else b"DSN")
        )
        if offered:
            assert segment(peer) == mail_line("REQUIRETLS") + rcpt_line(A) + b"data\r\n"
            answer(peer, b"250 ok", b"250 ok", b"354 go")
            peer.read_content()
            peer.send(b"250 ok\r\n")
        closed(peer)

    with contextlib.nullcontext() if offered else pytest.raises(smtpx.SMTPNotSupportedError):
        deliver(driver, handler, MESSAGE, SENDER, A, requiretls=True, starttls=client_context)


# RFC 3030 section 3: BINARYMIME content goes with BDAT only, sent as it is (no line-end
# normalization, no dot-stuffing), declared with BODY=BINARYMIME on MAIL.
BINARY = b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\nbare LF\r.\r\n\x00"


@pytest.mark.parametrize("pipelining", [True, False])
def test_binarymime_goes_with_bdat(driver: str, pipelining: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, *[b"PIPELINING"] * pipelining, b"CHUNKING", b"BINARYMIME", b"8BITMIME")
        if pipelining:  # the envelope and the one chunk go in one write
            envelope = mail_line("BODY=BINARYMIME") + rcpt_line(A)
            assert segment(peer) == envelope + b"BDAT %d LAST\r\n" % len(BINARY) + BINARY
            answer(peer, b"250 ok", b"250 ok")
        else:
            lines = answer(peer, b"250 ok", b"250 ok")
            assert lines == [mail_line("BODY=BINARYMIME"), rcpt_line(A)]
        assert read_bdat(peer) == [(b"BDAT %d LAST\r\n" % len(BINARY), BINARY)]
        peer.send(b"250 2.0.0 Ok: queued as B1\r\n")
        closed(peer)

    result = deliver(driver, handler, BINARY, SENDER, A, binarymime=True)
    assert result.queue_id == "B1"
    assert [r.status for r in result.recipients] == ["accepted"]


BINARYMIME_REFUSALS = {  # offered, options, error, what the message says
    "chunking=False": (
        (b"PIPELINING", b"CHUNKING", b"BINARYMIME"),
        {"chunking": False},
        ValueError,
        "BINARYMIME content can only be sent with BDAT",
    ),
    "BINARYMIME not offered": (
        (b"PIPELINING", b"CHUNKING", b"8BITMIME"),
        {},
        smtpx.SMTPNotSupportedError,
        "BINARYMIME",
    ),
    "CHUNKING not offered": (
        (b"PIPELINING", b"BINARYMIME", b"8BITMIME"),
        {},
        smtpx.SMTPNotSupportedError,
        "CHUNKING",
    ),
}


@pytest.mark.parametrize("case", BINARYMIME_REFUSALS)
def test_binarymime_refused_before_anything_is_sent(driver: str, case: str) -> None:
    offered, options, error, says = BINARYMIME_REFUSALS[case]

    def handler(peer: Peer) -> None:
        greet(peer, *offered)
        closed(peer)  # no MAIL, no DATA: nothing after EHLO

    with pytest.raises(error, match=says):
        deliver(driver, handler, BINARY, SENDER, A, binarymime=True, **options)


# email.message.Message (policy compat32, what email.message_from_bytes returns) is taken
# like EmailMessage; the headers are ASCII here, only the envelope is not.
LEGACY = email.message_from_bytes(b"From: a@client.test\nSubject: hi\n\nbody\n")


@pytest.mark.parametrize("message", [b"Subject: hi\n\nbody\n", LEGACY], ids=["bytes", "legacy"])
def test_international_address_uses_smtputf8(driver: str, message: Any) -> None:
    john = "j\u00f6hn@example.test"

    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"8BITMIME", b"SMTPUTF8")
        mail, rcpt, data = segment(peer).split(b"\r\n")[:3]
        assert mail.startswith(b"mail from:<from@client.test> ")
        assert sorted(mail.split()[2:]) == [b"BODY=8BITMIME", b"SMTPUTF8"]
        assert (rcpt + b"\r\n", data) == (rcpt_line(john), b"data")  # UTF-8 on the wire
        answer(peer, b"250 ok", b"250 ok", b"354 go")
        content = peer.read_content()
        assert b"Subject: hi\r\n" in content and content.endswith(b"\r\n\r\nbody\r\n.\r\n")
        peer.send(b"250 ok\r\n")
        closed(peer)

    result = deliver(driver, handler, message, SENDER, john)
    assert [r.address for r in result.accepted] == [john]


def test_email_message_envelope_from_headers_without_bcc(driver: str) -> None:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@client.test>"
    msg["To"] = f"Ann <{A}>"
    msg["Cc"] = B
    msg["Bcc"] = f"Secret <{C}>"
    msg["Subject"] = "headers"
    msg.set_content("hello\n.dotted\n")
    content: list[bytes] = []
    envelope = [b"mail from:<alice@client.test>\r\n", rcpt_line(A), rcpt_line(C), rcpt_line(B)]
    handler = transaction(b"8BITMIME", envelope=envelope, received=content)
    result = deliver(driver, handler, msg, None, None)
    assert [r.address for r in result.accepted] == [A, C, B]
    assert b"Subject: headers\r\n" in content[0]
    assert b"\r\n..dotted\r\n" in content[0]
    assert b"bcc" not in content[0].lower() and C.encode() not in content[0]
    assert msg["Bcc"] == f"Secret <{C}>"  # the caller's message is left alone


PIECES = [b"Subject: g\r", b"\n\r\n.first", b" line\n", b".", b"second\r\n", b"no end"]
NORMALIZED_PIECES = b"Subject: g\r\n\r\n.first line\r\n.second\r\nno end\r\n"


def _pieces() -> Iterator[bytes]:
    yield from PIECES


SOURCES: dict[str, Callable[[], Any]] = {
    "BytesIO": lambda: io.BytesIO(b"".join(PIECES)),
    "generator": _pieces,
    "list": lambda: list(PIECES),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("chunking", [True, False])
def test_streamed_sources(driver: str, source: str, chunking: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"CHUNKING", b"8BITMIME", b"SIZE 100000")
        # A stream's size is not known (no SIZE), nor whether it is 8-bit (declared so).
        lines = answer(peer, b"250 ok", b"250 ok")
        assert lines == [mail_line("BODY=8BITMIME"), rcpt_line(A)]
        if chunking:
            assert read_bdat(peer) == [
                (b"BDAT %d LAST\r\n" % len(NORMALIZED_PIECES), NORMALIZED_PIECES)
            ]
        else:
            answer(peer, b"354 go")
            stuffed = NORMALIZED_PIECES.replace(b"\n.", b"\n..") + b".\r\n"
            assert peer.read_content() == stuffed
        peer.send(b"250 ok\r\n")
        closed(peer)

    deliver(driver, handler, SOURCES[source](), SENDER, A, chunking=chunking)


class SourceBroke(Exception):
    pass


@pytest.mark.parametrize("chunking", [True, False])
def test_source_failing_midway_closes_the_connection(driver: str, chunking: bool) -> None:
    def broken() -> Iterator[bytes]:
        yield b"Subject: x\r\n\r\npart one\r\n"
        yield from [b"y" * 1023 + b"\n"] * (1536 if chunking else 2)  # BDAT: a chunk goes out
        raise SourceBroke

    def handler(peer: Peer) -> None:
        greet(peer, b"CHUNKING", b"8BITMIME")  # no PIPELINING: each reply is awaited
        answer(peer, b"250 ok", b"250 ok", *([] if chunking else [b"354 go"]))
        if chunking:
            line = peer.readline()
            assert line.startswith(b"BDAT ") and b"LAST" not in line
            assert read_exact(peer, int(line.split()[1])).startswith(b"Subject: x\r\n")
            with contextlib.suppress(OSError):
                peer.send(b"250 2.0.0 chunk received\r\n")
        else:
            content = peer.read_content()  # up to EOF: the terminator never comes
            assert content.startswith(b"Subject: x\r\n\r\npart one\r\n")
            assert not content.endswith(b"\r\n.\r\n")
        closed(peer)  # no terminator, no LAST chunk: the partial message is discarded

    with pytest.raises(SourceBroke):
        deliver(driver, handler, broken(), SENDER, A, chunking=chunking)


@pytest.mark.parametrize("method", ["data", "bdat", "bdat in chunks"])
def test_connection_lost_after_content_is_outcome_unknown(driver: str, method: str) -> None:
    large = method == "bdat in chunks"
    message = b"Subject: x\r\n\r\n" + (b"z" * 1000 + b"\r\n") * (2500 if large else 1)

    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"CHUNKING")
        answer(peer, b"250 ok", b"250 ok", *([b"354 go"] if method == "data" else []))
        if method == "data":
            assert peer.read_content().endswith(b"\r\n.\r\n")
        else:
            # Every chunk read, none answered yet (a pipelining server may reply late).
            chunks = read_bdat(peer, reply_each=False)
            assert sum(len(chunk) for _, chunk in chunks) == len(message)
        # ... and the connection drops before the final reply.

    with pytest.raises(smtpx.SMTPOutcomeUnknown) as caught:
        deliver(driver, handler, message, SENDER, A, chunking=method != "data")
    assert isinstance(caught.value, smtpx.SMTPServerDisconnected)
    assert isinstance(caught.value.__cause__, smtpx.SMTPServerDisconnected)
    result = caught.value.result
    assert isinstance(result, smtpx.SendResult)
    assert [(r.address, r.status) for r in result.recipients] == [(A, "accepted")]


@pytest.mark.parametrize("answered", [0, 1, 2])
def test_connection_lost_amid_the_rcpt_replies_after_bdat_is_outcome_unknown(
    driver: str, answered: int
) -> None:
    """The content went with the envelope (BDAT LAST): the server may have taken it
    even though the client read only some of the RCPT replies.  Not "refused": a pool
    would send it again and deliver it twice."""

    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"CHUNKING")
        peer.expect(b"mail from:")
        peer.expect(b"rcpt to:")
        peer.expect(b"rcpt to:")
        read_bdat(peer)
        peer.send(b"".join([b"250 ok\r\n", b"250 ok\r\n"][:answered]))  # then drops

    with pytest.raises(smtpx.SMTPOutcomeUnknown) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A, B], chunking=True)
    result = getattr(caught.value, "result", None)
    if answered == 2:  # MAIL and A answered: B's reply is missing
        assert isinstance(result, smtpx.SendResult)
        assert [(r.address, r.status) for r in result.recipients] == [(A, "accepted")]


def test_connection_lost_before_354_is_not_outcome_unknown(driver: str) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING")
        assert segment(peer) == mail_line() + rcpt_line(A) + b"data\r\n"
        peer.send(b"250 ok\r\n250 ok\r\n")  # and closes without answering DATA

    with pytest.raises(smtpx.SMTPServerDisconnected) as caught:
        deliver(driver, handler, MESSAGE, SENDER, A)
    assert not isinstance(caught.value, smtpx.SMTPOutcomeUnknown)


@pytest.mark.parametrize("chunking", [True, False])
def test_final_reply_refused(driver: str, chunking: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"CHUNKING")
        answer(peer, b"250 ok", b"250 2.1.5 ok", b"250 2.1.5 ok")
        if chunking:
            read_bdat(peer)
        else:
            answer(peer, b"354 go")
            peer.read_content()
        peer.send(b"554 5.7.1 rejected as spam\r\n")
        rset_then_closed(peer)

    with pytest.raises(smtpx.SMTPDataError) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A, B], chunking=chunking)
    assert (caught.value.smtp_code, caught.value.smtp_error) == (554, b"5.7.1 rejected as spam")
    result = caught.value.result  # type: ignore[attr-defined]
    assert result.reply.code == 554
    assert [r.address for r in result.recipients] == [A, B]


LARGE = b"Subject: x\r\n\r\n" + (b"z" * 1000 + b"\r\n") * 2500  # 2.5 MB: three chunks


@pytest.mark.parametrize("pipelining", [True, False])
def test_bdat_chunk_refused(driver: str, pipelining: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING" if pipelining else b"8BITMIME", b"CHUNKING")
        answer(peer, b"250 ok", b"250 ok")
        if pipelining:  # every chunk was sent without waiting
            assert len(read_bdat(peer, reply_each=False)) == 3
            peer.send(b"250 2.0.0 ok\r\n552 5.3.4 too much\r\n554 5.5.0 failed\r\n")
        else:  # RFC 3030 section 4.2: after a refused chunk, no further chunk
            line = peer.readline()
            assert line.startswith(b"BDAT ") and not line.endswith(b"LAST\r\n")
            read_exact(peer, int(line.split()[1]))
            peer.send(b"552 5.3.4 too much\r\n")
        rset_then_closed(peer)

    with pytest.raises(smtpx.SMTPDataError) as caught:
        deliver(driver, handler, LARGE, SENDER, A)
    assert (caught.value.smtp_code, caught.value.smtp_error) == (552, b"5.3.4 too much")
    assert caught.value.result.recipients[0].address == A  # type: ignore[attr-defined]


def lmtp_server(rcpt_replies: list[bytes], final: bytes, chunking: bool) -> Handler:
    """Accept MAIL, answer each RCPT, check the content and send the *final* replies."""

    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", b"CHUNKING", b"ENHANCEDSTATUSCODES", lmtp=True)
        answer(peer, b"250 ok", *rcpt_replies)
        if chunking:
            assert read_bdat(peer) == [(b"BDAT %d LAST\r\n" % len(NORMALIZED), NORMALIZED)]
        else:
            answer(peer, b"354 go")
            assert peer.read_content() == STUFFED
        peer.send(final)
        closed(peer)

    return handler


@pytest.mark.parametrize("chunking", [True, False])
def test_lmtp_one_reply_per_accepted_recipient(driver: str, chunking: bool) -> None:
    rcpts = [b"250 2.1.5 ok", b"550 5.1.1 unknown", b"250 2.1.5 ok"]
    handler = lmtp_server(rcpts, b"250 2.0.0 saved\r\n452 4.2.2 full\r\n", chunking)
    result = deliver(driver, handler, MESSAGE, SENDER, [A, B, C], lmtp=True, chunking=chunking)
    a, b, c = result.recipients
    assert (a.status, a.reply.code, a.data_reply) == (
        "accepted",
        250,
        Reply(250, (b"2.0.0 saved",)),
    )
    assert (b.status, b.code, b.data_reply) == ("refused", 550, None)
    assert (c.status, c.reply.code, c.code, str(c.enhanced_status)) == (
        "deferred",
        250,
        452,
        "4.2.2",
    )
    assert result.reply.code == 452  # the last of the replies after the content
    assert result.as_smtplib_dict() == {B: (550, b"5.1.1 unknown"), C: (452, b"4.2.2 full")}


@pytest.mark.parametrize("chunking", [True, False])
def test_lmtp_all_refused_after_content(driver: str, chunking: bool) -> None:
    handler = lmtp_server([b"250 ok"] * 2, b"552 5.2.2 quota\r\n452 4.2.2 full\r\n", chunking)
    with pytest.raises(smtpx.SMTPRecipientsRefused) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A, B], lmtp=True, chunking=chunking)
    assert caught.value.recipients == {A: (552, b"5.2.2 quota"), B: (452, b"4.2.2 full")}
    result = caught.value.result  # type: ignore[attr-defined]
    statuses = [(r.status, r.reply.code, r.code) for r in result.recipients]
    assert statuses == [("refused", 250, 552), ("deferred", 250, 452)]


def test_lmtp_connection_lost_between_replies(driver: str) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, b"PIPELINING", lmtp=True)
        answer(peer, b"250 ok", b"250 ok", b"250 ok", b"354 go")
        peer.read_content()
        peer.send(b"250 2.0.0 <a> saved\r\n")  # and the connection drops before B's reply

    with pytest.raises(smtpx.SMTPOutcomeUnknown) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A, B], lmtp=True)
    result = caught.value.result
    assert isinstance(result, smtpx.SendResult)
    assert [r.address for r in result.recipients] == [A, B]


def test_message_without_from_needs_a_sender(driver: str) -> None:
    """smtplib's send_message would send ``MAIL FROM:<None>``; deliver() refuses before
    anything is sent."""
    msg = EmailMessage()
    msg["To"] = A
    msg.set_content("no From header\n")

    def server(peer: Peer) -> None:
        greet(peer, b"PIPELINING")
        assert peer.readline() == b""  # nothing after EHLO

    with pytest.raises(ValueError, match="no From header"):
        deliver(driver, server, msg)
