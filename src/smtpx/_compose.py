"""``smtpx.compose(...)``: an ``email.message.EmailMessage`` from keyword arguments.

The structure built (RFC 2046 section 5.1: ``multipart/mixed`` holds the attachments,
``multipart/alternative`` the plain and HTML versions, ``multipart/related`` the HTML and
the images it shows, RFC 2387)::

    multipart/mixed                 (only with attachments)
      multipart/alternative         (only with both text and html)
        text/plain
        multipart/related           (only with inline images)
          text/html
          image/png  Content-ID: <logo>
      application/pdf  (attachment)

Headers are checked before anything is built: a CR, LF or NUL in any of them raises
``ValueError`` (a caller's string must never add a header of its own, RFC 5322 section
2.2).  ``Date`` and ``Message-ID`` are filled in unless given.  Nothing here does I/O but
reading the attachments named by path.
"""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
import os
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from typing import IO, Any, TypeAlias

__all__ = [
    "COMPOSE_KEYWORDS",
    "AttachmentSource",
    "compose",
    "message_from_options",
]

#: An attachment: a path, bytes, a binary file object, or a ``(filename, content)`` or
#: ``(filename, content, "type/subtype")`` tuple whose content is bytes, text or a file.
AttachmentSource: TypeAlias = (
    str | os.PathLike[str] | bytes | IO[bytes] | tuple[str, Any] | tuple[str, Any, str]
)

#: The keywords of ``compose`` that ``smtpx.send`` also takes when it builds the message.
COMPOSE_KEYWORDS = frozenset(
    {
        "to",
        "cc",
        "bcc",
        "reply_to",
        "subject",
        "text",
        "html",
        "attachments",
        "inline",
        "headers",
        "date",
        "message_id",
    }
)

