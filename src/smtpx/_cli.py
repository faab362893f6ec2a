"""The ``smtpx`` command: ``smtpx demo`` (also ``python -m smtpx demo``).

Example:
    $ python -m smtpx demo
    smtpx demo: sink server on 127.0.0.1:40123 (STARTTLS, AUTH PLAIN LOGIN)
    ...
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import sys
from email.message import EmailMessage
from importlib import metadata
from typing import TYPE_CHECKING

import smtpx

if TYPE_CHECKING:
    from smtpx.testing import SinkMessage, SinkServer

__all__ = ["DEMO_PASSWORD", "DEMO_USER", "main"]

PROG = "smtpx"
DEMO_USER = "alice"
# Fixed so a test can prove it never reaches the output; the server that
# accepts it lives only as long as the demo, on a loopback port.
DEMO_PASSWORD = "demo-only: correct horse battery staple"  # noqa: S105
# Seconds for each network operation of the demo client; all traffic is local.
_CLIENT_TIMEOUT = 10.0
_RULE = "=" * 72


class DemoError(Exception):
    """A failure the demo reports as one line, without a traceback."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``smtpx`` command line and return its exit status.

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        smtpx ...
        0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits for --help and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except DemoError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a command-line tool reports, it does not trace back
        print(f"{PROG} {args.command}: error: {_describe(exc)}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="An smtplib-compatible SMTP and LMTP client."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="send a message through an embedded sink server and show the transcript",
        description=(
            "Start a local sink server (STARTTLS with a throwaway CA, AUTH), send one "
            "message through it with smtpx.SMTP, and print the protocol transcript "
            "and the message as the server received it. Needs smtpx[testing]."
        ),
    )
    demo.set_defaults(handler=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    try:
        from smtpx.testing import SinkServer
    except ImportError as exc:
        raise DemoError(str(exc)) from None

    with SinkServer(starttls=True, auth={DEMO_USER: DEMO_PASSWORD}) as server:
        where = f"{server.host}:{server.port}"
        print(f"{PROG} demo: sink server on {where} (STARTTLS, AUTH PLAIN LOGIN)")
        transcript = _send_demo_message(server)
        received = server.wait_for_messages(1, timeout=_CLIENT_TIMEOUT)[0]

    # The library redacts AUTH in its debug output; this check keeps the
    # demo's promise even if that ever regresses (style rule 12).
    if _leaks_secret(transcript, DEMO_PASSWORD):
        raise DemoError("the transcript would reveal the password; not printing it")
    print()
    print(f"{_RULE}\nclient transcript (smtpx.SMTP.set_debuglevel(1))\n{_RULE}")
    print(transcript.rstrip("\n"))
    print()
    print(f"{_RULE}\nmessage as received by the server\n{_RULE}")
    print(_format_received(received))
    return 0


def _send_demo_message(server: SinkServer) -> str:
    """Send the demo message and return the client's debug transcript."""
    message = EmailMessage()
    message["From"] = f"Alice <{DEMO_USER}@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Subject"] = "Hello from smtpx"
    message.set_content("This message went through STARTTLS and AUTH.\n")
    captured = io.StringIO()
    # set_debuglevel() writes smtplib-style lines to sys.stderr.  connect() after it so
    # the transcript starts with the greeting; smtpx (unlike smtplib) verifies the
    # certificate against the host given to connect().
    client = smtpx.SMTP(local_hostname="localhost", timeout=_CLIENT_TIMEOUT)
    with contextlib.redirect_stderr(captured):
        client.set_debuglevel(1)
        try:
            client.connect(server.host, server.port)
            client.ehlo()
            client.starttls(context=server.client_context())
            client.ehlo()
            client.login(DEMO_USER, DEMO_PASSWORD)
            client.send_message(message)
            client.quit()
        finally:
            client.close()
    return captured.getvalue()


def _format_received(message: SinkMessage) -> str:
    envelope = [
        f"MAIL FROM:<{message.mail_from}>" + "".join(f" {o}" for o in message.mail_options),
        *(f"RCPT TO:<{rcpt}>" for rcpt in message.rcpt_tos),
        f"(over TLS: {'yes' if message.tls else 'no'}; "
        f"authenticated as: {message.auth_login or '-'})",
        "",
    ]
    content = message.content.decode("utf-8", errors="replace").replace("\r\n", "\n")
    return "\n".join(envelope) + content.rstrip("\n")


def _leaks_secret(text: str, secret: str) -> bool:
    """Whether ``text`` holds ``secret`` in clear or in any base64 alignment.

    Example:
        >>> _leaks_secret("AUTH PLAIN " + base64.b64encode(b"\\0u\\0hunter22").decode(), "hunter22")
        True
        >>> _leaks_secret("AUTH PLAIN ********", "hunter22")
        False
    """
    if secret in text:
        return True
    raw = secret.encode("utf-8")
    for shift in range(3):
        # Only the base64 characters that depend on the secret's bytes alone
        # survive whatever comes before it (an authzid, a user name).
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = 4 if shift else 0
        stop = (shift + len(raw)) // 3 * 4
        if stop - start >= 4 and encoded[start:stop] in text:
            return True
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _version() -> str:
    try:
        return metadata.version("smtpx")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"
