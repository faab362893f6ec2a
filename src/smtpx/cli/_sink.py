"""``smtpx sink``: the embedded SMTP/LMTP server, on a loopback port, for development.

It accepts every message, prints each one's envelope on stderr as it arrives, and can
write the messages to stdout (``--stdout``), a Maildir (``--maildir``) or an mbox file
(``--mbox``). With ``--starttls`` or ``--implicit-tls`` it presents a certificate from
a throwaway CA made at start, whose certificate it writes to ``--ca-out`` (or a
temporary file it names). It runs until Ctrl-C or SIGTERM, ``--count`` messages, or
``--timeout`` seconds. Needs the ``testing`` extra (aiosmtpd, trustme).

Status lines go to stderr, so stdout carries only messages and can be piped.

Exit status: 0 when stopped by Ctrl-C, SIGTERM, ``--count`` or ``--timeout``; 1 when
the server could not start or a message could not be written, or when ``--timeout``
came before the ``--count`` messages; 2 for bad arguments.

Example:
    $ smtpx sink --port 2525 --maildir ./mail --starttls --auth alice:s3cret
    smtpx sink: listening on 127.0.0.1:2525 (SMTP, STARTTLS, AUTH PLAIN LOGIN); Ctrl-C stops
    smtpx sink: CA certificate in /tmp/smtpx-sink-ab12cd/ca.pem
    smtpx sink: #1 from <alice@example.org> to <bob@example.org>, 312 bytes, TLS, AUTH alice
"""

from __future__ import annotations

import argparse
import contextlib
import mailbox
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

if TYPE_CHECKING:
    from smtpx.testing import Fault, SinkMessage, SinkServer

__all__ = ["DEFAULT_PORT", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "register", "run"]

