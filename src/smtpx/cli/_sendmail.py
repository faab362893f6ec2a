"""``smtpx sendmail``: the ``sendmail`` interface that cron, mail programs and scripts call,
sending through an account of the config file (``_accounts``) or the environment.

The message is read from stdin; recipients are the arguments, and with ``-t`` also the
To, Cc and Bcc headers.  Bcc headers are removed; From, Date and Message-ID are added
when missing (as sendmail and Postfix do).  Without ``-i``/``-oi`` a line holding a single
``.`` ends the message, as in sendmail.

Exit status, from ``sysexits.h`` (what programs that call sendmail understand): 0 sent,
2 bad arguments, 65 the message or its recipients unusable, 67 a recipient refused,
69 refused for good (TLS failed, MAIL or the message refused), 70 unexpected error,
75 try again later (cannot connect, or a 4yz reply), 76 the outcome is unknown (the
connection was lost after the message was sent: sending again may deliver it twice),
77 AUTH failed, 78 configuration.

Example:
    $ printf 'Subject: backup done\\n\\nAll good.\\n' | smtpx sendmail -i admin@example.org
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import email.utils
import sys
from typing import Any

from .._results import Recipient, SendResult
from . import _accounts
from ._accounts import EXIT_CONFIG
from ._common import CLIError, describe
from ._send import Transcript, raw_envelope, strip_bcc
from ._server_options import add_connection_options, server_from_options
from ._transfer import PhaseError, Session

__all__ = ["SYSEXITS", "add_missing_headers", "read_message", "register", "run"]

#: sysexits.h codes.
EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE = 65, 67, 69, 70
EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 75, 76, 77, 78

#: The exit status for a failure in each phase of the session (a 4yz reply: EX_TEMPFAIL).
SYSEXITS = {
    "connect": EX_TEMPFAIL,
    "ehlo": EX_UNAVAILABLE,
    "starttls": EX_UNAVAILABLE,
    "auth": EX_NOPERM,
    "mail": EX_UNAVAILABLE,
    "rcpt": EX_NOUSER,
    "data": EX_UNAVAILABLE,
    "unknown": EX_PROTOCOL,
}


def register(subparsers: Any) -> None:
    """Add ``smtpx sendmail`` to the command line."""
    parser = subparsers.add_parser(
        "sendmail",
        help="a sendmail-compatible command for cron and scripts (message on stdin)",
        description=(
            "Read a message on stdin and send it through the configured account "
            "(--account, SMTPX_ACCOUNT, the config file's default, or SMTPX_URL). "
            "Accepts sendmail's -t, -f, -F, -i, -oi, -N, -R, -V."
        ),
    )
    parser.add_argument("recipients", nargs="*", metavar="RECIPIENT")
    parser.add_argument(
        "-t", action="store_true", dest="from_headers", help="also send to To, Cc and Bcc"
    )
    parser.add_argument("-f", "-r", dest="sender", metavar="ADDR", help="the envelope sender")
    parser.add_argument("-F", dest="full_name", metavar="NAME", help="the sender's full name")
    parser.add_argument(
        "-i",
        action="store_true",
        dest="ignore_dots",
        help="a line with a single '.' does not end the message",
    )
    parser.add_argument(
        "-o",
        action="append",
        default=[],
        dest="sendmail_options",
        metavar="OPTION",
        help="-oi is -i; other -o options are ignored",
    )
    parser.add_argument(
        "-N", dest="notify", metavar="DSN", help="NEVER or any of success,failure,delay (RFC 3461)"
    )
    parser.add_argument("-R", dest="ret", type=str.upper, choices=["FULL", "HDRS"])
    parser.add_argument("-V", dest="envid", metavar="ENVID")
    parser.add_argument(
        "-v", action="store_true", dest="verbose", help="print the session transcript on stderr"
    )
    parser.add_argument(
        "-b",
        dest="mode",
        default="m",
        choices=["m"],
        help="-bm (the default: deliver the message on stdin)",
    )
    parser.add_argument(
        "-B",
        dest="body_type",
        metavar="TYPE",
        help="ignored (8BITMIME is used when the server offers it)",
    )
    parser.add_argument("-C", dest="config", metavar="PATH", help="the config file")
    add_connection_options(parser)


def read_message(stream: Any, *, ignore_dots: bool) -> bytes:
    """The message from *stream* (binary), up to a lone ``.`` line unless *ignore_dots*."""
    if ignore_dots:
        return bytes(stream.read())
    lines = []
    for line in stream:
        if line.rstrip(b"\r\n") == b".":
            break
        lines.append(line)
    return b"".join(lines)


def add_missing_headers(data: bytes, sender: str, full_name: str | None) -> bytes:
    """*data* with From, Date and Message-ID added at the top when it has none."""
    head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()
    names = {line.split(b":", 1)[0].strip() for line in head.splitlines() if b":" in line}
    newline = b"\r\n" if b"\r\n" in data[:1000] else b"\n"
    added = []
    if b"from" not in names:
        added.append("From: " + email.utils.formataddr((full_name or "", sender)))
    if b"date" not in names:
        added.append("Date: " + email.utils.formatdate(localtime=True))
    if b"message-id" not in names:
        domain = sender.rpartition("@")[2] or "smtpx.invalid"
        added.append("Message-ID: " + email.utils.make_msgid(domain=domain))
    if not added:
        return data
    if not data.strip():
        data = newline  # a message of headers only still needs its empty line
    header = newline.join(a.encode("utf-8") for a in added) + newline
    return header + data


def _header_sender(data: bytes) -> str:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    return email.utils.parseaddr(str(headers.get("Sender") or headers.get("From") or ""))[1]


def run(args: argparse.Namespace) -> int:
    """Run ``smtpx sendmail``."""
    try:
        return _sendmail(args)
    except PhaseError as exc:
        print(f"smtpx sendmail: error: {exc}", file=sys.stderr)
        if exc.reply is not None and 400 <= exc.reply.code < 500:
            return EX_TEMPFAIL
        return SYSEXITS[exc.phase]
    except CLIError as exc:
        if exc.usage:
            raise
        print(f"smtpx sendmail: error: {exc}", file=sys.stderr)
        return EX_CONFIG if exc.code == EXIT_CONFIG else EX_DATAERR
    except Exception as exc:
        print(f"smtpx sendmail: error: {describe(exc)}", file=sys.stderr)
        return EX_SOFTWARE


def _sendmail(args: argparse.Namespace) -> int:
    ignore_dots = args.ignore_dots or "i" in args.sendmail_options
    notify = [n.strip().upper() for n in args.notify.split(",")] if args.notify else None
    try:
        Recipient("x@example.org", notify=notify)
    except ValueError as exc:
        raise CLIError(f"-N: {exc}", 2, usage=True) from None
    if any(c in (args.sender or "") + (args.full_name or "") for c in "\r\n\0"):
        raise CLIError("-f or -F contains CR, LF or NUL", 2, usage=True)
    account = _accounts.load_account(args.account, path=args.config, required=True)
    assert account is not None
    if not (args.url or args.host or account.url):
        raise CLIError(
            "no server: name an account (--account, SMTPX_ACCOUNT, default in "
            f"{_accounts.config_path()}) or set SMTPX_URL",
            EXIT_CONFIG,
        )
    data = read_message(sys.stdin.buffer, ignore_dots=ignore_dots)
    if not data.strip():
        raise CLIError("no message on stdin")
    configured = account.sender and email.utils.parseaddr(account.sender)[1]
    sender = args.sender or configured or _header_sender(data)
    if not sender:
        raise CLIError(
            "no sender: give -f, or set from in the account (or SMTPX_FROM)", EXIT_CONFIG
        )
    full_name = args.full_name
    if full_name is None and account.sender:
        full_name = email.utils.parseaddr(account.sender)[0] or None
    data = add_missing_headers(data, sender, full_name)
    recipients = [a for _, a in email.utils.getaddresses(args.recipients) if a]
    if args.from_headers:
        _, listed = raw_envelope(data, sender, None)
        recipients += [a for a in listed if a and a not in recipients]
    if not recipients:
        raise CLIError("no recipients: give them as arguments, or -t to read the headers")
    data = strip_bcc(data)

    server = server_from_options(args, account)
    observers = [Transcript(server.password)] if args.verbose else []
    session = Session(server, observers)
    try:
        session.open()
        result: SendResult = session.deliver(
            data, sender, recipients, notify=notify, ret=args.ret, envid=args.envid
        )
    finally:
        session.close()
    status = 0
    for recipient in result.refused + result.deferred:
        print(
            f"smtpx sendmail: {recipient.address}: {recipient.code} {recipient.text}",
            file=sys.stderr,
        )
        code = EX_NOUSER if recipient.status == "refused" else EX_TEMPFAIL
        status = code if status in (0, EX_TEMPFAIL) else status
    return status
