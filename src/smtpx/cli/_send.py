"""``smtpx send``: compose or read a message and send it, showing what happened.

Exit status (``EXIT_CODES`` in ``_transfer``; docs/cli.md has the table): 0 sent and every
recipient accepted (or stopped where ``--stop-after`` asked), 1 unexpected error, 2 bad
arguments, 3 configuration or password source, 4 connect, 5 EHLO, 6 TLS, 7 AUTH, 8 MAIL,
9 every recipient refused, 10 the message refused, 11 some recipients or messages not
accepted, 12 outcome unknown (the connection was lost after the message was sent).

Example:
    $ smtpx send --url smtp+starttls://mail.example.org --user alice \\
        --password-cmd 'pass show mail' --from alice@example.org --to bob@example.org \\
        --subject Report --body 'See attached.' --attach report.pdf -v
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import email.utils
import json
import os
import re
import ssl
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._compose import compose
from .._exceptions import SMTPNotAttempted
from .._log import render
from .._message import envelope_from_headers
from .._protocol import ContentSent, Reply, SessionEvent
from .._results import Recipient, RecipientResult, SendResult
from .._sync._pool import Pool
from . import _accounts
from ._accounts import EXIT_CONFIG
from ._common import CLIError, describe, leaks_secret
from ._output import Output
from ._server_options import (
    _positive,
    _usage,
    add_connection_options,
    server_from_options,
)
from ._transfer import EXIT_CODES, PHASES, Server, Session, phase_of

__all__ = [
    "Transcript",
    "add_connection_options",
    "raw_envelope",
    "register",
    "run",
    "server_from_options",
    "strip_bcc",
]


def register(subparsers: Any) -> None:
    """Add ``smtpx send`` to the command line."""
    parser = subparsers.add_parser(
        "send",
        help="send a message (composed from options, or raw) and show the session",
        description=(
            "Send a message through an SMTP or LMTP server: compose it from options or "
            "read it raw, with TLS, AUTH, DSN, a transcript (-v) and JSON results. "
            "The password is never taken from the command line: it comes from a prompt, "
            "--password-env, --password-cmd, --password-file or an account."
        ),
    )
    add_connection_options(parser)
    message = parser.add_argument_group("message")
    message.add_argument(
        "-f", "--from", dest="sender", metavar="ADDR", help="the From header and envelope sender"
    )
    message.add_argument(
        "--envelope-from",
        metavar="ADDR",
        help="the envelope sender (MAIL FROM), when it differs ('' for <>)",
    )
    message.add_argument(
        "-t",
        "--to",
        action="append",
        default=[],
        metavar="ADDR",
        help="a recipient (repeat, or separate with commas)",
    )
    message.add_argument("--cc", action="append", default=[], metavar="ADDR")
    message.add_argument(
        "--bcc",
        action="append",
        default=[],
        metavar="ADDR",
        help="a recipient not shown in the headers",
    )
    message.add_argument("--reply-to", action="append", default=[], metavar="ADDR")
    message.add_argument("--subject", metavar="TEXT")
    message.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra header (repeat)",
    )
    message.add_argument("--body", metavar="TEXT", help="the plain text body")
    message.add_argument(
        "--body-file", metavar="PATH", help="the plain text body from a file ('-' for stdin)"
    )
    message.add_argument("--html", metavar="HTML", help="an HTML alternative")
    message.add_argument("--html-file", metavar="PATH", help="the HTML alternative from a file")
    message.add_argument(
        "-a",
        "--attach",
        action="append",
        default=[],
        metavar="PATH",
        help="attach a file, its type guessed from its name (repeat)",
    )
    message.add_argument(
        "--inline",
        action="append",
        default=[],
        metavar="CID=PATH",
        help="an image the HTML shows as <img src='cid:CID'> (repeat)",
    )
    message.add_argument(
        "--raw",
        metavar="PATH",
        help="send this message file as it is ('-' for stdin); its Bcc header is removed",
    )
    message.add_argument(
        "--eml-dir", metavar="DIR", help="send every *.eml file of DIR (through the pool)"
    )
    message.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        metavar="N",
        help="send the message N times (through the pool)",
    )
    message.add_argument(
        "--connections",
        type=_positive,
        default=4,
        metavar="N",
        help="connections the pool may open for many messages (default 4)",
    )
    dsn = parser.add_argument_group("delivery status notifications (RFC 3461)")
    dsn.add_argument("--notify", metavar="WHEN", help="NEVER, or any of SUCCESS,FAILURE,DELAY")
    dsn.add_argument("--ret", choices=["FULL", "HDRS"], type=str.upper)
    dsn.add_argument("--envid", metavar="ID")
    show = parser.add_argument_group("what to show")
    show.add_argument(
        "--stop-after",
        choices=PHASES,
        help="end the session (QUIT) after this phase; mail and rcpt send RSET",
    )
    show.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the session transcript on stderr (secrets redacted)",
    )
    show.add_argument("--json", action="store_true", help="print the results as JSON on stdout")


# -- the message ------------------------------------------------------------------------------

_BCC = re.compile(rb"^(?:resent-)?bcc[ \t]*:", re.IGNORECASE)


def strip_bcc(data: bytes) -> bytes:
    """*data* without its Bcc and Resent-Bcc fields (with their folded lines), the rest
    byte for byte: blind copies must not show in what the recipients get."""
    lines = data.splitlines(keepends=True)
    out: list[bytes] = []
    skipping = False
    for index, line in enumerate(lines):
        if line in (b"\r\n", b"\n"):  # the end of the header section
            out.extend(lines[index:])
            break
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = bool(_BCC.match(line))
        if not skipping:
            out.append(line)
    return b"".join(out)


def raw_envelope(
    data: bytes, sender: str | None, recipients: list[str] | None
) -> tuple[str, list[str]]:
    """The envelope of a raw message: what was given, else its headers'."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    found_sender, found = envelope_from_headers(headers, sender, recipients or None)
    return found_sender, [found] if isinstance(found, str) else list(found)


