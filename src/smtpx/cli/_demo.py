"""``smtpx demo`` (also ``python -m smtpx demo``): the README's first command.

Example:
    $ python -m smtpx demo
    smtpx demo: sink server on 127.0.0.1:40123 (STARTTLS, AUTH PLAIN LOGIN)
    ...
"""

from __future__ import annotations

import argparse
import contextlib
import io
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import smtpx

from ._common import PROG, CLIError, leaks_secret

if TYPE_CHECKING:
    from smtpx.testing import SinkMessage, SinkServer

__all__ = ["DEMO_PASSWORD", "DEMO_USER", "register", "run"]

DEMO_USER = "alice"
# Fixed so a test can prove it never reaches the output; the server that
# accepts it lives only as long as the demo, on a loopback port.
DEMO_PASSWORD = "demo-only: correct horse battery staple"  # noqa: S105
# Seconds for each network operation of the demo client; all traffic is local.
_CLIENT_TIMEOUT = 10.0
_RULE = "=" * 72


def register(subparsers: Any) -> None:
    """Add ``smtpx demo`` to the command line."""
    subparsers.add_parser(
        "demo",
        help="send a message through an embedded sink server and show the transcript",
        description=(
            "Start a local sink server (STARTTLS with a throwaway CA, AUTH), send one "
            "message through it with smtpx.SMTP, and print the protocol transcript "
            "and the message as the server received it. Needs smtpx[testing]."
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``smtpx demo``."""
    try:
        from smtpx.testing import SinkServer
    except ImportError as exc:
        raise CLIError(str(exc)) from None

    with SinkServer(starttls=True, auth={DEMO_USER: DEMO_PASSWORD}) as server:
        where = f"{server.host}:{server.port}"
        print(f"{PROG} demo: sink server on {where} (STARTTLS, AUTH PLAIN LOGIN)")
        transcript = _send_demo_message(server)
        received = server.wait_for_messages(1, timeout=_CLIENT_TIMEOUT)[0]

    # The library redacts AUTH in its debug output; this check keeps the
    # demo's promise even if that ever regresses (style rule 12).
    if leaks_secret(transcript, DEMO_PASSWORD):
        raise CLIError("the transcript would reveal the password; not printing it")
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
