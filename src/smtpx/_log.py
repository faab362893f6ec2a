"""Observers of a session's events (``_protocol._events``): a ``logging`` transcript, an
in-memory ``Transcript`` for tests, and smtplib's ``set_debuglevel`` output.

Every secret was redacted where its event was made; nothing here can show one.  Message
content is shown only by an observer made to show it (``bodies=True``/``content=True``).

A transcript line is a direction mark and the text: ``>>`` sent, ``<<`` received, ``--``
what happened to the connection::

    -- connecting to 127.0.0.1:587
    -- connected to 127.0.0.1:587 from 127.0.0.1:50112
    << 220 mail.example.org ESMTP
    >> EHLO client.example.org
    >> AUTH PLAIN ********
    >> [content: 1234 bytes via DATA, end of message]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._protocol import (
    CommandSent,
    Connected,
    Connecting,
    ConnectionFailed,
    ContentSent,
    Observer,
    RawSent,
    ReplyReceived,
    SessionEvent,
    TLSInfo,
    TLSStarted,
)

__all__ = ["LogObserver", "SmtplibDebug", "Transcript", "fan_out", "render"]

_logger = logging.getLogger("smtpx")


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def _tls(info: TLSInfo | None) -> str:
    if info is None:
        return "TLS"
    text = " ".join(part for part in (info.version, info.cipher) if part) or "TLS"
    if info.bits:
        text += f" ({info.bits} bits)"
    if info.peer_subject:
        text += f", certificate {info.peer_subject}"
    return text


def _text_lines(data: str | bytes) -> list[str]:
    text = data if isinstance(data, str) else data.decode("utf-8", "backslashreplace")
    return text.splitlines() or [""]


def render(event: SessionEvent, *, bodies: bool = False) -> list[str]:
    """The transcript lines of one event (without times).

    >>> from smtpx import CommandSent
    >>> render(CommandSent("AUTH PLAIN ********", True, 0.01))
    ['>> AUTH PLAIN ********']
    """
    if isinstance(event, ReplyReceived):
        raw = event.reply.raw
        return [
            "<< " + line.rstrip(b"\r\n").decode("utf-8", "backslashreplace") for line in raw
        ] or [f"<< {event.reply.code}"]
    if isinstance(event, CommandSent):
        return [">> " + event.line]
    if isinstance(event, ContentSent):
        if bodies and event.data is not None:
            return [">> " + line for line in _text_lines(event.data)]
        end = ", end of message" if event.last else ""
        return [f">> [content: {event.size} bytes via {event.via}{end}]"]
    if isinstance(event, RawSent):
        if event.data is None:
            return [f">> [raw: {event.size} bytes of content]"]
        return [">> " + line for line in _text_lines(event.data)]
    if isinstance(event, Connecting):
        where = event.host if event.port is None else _address((event.host, event.port))
        return [f"-- connecting to {where}" + (" (implicit TLS)" if event.implicit_tls else "")]
    if isinstance(event, Connected):
        line = f"-- connected to {_address(event.peer)}"
        if event.local:
            line += f" from {_address(event.local)}"
        return [line + (f"; {_tls(event.tls)}" if event.tls is not None else "")]
    if isinstance(event, ConnectionFailed):
        where = event.host if event.port is None else _address((event.host, event.port))
        return [f"-- connection to {where} failed: {event.error}"]
    if isinstance(event, TLSStarted):
        return [f"-- TLS started: {_tls(event.tls)}"]
    return [f"-- connection closed ({event.reason})"]


class Transcript:
    """An observer that keeps every event, for tests and for showing a session.

    >>> import smtpx
    >>> transcript = smtpx.Transcript()
    >>> client = smtpx.SMTP()
    >>> client.add_observer(transcript)
    >>> # client.connect(...); client.sendmail(...)
    >>> transcript.lines()
    []

    *content*: keep message content (``ContentSent.data``) and show it in ``lines()``.
    """

    def __init__(self, *, content: bool = False) -> None:
        self.events: list[SessionEvent] = []
        self.wants_content = content

    def __call__(self, event: SessionEvent) -> None:
        self.events.append(event)

    def __iter__(self) -> Iterator[SessionEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def clear(self) -> None:
        self.events.clear()

    def lines(self, *, timings: bool = False) -> list[str]:
        """The transcript as text lines; *timings* prefixes the seconds since connecting."""
        out: list[str] = []
        for event in self.events:
            for line in render(event, bodies=self.wants_content):
                out.append(f"{event.elapsed:8.3f}s {line}" if timings else line)
        return out


class LogObserver:
    """An observer that logs the transcript to ``logging`` (logger ``smtpx`` unless
    given), one record per line at *level* (DEBUG), with the seconds since connecting and
    each reply's latency.  Each record carries its event as ``record.smtpx_event``.

    *bodies*: log message content too (off by default: it is often private).

    >>> import logging, smtpx
    >>> logging.basicConfig(level=logging.DEBUG)
    >>> client = smtpx.SMTP()
    >>> client.add_observer(smtpx.LogObserver())
    """

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        level: int = logging.DEBUG,
        bodies: bool = False,
    ) -> None:
        if logger is None:
            logger = _logger
        elif isinstance(logger, str):
            logger = logging.getLogger(logger)
        self.logger = logger
        self.level = level
        self.wants_content = bodies

    def __call__(self, event: SessionEvent) -> None:
        logger = self.logger
        if not logger.isEnabledFor(self.level):
            return
        lines = render(event, bodies=self.wants_content)
        extra = {"smtpx_event": event}
        if isinstance(event, ReplyReceived):
            lines[-1] += f" ({event.latency * 1000:.1f} ms)"
        for line in lines:
            logger.log(self.level, "%8.3fs %s", event.elapsed, line, extra=extra)


class SmtplibDebug:
    """smtplib's ``set_debuglevel`` lines, made from events and printed by the client's
    ``_print_debug`` (which adds level 2's timestamps).  Where smtplib prints a command,
    a secret shows as ``********``."""

    wants_content = True

    def __init__(self, print_debug: Callable[..., None]) -> None:
        self.print_debug = print_debug

    def __call__(self, event: SessionEvent) -> None:
        show = self.print_debug
        if isinstance(event, ReplyReceived):
            reply = event.reply
            for line in reply.raw:
                show("reply:", repr(line))
            show(f"reply: retcode ({reply.code}); Msg: {reply.message!a}")
            if event.answers == "<greeting>":
                show("connect:", repr(reply.message))
            elif event.answers in ("DATA", "<end of data>"):
                show("data:", reply.as_tuple())
        elif isinstance(event, CommandSent):
            show("send:", repr(event.line + "\r\n"))
        elif isinstance(event, (ContentSent, RawSent)):
            show("send:", repr(event.data))
        elif isinstance(event, Connecting):
            if event.port is not None:
                if event.implicit_tls:
                    show("connect:", (event.host, event.port))
                show("connect: to", (event.host, event.port), event.source_address)
        elif isinstance(event, ConnectionFailed) and event.port is None:
            show("connect fail:", event.host)  # smtplib says so for unix sockets only


def fan_out(observers: Sequence[Observer]) -> Observer:
    """One observer that calls each of *observers* in turn.  One that raises is logged
    (logger ``smtpx``) and the session goes on: an observer must never leave the client
    out of step with the server."""

    def dispatch(event: SessionEvent) -> None:
        for observer in observers:
            try:
                observer(event)
            except Exception:
                _logger.exception("an smtpx observer raised on %r", type(event).__name__)

    return dispatch