def _addresses(values: Sequence[str]) -> list[str]:
    for value in values:
        if any(c in value for c in "\r\n\0"):
            raise _usage(f"an address contains CR, LF or NUL: {value!r}")
    return [address for _, address in email.utils.getaddresses(list(values)) if address]


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {describe(exc)}") from None


def _read_bytes(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {describe(exc)}") from None


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise _usage(f"--header takes 'Name: value', not {value!r}")
        headers[name.strip()] = text.strip()
    return headers


def _inline(values: Sequence[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for value in values:
        cid, sep, path = value.partition("=")
        if not sep or not cid or not path:
            raise _usage(f"--inline takes CID=PATH, not {value!r}")
        images[cid] = path
    return images


def _composer(args: argparse.Namespace, sender: str | None) -> Callable[[], Any]:
    """A function that composes the message (called once per --repeat: each copy gets its
    own Message-ID)."""
    text = _read_text(args.body_file) if args.body_file else args.body
    html = _read_text(args.html_file) if args.html_file else args.html
    headers = _headers(args.header)
    inline = _inline(args.inline)
    for path in [*args.attach, *inline.values()]:
        if not os.path.isfile(path):
            raise CLIError(f"cannot attach {path}: no such file")

    def build() -> Any:
        try:
            return compose(
                sender=sender,
                to=args.to,
                cc=args.cc,
                bcc=args.bcc,
                reply_to=args.reply_to,
                subject=args.subject,
                text=text if text is not None or html is not None else "",
                html=html,
                attachments=args.attach,
                inline=inline,
                headers=headers,
            )
        except (ValueError, TypeError, OSError) as exc:
            raise _usage(str(exc)) from None

    build()  # a mistake is found before connecting
    return build


# -- results ----------------------------------------------------------------------------------


def _reply_json(reply: Reply | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    status = reply.enhanced_status
    return {
        "code": reply.code,
        "enhanced_status": str(status) if status is not None else None,
        "text": reply.message.decode("utf-8", "replace"),
    }


def _recipient_json(result: RecipientResult) -> dict[str, Any]:
    status = result.enhanced_status
    return {
        "address": result.address,
        "status": result.status,
        "code": result.code,
        "enhanced_status": str(status) if status is not None else None,
        "text": result.text,
    }


def _entry_json(entry: SendResult | Exception) -> dict[str, Any]:
    if isinstance(entry, Exception):
        partial = getattr(entry, "result", None)
        return {
            "ok": False,
            "phase": phase_of(entry),
            "error": describe(entry),
            "recipients": [_recipient_json(r) for r in partial.recipients] if partial else [],
        }
    return {
        "ok": not entry.refused and not entry.deferred,
        "queue_id": entry.queue_id,
        "reply": _reply_json(entry.reply),
        "recipients": [_recipient_json(r) for r in entry.recipients],
    }


def _recipient_rows(results: Sequence[RecipientResult]) -> list[list[str]]:
    return [[r.address, r.status, str(r.code), r.text] for r in results]


class Transcript:
    """The ``-v`` transcript: each event's lines on stderr as it happens, with direction
    marks (``>>`` sent, ``<<`` received, ``--`` the connection).  The events carry no
    secret; a line that would still show the password is withheld all the same."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret

    def __call__(self, event: SessionEvent) -> None:
        for line in render(event):
            if self.secret and leaks_secret(line, self.secret):
                line = line[:3] + "[withheld: it would show the password]"
            print(line, file=sys.stderr, flush=True)


class _Counter:
    """Advances the progress bar at the end of each message's content."""

    def __init__(self) -> None:
        self.advance: Callable[[], None] = lambda: None

    def __call__(self, event: SessionEvent) -> None:
        if isinstance(event, ContentSent) and event.last:
            self.advance()


# -- the command ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run ``smtpx send``."""
    out = Output()
    report: dict[str, Any] = {"ok": False, "stopped_after": None, "error": None, "messages": []}
    try:
        code = _send(args, out, report)
    except CLIError as exc:
        if not args.json or exc.usage:
            raise
        report["error"] = {
            "phase": getattr(exc, "phase", "config" if exc.code == EXIT_CONFIG else None),
            "message": str(exc),
            "reply": _reply_json(getattr(exc, "reply", None)),
        }
        report["exit_code"] = exc.code
        print(json.dumps(report, indent=2))
        print(f"smtpx send: error: {exc}", file=sys.stderr)
        return exc.code
    report["ok"] = code == 0
    report["exit_code"] = code
    if args.json:
        print(json.dumps(report, indent=2))
    return code


def _send(args: argparse.Namespace, out: Output, report: dict[str, Any]) -> int:
    sources = [s for s in (args.raw, args.eml_dir) if s]
    composing = any(
        (
            args.body,
            args.body_file,
            args.html,
            args.html_file,
            args.attach,
            args.inline,
            args.subject,
            args.header,
            args.reply_to,
        )
    )
    if len(sources) > 1 or (sources and composing):
        raise _usage("give the message as --raw, as --eml-dir or by its parts, not two of these")
    if args.eml_dir and args.repeat > 1:
        raise _usage("--repeat sends one message several times; --eml-dir sends a folder")
    if args.stop_after in ("mail", "rcpt") and (args.eml_dir or args.repeat > 1):
        raise _usage("--stop-after mail or rcpt tries one envelope: no --eml-dir or --repeat")
    stdin_needed = [s for s in (args.raw, args.body_file, args.html_file) if s == "-"]
    if len(stdin_needed) > 1:
        raise _usage("only one of --raw, --body-file and --html-file can read stdin")
    if args.notify is not None:
        notify: list[str] | None = [n.strip() for n in args.notify.split(",") if n.strip()]
    else:
        notify = None
    dsn = {"notify": notify, "ret": args.ret, "envid": args.envid}
    try:
        _check_notify(notify)
    except ValueError as exc:
        raise _usage(str(exc)) from None

    account = _accounts.load_account(args.account, path=args.config)
    needs_password = args.stop_after not in ("connect", "ehlo", "starttls")
    server = server_from_options(args, account, needs_password=needs_password)
    header_sender = args.sender or (account.sender if account else None)
    envelope_sender = args.envelope_from if args.envelope_from is not None else header_sender
    if envelope_sender is not None:
        envelope_sender = _addresses([envelope_sender])[0] if envelope_sender else ""
    recipients = _addresses([*args.to, *args.cc, *args.bcc])

    items: Callable[[], Iterator[tuple[Any, str, list[str]]]]
    total = args.repeat
    if args.raw:
        data = _read_bytes(args.raw)
        if not data.strip():
            raise CLIError("the message is empty")
        # The envelope comes from the headers as written, Bcc included; then Bcc goes.
        raw_sender, raw_recipients = raw_envelope(data, envelope_sender, recipients)
        data = strip_bcc(data)

        def items() -> Iterator[tuple[Any, str, list[str]]]:
            for _ in range(args.repeat):
                yield data, raw_sender, raw_recipients

        envelope = (raw_sender, raw_recipients)
    elif args.eml_dir:
        files = sorted(p for p in Path(args.eml_dir).glob("*.eml") if p.is_file())
        if not files:
            raise CLIError(f"no *.eml file in {args.eml_dir}")
        total = len(files)
        envelopes = []
        for path in files:  # every envelope is checked before connecting
            try:
                envelopes.append(raw_envelope(_read_bytes(str(path)), envelope_sender, recipients))
            except (ValueError, IndexError) as exc:
                raise CLIError(f"{path}: {describe(exc)}") from None

        def items() -> Iterator[tuple[Any, str, list[str]]]:
            for path, (each_sender, each_recipients) in zip(files, envelopes, strict=True):
                yield strip_bcc(_read_bytes(str(path))), each_sender, each_recipients

        envelope = envelopes[0]
    else:
        if header_sender is None:
            raise _usage("--from is needed to compose a message (or an account's from)")
        if not recipients:
            raise _usage("no recipient: give --to, --cc or --bcc")
        build = _composer(args, header_sender)
        assert envelope_sender is not None

        def items() -> Iterator[tuple[Any, str, list[str]]]:
            for _ in range(args.repeat):
                yield build(), envelope_sender, recipients

        envelope = (envelope_sender, recipients)
    if not envelope[1]:
        raise _usage("no recipient: give --to, --cc or --bcc, or put them in the message")

    counter = _Counter()
    observers: list[Callable[[SessionEvent], None]] = [counter]
    if args.verbose:
        observers.append(Transcript(server.password))
    session = Session(server, observers)
    try:
        if not session.open(args.stop_after):
            report["stopped_after"] = args.stop_after
            if not args.json:
                out.note(f"smtpx send: stopped after {args.stop_after} ({server.where})")
            return 0
        if args.stop_after in ("mail", "rcpt"):
            results = session.envelope_only(envelope[0], envelope[1], args.stop_after)
            report["stopped_after"] = args.stop_after
            report["messages"] = [{"recipients": [_recipient_json(r) for r in results]}]
            if not args.json:
                if results:
                    out.table(
                        "RCPT replies",
                        ["recipient", "status", "code", "reply"],
                        _recipient_rows(results),
                    )
                out.note(f"smtpx send: stopped after {args.stop_after} ({server.where})")
            refused = [r for r in results if not r.accepted]
            if results and len(refused) == len(results):
                return EXIT_CODES["rcpt"]
            return EXIT_CODES["partial"] if refused else 0
        if total == 1:
            result = session.deliver(*next(items()), **dsn)
            report["messages"] = [_entry_json(result)]
            if not args.json:
                _show(out, [result])
            return EXIT_CODES["partial"] if result.refused or result.deferred else 0
        if _pool_url(server) is None or server.mechanism != "auto" or dsn:
            # The pool opens its connections from a URL with automatic login and takes no
            # DSN options: a mode it cannot express (STARTTLS only if offered, a chosen
            # mechanism, DSN) sends on this connection.
            with out.progress(total, "sending") as advance:
                counter.advance = advance
                entries = session.deliver_many(items(), **dsn)
        else:
            session.close()  # the server and the credentials are checked: now the pool
            with out.progress(total, "sending") as advance:
                entries = _send_through_pool(server, args.connections, items(), advance, dsn)
        report["messages"] = [_entry_json(e) for e in entries]
        if not args.json:
            _show(out, entries)
        return _batch_status(entries)
    finally:
        session.close()


def _pool_url(server: Server) -> str | None:
    """The URL the pool opens its connections with, when the TLS mode has one."""
    if server.unix or server.tls == "starttls-if-offered":
        return None
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{server.scheme}://{host}:{server.port}"


def _send_through_pool(
    server: Server,
    connections: int,
    items: Iterator[tuple[Any, str, list[str]]],
    advance: Callable[[], None],
    dsn: dict[str, Any],
) -> list[SendResult | Exception]:
    """Many messages through ``smtpx.Pool`` (up to *connections* at once, no retries: a
    deferred recipient is reported); each entry is the message's last attempt."""
    url = _pool_url(server)
    assert url is not None
    verified = server.context.verify_mode == ssl.CERT_REQUIRED
    options: dict[str, Any] = {
        "max_connections": connections,
        "retry": None,
        "policy": "strict" if verified and server.tls != "none" else "compat",
        "context": server.context,
        "server_name": server.server_name,
        "timeout": server.timeout,
        "local_hostname": server.ehlo,
    }
    if server.username is not None:
        options.update(username=server.username, password=server.password)
    with Pool(url, **options) as pool:
        results = pool.send_many(items, progress=lambda done, total: advance())
    return [
        result.attempts[-1] if result.attempts else SMTPNotAttempted("never attempted")
        for result in results
    ]


def _check_notify(notify: list[str] | None) -> None:
    """A bad --notify is a usage error, found before connecting."""
    if notify is not None:
        Recipient("x@example.org", notify=notify)


def _batch_status(entries: Sequence[SendResult | Exception]) -> int:
    failed = [e for e in entries if isinstance(e, Exception)]
    partial = [e for e in entries if isinstance(e, SendResult) and (e.refused or e.deferred)]
    if failed and len(failed) == len(entries):
        phases = {phase_of(e) for e in failed}
        return EXIT_CODES[phases.pop()] if len(phases) == 1 else EXIT_CODES["partial"]
    return EXIT_CODES["partial"] if failed or partial else 0


def _show(out: Output, entries: Sequence[SendResult | Exception]) -> None:
    rows: list[list[str]] = []
    for number, entry in enumerate(entries, 1):
        label = f"#{number}" if len(entries) > 1 else ""
        if isinstance(entry, Exception):
            rows.append([label, "-", "failed", "", describe(entry)])
            continue
        for recipient in entry.recipients:
            rows.append([label, *(_recipient_rows([recipient])[0])])
    columns = ["message", "recipient", "status", "code", "reply"]
    if len(entries) == 1:
        rows = [row[1:] for row in rows]
        columns = columns[1:]
    sent = [e for e in entries if isinstance(e, SendResult)]
    accepted = sum(len(e.accepted) for e in sent)
    queued = ", ".join(sorted({e.queue_id for e in sent if e.queue_id}))
    title = f"sent {len(sent)} of {len(entries)} message(s): {accepted} recipient(s) accepted"
    if queued:
        title += f"; queued as {queued}"
    out.table(title, columns, rows)