# Headers compose() writes itself; extra *headers* may not set these (they would make a
# second copy, or contradict the MIME structure).
_OWN_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "subject", "mime-version", "content-type"}
    | {"content-transfer-encoding", "content-disposition"}
)
_UNNAMED = "attachment.bin"
# NUL and every character str.splitlines() breaks at: the email package refuses a header
# holding any of them, with a message about CR and LF only.
_LINE_BREAKS = frozenset("\0\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _check_text(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if any(c in _LINE_BREAKS for c in value):
        raise ValueError(f"{what} contains CR, LF, NUL or another line break: {value[:60]!r}")
    return value


def _addresses(what: str, value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        _check_text(what, item)
    return [item for item in items if item.strip()]


def _guess(filename: str) -> tuple[str, str]:
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    if guessed is None or encoding is not None:
        # A .gz or .bz2 file is sent as what it is, not as its inner type.
        return "application", "octet-stream"
    maintype, _, subtype = guessed.partition("/")
    return maintype, subtype


def _read(content: Any, what: str) -> bytes | str:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, str):
        return content
    read = getattr(content, "read", None)
    if read is None:
        raise TypeError(
            f"{what}: give a path, bytes or a file object, not {type(content).__name__}"
        )
    data = read()
    if not isinstance(data, (bytes, str)):
        raise TypeError(f"{what}: the file object's read() gave {type(data).__name__}")
    return data


def _load(source: AttachmentSource, what: str) -> tuple[str, bytes | str, str, str]:
    """(filename, content, maintype, subtype) of an attachment or inline part."""
    explicit: str | None = None
    if isinstance(source, tuple):
        if len(source) not in (2, 3) or not isinstance(source[0], str):
            raise TypeError(f"{what}: a tuple is (filename, content) or (filename, content, type)")
        filename = _check_text(f"{what} file name", source[0])
        content = _read(source[1], what)
        if len(source) == 3:
            explicit = _check_text(f"{what} type", source[2])
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as file:
            content = file.read()
        filename = os.path.basename(path)
    else:
        content = _read(source, what)
        name = getattr(source, "name", None)
        filename = os.path.basename(name) if isinstance(name, str) else _UNNAMED
    if explicit is not None:
        maintype, sep, subtype = explicit.partition("/")
        if not sep or not maintype or not subtype:
            raise ValueError(f"{what}: the type must be 'maintype/subtype', not {explicit!r}")
    else:
        maintype, subtype = _guess(filename)
    _check_text(f"{what} file name", filename)
    return filename, content, maintype, subtype


def _add(
    part: EmailMessage,
    source: AttachmentSource,
    *,
    what: str,
    disposition: str,
    cid: str | None = None,
) -> None:
    filename, content, maintype, subtype = _load(source, what)
    adder = part.add_related if cid is not None else part.add_attachment
    headers = [f"Content-ID: <{cid}>"] if cid is not None else None
    if isinstance(content, str):
        if maintype != "text":
            content = content.encode("utf-8")
        else:
            adder(
                content,
                subtype=subtype,
                disposition=disposition,
                filename=filename,
                headers=headers,
            )
            return
    adder(
        content,
        maintype=maintype,
        subtype=subtype,
        disposition=disposition,
        filename=filename,
        headers=headers,
    )


def compose(
    *,
    sender: str | None = None,
    to: str | Iterable[str] | None = None,
    cc: str | Iterable[str] | None = None,
    bcc: str | Iterable[str] | None = None,
    reply_to: str | Iterable[str] | None = None,
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
    attachments: Iterable[AttachmentSource] = (),
    inline: Mapping[str, AttachmentSource] | None = None,
    headers: Mapping[str, str] | None = None,
    date: str | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """A message ready for ``deliver()`` or ``send_message()``.

    *sender* is the From address (``"Alice <alice@example.org>"`` works); *to*, *cc*,
    *bcc* and *reply_to* take one address or a list (Bcc is sent in the envelope only:
    ``deliver()`` removes the header).  *text* and *html*: the body, as a plain and an
    HTML alternative when both are given.  *attachments*: paths, bytes, binary file
    objects, or ``(filename, content[, "type/subtype"])``; the type is guessed from the
    file name.  *inline*: images the HTML shows, by Content-ID (``<img src="cid:logo">``
    for the key ``"logo"``).  *headers*: extra fields (``{"X-Priority": "1"}``).  *date*
    and *message_id* default to now and a new id in the sender's domain.

    >>> msg = compose(sender="alice@example.org", to=["bob@example.org"],
    ...               subject="Hi", text="Hello Bob", attachments=[("notes.txt", b"x")])
    >>> msg["To"], msg.get_content_type(), [p.get_filename() for p in msg.iter_attachments()]
    ('bob@example.org', 'multipart/mixed', ['notes.txt'])
    """
    msg = EmailMessage(policy=email.policy.default)
    if sender is not None:
        msg["From"] = _check_text("sender", sender)
    for name, value in (("To", to), ("Cc", cc), ("Bcc", bcc), ("Reply-To", reply_to)):
        found = _addresses(name, value)
        if found:
            msg[name] = ", ".join(found)
    if subject is not None:
        msg["Subject"] = _check_text("subject", subject)
    msg["Date"] = (
        _check_text("date", date) if date is not None else email.utils.formatdate(localtime=True)
    )
    msg["Message-ID"] = (
        _check_text("message_id", message_id)
        if message_id is not None
        else email.utils.make_msgid(domain=_domain(sender))
    )
    for name, value in (headers or {}).items():
        _check_text("header name", name)
        if not name or any(c in name for c in ": \t") or not name.isascii():
            raise ValueError(f"not a header field name (RFC 5322 section 2.2): {name!r}")
        if name.lower() in _OWN_HEADERS:
            raise ValueError(
                f"the {name} header is set by its own argument or by the MIME structure"
            )
        del msg[name]
        msg[name] = _check_text(f"the {name} header", value)

    images = dict(inline or {})
    if images and html is None:
        raise ValueError("inline images are shown by the HTML part: give html= too")
    if text is not None:
        msg.set_content(_body("text", text))
        if html is not None:
            msg.add_alternative(_body("html", html), subtype="html")
    elif html is not None:
        msg.set_content(_body("html", html), subtype="html")
    else:
        msg.set_content("")
    if images:
        html_part = msg if text is None else _last_part(msg)
        for cid, source in images.items():
            _check_text("inline Content-ID", cid)
            if not cid or any(c in cid for c in "<> \t"):
                raise ValueError(f"an inline Content-ID is a bare id like 'logo': {cid!r}")
            _add(html_part, source, what=f"inline {cid!r}", disposition="inline", cid=cid)
    for source in attachments:
        _add(msg, source, what="attachment", disposition="attachment")
    return msg


def _last_part(msg: EmailMessage) -> EmailMessage:
    parts = msg.get_payload()
    assert isinstance(parts, list) and isinstance(parts[-1], EmailMessage)
    return parts[-1]


def _body(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"the {what} body contains NUL")
    return value


def _domain(sender: str | None) -> str:
    """The domain for a new Message-ID: the sender's, else a name that cannot clash
    (RFC 2606 reserves .invalid); never a DNS lookup of this host's name."""
    if sender:
        address = email.utils.parseaddr(sender)[1]
        domain = address.rpartition("@")[2]
        if domain and "@" in address and all(c not in domain for c in "<>[] \t"):
            return domain
    return "smtpx.invalid"


def message_from_options(
    message: Any, sender: str | None, options: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """``send``'s *message* and the options left for ``connect``: when *message* is None,
    one composed from the compose keywords in *options*.

    >>> msg, rest = message_from_options(None, "a@example.org", {"to": "b@example.org",
    ...                                  "text": "hi", "timeout": 5})
    >>> msg["To"], rest
    ('b@example.org', {'timeout': 5})
    """
    compose_options = {k: v for k, v in options.items() if k in COMPOSE_KEYWORDS}
    rest = {k: v for k, v in options.items() if k not in COMPOSE_KEYWORDS}
    if message is None:
        if (
            not compose_options.get("to")
            and not compose_options.get("cc")
            and not (compose_options.get("bcc"))
        ):
            raise TypeError("send() needs a message, or recipients (to=, cc=, bcc=) to compose one")
        return compose(sender=sender, **compose_options), rest
    if compose_options:
        names = ", ".join(sorted(compose_options))
        raise TypeError(
            f"send() got a message and compose keywords ({names}): give one or the other"
        )
    return message, rest
