"""``smtpx.compose`` and ``smtpx.send(url=..., to=..., text=...)``."""

from __future__ import annotations

import email
import email.policy
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx
from smtpx.testing import SinkServer

from .conftest import PASSWORD, USER

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def reparsed(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def test_text_html_inline_image_and_attachments(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    msg = smtpx.compose(
        sender="Alice <alice@example.org>",
        to=["bob@example.org", "Carol <carol@example.org>"],
        cc="dave@example.org",
        bcc=["eve@example.org"],
        reply_to="list@example.org",
        subject="Quarterly report",
        text="See the report.",
        html='<p>See the report.</p><img src="cid:logo">',
        inline={"logo": ("logo.png", PNG)},
        attachments=[
            pdf,
            ("data.csv", "a,b\n1,2\n"),
            io.BytesIO(b"\x00\x01"),
            ("blob", b"xyz", "application/x-custom"),
        ],
        headers={"X-Priority": "1"},
    )
    back = reparsed(msg)
    assert back["From"] == "Alice <alice@example.org>"
    assert back["To"] == "bob@example.org, Carol <carol@example.org>"
    assert back["Cc"] == "dave@example.org" and back["Bcc"] == "eve@example.org"
    assert back["Reply-To"] == "list@example.org" and back["X-Priority"] == "1"
    assert back["Date"] and back["Message-ID"].endswith("@example.org>")
    assert back.get_content_type() == "multipart/mixed"
    assert back.get_body(("plain",)).get_content().strip() == "See the report."
    html = back.get_body(("html",))
    assert "cid:logo" in html.get_content()
    related = back.get_body(("related",))
    assert related is not None and related.get_content_type() == "multipart/related"
    image = next(p for p in related.iter_parts() if p.get_content_maintype() == "image")
    assert image["Content-ID"] == "<logo>" and image.get_content() == PNG
    assert image.get_content_type() == "image/png"
    found = {
        p.get_filename(): (p.get_content_type(), p.get_content()) for p in back.iter_attachments()
    }
    assert found["report.pdf"] == ("application/pdf", b"%PDF-1.4")
    assert found["data.csv"][0] == "text/csv" and found["data.csv"][1].strip() == "a,b\n1,2"
    assert found["attachment.bin"] == ("application/octet-stream", b"\x00\x01")
    assert found["blob"] == ("application/x-custom", b"xyz")


def test_html_only_and_text_only() -> None:
    assert smtpx.compose(to="b@example.org", html="<b>hi</b>").get_content_type() == "text/html"
    plain = smtpx.compose(to="b@example.org", text="hi")
    assert plain.get_content_type() == "text/plain"
    assert plain["Message-ID"].endswith("@smtpx.invalid>")  # no sender: no DNS lookup


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"subject": "a\r\nBcc: x@example.org"}, "CR, LF, NUL"),
        ({"to": "b@example.org\nBcc: x@example.org"}, "CR, LF, NUL"),
        ({"headers": {"X-A": "v\nBcc: x"}}, "CR, LF, NUL"),
        ({"headers": {"Bad Name": "v"}}, "not a header field name"),
        ({"headers": {"Content-Type": "text/html"}}, "set by its own argument"),
        ({"inline": {"logo": ("l.png", PNG)}}, "give html= too"),
        ({"html": "x", "inline": {"<logo>": ("l.png", PNG)}}, "bare id"),
        ({"attachments": [("x", b"y", "nonsense")]}, "maintype/subtype"),
        ({"text": "a\0b"}, "NUL"),
        ({"subject": "next\x85line"}, "line break"),
        ({"subject": "para\u2029graph"}, "line break"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        smtpx.compose(**{"to": "b@example.org", **kwargs})  # type: ignore[arg-type]


def test_attachment_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="give a path, bytes or a file object"):
        smtpx.compose(to="b@example.org", attachments=[("x", 42)])


_BREAKS = "\0\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=_BREAKS))


@settings(max_examples=60, deadline=None)
@given(
    subject=_text,
    body=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\0")),
    blob=st.binary(max_size=300),
    name=st.from_regex(r"[A-Za-z0-9_-]{1,20}\.(txt|bin|png)", fullmatch=True),
)
def test_whatever_is_composed_parses_back(subject: str, body: str, blob: bytes, name: str) -> None:
    msg = smtpx.compose(
        sender="a@example.org",
        to="b@example.org",
        subject=subject,
        text=body,
        attachments=[(name, blob)],
    )
    back = reparsed(msg)
    assert back["Subject"] == subject
    text = back.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n").rstrip("\n") == body.replace("\r\n", "\n").rstrip("\n")
    (part,) = back.iter_attachments()
    assert part.get_filename() == name
    content = part.get_content()
    assert (content if isinstance(content, bytes) else content.encode()) == blob or (
        part.get_content_maintype() == "text"
    )


def test_send_composes_from_keywords(tmp_path: Path) -> None:
    with SinkServer(starttls=True, auth={USER: PASSWORD}) as server:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(server.ca_pem)
        result = smtpx.send(
            url=f"smtp+starttls://{server.host}:{server.port}",
            username=USER,
            password=PASSWORD,
            cafile=str(ca),
            timeout=10,
            sender="Alice <alice@example.org>",
            to="bob@example.org",
            bcc="hidden@example.org",
            subject="Keywords",
            text="composed by send()",
            attachments=[("a.txt", b"A")],
        )
        assert isinstance(result, smtpx.SendResult)
        assert [r.address for r in result.accepted] == ["bob@example.org", "hidden@example.org"]
        (received,) = server.wait_for_messages(1, timeout=10)
    assert received.mail_from == "alice@example.org"
    back = email.message_from_bytes(received.content, policy=email.policy.default)
    assert back["Subject"] == "Keywords" and back["Bcc"] is None


def test_send_refuses_a_message_and_keywords_together() -> None:
    with pytest.raises(TypeError, match="give one or the other"):
        smtpx.send(b"x", url="smtp://localhost", to="b@example.org")
    with pytest.raises(TypeError, match="needs a message, or recipients"):
        smtpx.send(url="smtp://localhost", subject="no one to send to")


async def _asend(url: str, ca: str) -> object:
    return await smtpx.asend(
        url=url,
        username=USER,
        password=PASSWORD,
        cafile=ca,
        timeout=10,
        sender="a@example.org",
        to="b@example.org",
        text="async",
    )


def test_asend_composes_too(tmp_path: Path) -> None:
    import asyncio

    with SinkServer(starttls=True, auth={USER: PASSWORD}) as server:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(server.ca_pem)
        result = asyncio.run(_asend(f"smtp+starttls://{server.host}:{server.port}", str(ca)))
        assert isinstance(result, smtpx.SendResult)
        (received,) = server.wait_for_messages(1, timeout=10)
    assert b"async" in received.content