PROG = "smtpx sink"
#: The usual unprivileged port for a development SMTP server.
DEFAULT_PORT = 2525
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# How often the main loop wakes to look at the clock and the stop flag; short enough
# that Ctrl-C, SIGTERM and --timeout take effect at once for a person.
_POLL = 0.2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``sink`` subcommand to the ``smtpx`` parser."""
    parser = subparsers.add_parser(
        "sink",
        help="run a local SMTP/LMTP server that accepts and shows every message",
        description=(
            "Run the embedded sink server on a loopback port for development. It accepts "
            "every message and prints its envelope; it can write messages to stdout, a "
            "Maildir or an mbox. Needs smtpx[testing]."
        ),
        epilog=(
            "exit status: 0 stopped (Ctrl-C, SIGTERM, --count or --timeout), 1 the server "
            "failed or --timeout came before --count messages, 2 bad arguments"
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"loopback port to listen on (default: {DEFAULT_PORT}; 0: a free port, printed)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true", help="offer STARTTLS, with a throwaway CA")
    tls.add_argument(
        "--implicit-tls", action="store_true", help="speak TLS from the first byte (SMTPS)"
    )
    parser.add_argument(
        "--require-starttls",
        action="store_true",
        help="refuse mail commands until STARTTLS (needs --starttls)",
    )
    parser.add_argument(
        "--ca-out",
        metavar="FILE",
        help="write the CA certificate (PEM) here; default: a temporary file, printed",
    )
    parser.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        type=_credentials,
        action="append",
        help="offer AUTH PLAIN and LOGIN for this account (repeatable); with STARTTLS, "
        "only after it",
    )
    parser.add_argument(
        "--auth-without-tls",
        action="store_true",
        help="allow AUTH before STARTTLS (by default it is refused until TLS)",
    )
    parser.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033)")
    parser.add_argument(
        "--hostname",
        metavar="NAME",
        type=_name,
        default="localhost",
        help="name in the greeting and the certificate (default: localhost)",
    )
    parser.add_argument(
        "--stdout", action="store_true", help="write each message to stdout (mbox style)"
    )
    parser.add_argument("--maildir", metavar="DIR", help="deliver messages into this Maildir")
    parser.add_argument("--mbox", metavar="FILE", help="append messages to this mbox file")
    parser.add_argument("--count", metavar="N", type=_positive_int, help="stop after N messages")
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=_seconds, help="stop after this many seconds"
    )
    parser.add_argument(
        "--fault",
        metavar="SPEC",
        action="append",
        type=_fault,
        help=(
            "a scripted fault (smtpx.testing.Fault), repeatable: 'AT[#N] REPLY' "
            "(e.g. 'RCPT#2 452 4.5.3 Too many recipients'), 'AT[#N] drop' or "
            "'AT[#N] delay=SECONDS'; AT is GREETING, EHLO, MAIL, RCPT, DATA, CONTENT, ..."
        ),
    )


def _fault(text: str) -> Fault:
    """``AT[#N] REPLY``, ``AT[#N] drop`` or ``AT[#N] delay=SECONDS``, every time it matches
    (a development server is poked at repeatedly)."""
    from smtpx.testing import Fault

    where, _, what = text.strip().partition(" ")
    at, _, nth = where.partition("#")
    what = what.strip()
    options: dict[str, object] = {"at": at, "times": None}
    try:
        if nth:
            options["nth"] = int(nth)
        if what.lower() == "drop":
            options["drop"] = True
        elif what.lower().startswith("delay="):
            options["delay"] = float(what[len("delay=") :])
        elif what:
            options["reply"] = what
        else:
            raise ValueError("say what happens: a reply, 'drop' or 'delay=SECONDS'")
        return Fault(**options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --fault {text!r}: {exc}") from None


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of at least 1, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 10**7:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"give a positive number of seconds, not {text!r}")
    return value


def _name(text: str) -> str:
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"not a host name: {text!r}")
    return text


def _credentials(text: str) -> tuple[str, str]:
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise argparse.ArgumentTypeError("write USER:PASSWORD")
    if any(c in text for c in "\r\n\0"):
        raise argparse.ArgumentTypeError("CR, LF and NUL are not allowed")
    return user, password


class SinkError(Exception):
    """A failure reported on one line (exit status 1)."""


def run(
    args: argparse.Namespace,
    *,
    stop: threading.Event | None = None,
    out: BinaryIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``smtpx sink`` with parsed arguments; return the exit status.

    *stop*, when set, ends the server as Ctrl-C would (for callers that run it in a
    thread); *out* receives ``--stdout`` messages, *err* the status lines.
    """
    err = sys.stderr if err is None else err
    problem = _check_arguments(args)
    if problem:
        print(f"{PROG}: error: {problem} (see smtpx sink --help)", file=err)
        return EXIT_USAGE
    try:
        from smtpx.testing import SinkServer
    except ImportError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_FAILED
    stop = threading.Event() if stop is None else stop
    try:
        with contextlib.ExitStack() as stack:
            writers = _writers(args, stack, out)
            server = _server(SinkServer, args)
            try:
                server.start()
            except OSError as exc:
                reason = exc.strerror or exc
                raise SinkError(f"cannot listen on 127.0.0.1:{args.port}: {reason}") from None
            stack.callback(server.stop)
            stack.enter_context(_stop_on_sigterm(stop))
            _announce(server, args, stack, err)
            return _serve(server, args, writers, stop, err)
    except SinkError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_FAILED


def _check_arguments(args: argparse.Namespace) -> str | None:
    uses_tls = args.starttls or args.implicit_tls
    if args.require_starttls and not args.starttls:
        return "--require-starttls needs --starttls"
    if args.ca_out and not uses_tls:
        return "--ca-out needs --starttls or --implicit-tls"
    if args.auth_without_tls and not args.auth:
        return "--auth-without-tls needs --auth"
    if args.auth and len({user for user, _ in args.auth}) != len(args.auth):
        return "--auth names the same user twice"
    return None


def _server(factory: type[SinkServer], args: argparse.Namespace) -> SinkServer:
    auth = dict(args.auth) if args.auth else None
    require_tls = None if auth is None or not args.auth_without_tls else False
    return factory(
        starttls=args.starttls,
        require_starttls=args.require_starttls,
        implicit_tls=args.implicit_tls,
        auth=auth,
        auth_require_tls=require_tls,
        lmtp=args.lmtp,
        hostname=args.hostname,
        port=args.port,
        faults=args.fault or (),
    )


def _announce(
    server: SinkServer, args: argparse.Namespace, stack: contextlib.ExitStack, err: TextIO
) -> None:
    features = ["LMTP" if args.lmtp else "SMTP"]
    if args.starttls:
        features.append("STARTTLS required" if args.require_starttls else "STARTTLS")
    if args.implicit_tls:
        features.append("implicit TLS")
    if args.auth:
        features.append("AUTH PLAIN LOGIN")
    print(
        f"{PROG}: listening on {server.host}:{server.port} ({', '.join(features)}); Ctrl-C stops",
        file=err,
        flush=True,
    )
    if args.starttls or args.implicit_tls:
        if args.ca_out:
            path = Path(args.ca_out)
        else:
            directory = tempfile.mkdtemp(prefix="smtpx-sink-")
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
            path = Path(directory) / "ca.pem"
        try:
            path.write_bytes(server.ca_pem)
        except OSError as exc:
            raise SinkError(f"cannot write the CA certificate to {path}: {exc.strerror}") from None
        print(f"{PROG}: CA certificate in {path}", file=err, flush=True)


def _serve(
    server: SinkServer,
    args: argparse.Namespace,
    writers: list[Callable[[SinkMessage], None]],
    stop: threading.Event,
    err: TextIO,
) -> int:
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                if args.count is not None:
                    print(f"{PROG}: timed out after {seen} of {args.count} messages", file=err)
                    return EXIT_FAILED
                break
            wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            try:
                messages = server.wait_for_messages(seen + 1, timeout=wait)
            except TimeoutError:
                continue
            for message in messages[seen:]:
                seen += 1
                print(f"{PROG}: #{seen} {_envelope(message)}", file=err, flush=True)
                for write in writers:
                    write(message)
                if args.count is not None and seen >= args.count:
                    stop.set()
                    break
    except KeyboardInterrupt:
        pass
    print(f"{PROG}: stopped after {seen} message{'' if seen == 1 else 's'}", file=err)
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    # Signal handlers can only be set in the main thread; a caller running the sink in
    # another thread stops it through the event instead.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _envelope(message: SinkMessage) -> str:
    recipients = ", ".join(f"<{rcpt}>" for rcpt in message.rcpt_tos)
    facts = [f"{len(message.content)} bytes"]
    if message.tls:
        facts.append("TLS")
    if message.auth_login is not None:
        facts.append(f"AUTH {message.auth_login}")
    text = f"from <{message.mail_from}> to {recipients}, {', '.join(facts)}"
    # Addresses come from the client: escape control characters before they reach a
    # terminal (escape sequences).
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# ------------------------------------------------------------------ where messages go


def _writers(
    args: argparse.Namespace, stack: contextlib.ExitStack, out: BinaryIO | None
) -> list[Callable[[SinkMessage], None]]:
    """One writer per destination, each opened now so a bad path fails before start."""
    writers: list[Callable[[SinkMessage], None]] = []
    if args.stdout:
        stream = out if out is not None else sys.stdout.buffer
        writers.append(lambda message: _write_stdout(stream, message))
    if args.maildir:
        try:
            folder = mailbox.Maildir(args.maildir, create=True)
        except OSError as exc:
            raise SinkError(f"cannot use the Maildir {args.maildir}: {exc.strerror}") from None
        writers.append(lambda message: _deliver(folder, message, args.maildir))
    if args.mbox:
        try:
            box = mailbox.mbox(args.mbox, create=True)
            box.lock()
        except (OSError, mailbox.Error) as exc:
            raise SinkError(f"cannot use the mbox {args.mbox}: {exc}") from None
        stack.callback(box.close)  # also unlocks
        writers.append(lambda message: _deliver(box, message, args.mbox))
    return writers


def _local_form(message: SinkMessage) -> bytes:
    """The message as stored in a local mailbox: LF line ends, with the envelope in
    Return-Path (RFC 5321 section 4.4) and one Delivered-To per recipient."""
    trace = f"Return-Path: <{message.mail_from}>\n".encode()
    trace += b"".join(f"Delivered-To: {rcpt}\n".encode() for rcpt in message.rcpt_tos)
    return trace + message.content.replace(b"\r\n", b"\n")


def _write_stdout(stream: BinaryIO, message: SinkMessage) -> None:
    sender = message.mail_from or "MAILER-DAEMON"
    stream.write(f"From {sender} {time.asctime(time.gmtime())}\n".encode())
    # mbox quoting, so a reader does not take a body line for the next message's start.
    body = _local_form(message).replace(b"\nFrom ", b"\n>From ")
    stream.write(body if body.endswith(b"\n") else body + b"\n")
    stream.write(b"\n")
    stream.flush()


def _deliver(box: Any, message: SinkMessage, where: str) -> None:
    stored: mailbox.Message
    if isinstance(box, mailbox.mbox):
        in_mbox = mailbox.mboxMessage(_local_form(message))
        in_mbox.set_from(message.mail_from or "MAILER-DAEMON", time.gmtime())
        stored = in_mbox
    else:
        stored = mailbox.MaildirMessage(_local_form(message))
    try:
        box.add(stored)
        box.flush()
    except OSError as exc:
        raise SinkError(f"cannot write to {where}: {exc.strerror or exc}") from None
