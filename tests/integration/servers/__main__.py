"""Start a test server by hand: ``python -m tests.integration.servers NAME``.

NAME is postfix, dovecot, haraka, submission (Postfix with Dovecot SASL),
embedded-sasl (aiosmtpd with SCRAM-*-PLUS and EXTERNAL) or redis (the Celery broker).

Prints where it listens and where its files are, then runs until Ctrl-C (or
SIGTERM), and stops it. ``--check`` only reports whether it can run here.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ._common import BaseServer, ServerStartError, ServerUnavailable
from .dovecot import DovecotLMTPServer
from .embedded_sasl import EmbeddedSaslServer
from .haraka import HarakaServer
from .postfix import PostfixServer
from .redis import RedisServer
from .submission import SubmissionServer

SERVERS: dict[
    str,
    type[PostfixServer]
    | type[DovecotLMTPServer]
    | type[HarakaServer]
    | type[SubmissionServer]
    | type[EmbeddedSaslServer]
    | type[RedisServer],
] = {
    "postfix": PostfixServer,
    "dovecot": DovecotLMTPServer,
    "haraka": HarakaServer,
    "submission": SubmissionServer,
    "embedded-sasl": EmbeddedSaslServer,
    "redis": RedisServer,
}


def _describe(server: BaseServer | EmbeddedSaslServer) -> str:
    lines = [f"work dir: {server.workdir}", f"CA file:  {server.ca_file}"]
    if isinstance(server, SubmissionServer):
        lines += [
            f"submission: {server.host}:{server.port} (STARTTLS required, then AUTH)",
            f"SMTPS:      {server.host}:{server.smtps_port}",
            f"AUTH before STARTTLS: {server.optional_tls_port}; AUTH without TLS: "
            f"{server.plaintext_auth_port}; no TLS, no AUTH: {server.no_tls_port}",
            f"mechanisms: {' '.join(server.mechanisms)}",
            *(f"user:       {user} / {password}" for user, password in server.users.items()),
            f"OAuth2:     {server.oauth_user} / {server.oauth_token}",
        ]
    elif isinstance(server, EmbeddedSaslServer):
        lines += [
            f"SMTP:       {server.host}:{server.port} (STARTTLS); SMTPS: {server.smtps_port}",
            f"mechanisms: {' '.join(server.mechanisms)}",
            f"client certificate for {server.cert_user}: {server.client_cert_file} "
            f"(key {server.client_key_file})",
        ]
    elif isinstance(server, PostfixServer):
        lines += [
            f"SMTP:     {server.host}:{server.port} (STARTTLS)",
            f"SMTPS:    {server.host}:{server.smtps_port}",
            f"users:    {', '.join(server.users)}; 550: {server.unknown_user}; "
            f"450: {server.deferred_user}",
        ]
    elif isinstance(server, DovecotLMTPServer):
        lines += [
            f"LMTP:     {server.host}:{server.port} (STARTTLS) and {server.socket_path}",
            f"users:    {', '.join(server.users)}; 550: {server.unknown_user}",
        ]
    elif isinstance(server, HarakaServer):
        lines += [
            f"SMTP:     {server.host}:{server.port} (no TLS)",
            f"users:    {', '.join(server.users)}; 550: {server.unknown_user}; "
            f"refused after DATA: Subject containing {server.refuse_marker!r}",
        ]
    elif isinstance(server, RedisServer):
        lines += [f"Redis:    {server.url}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.servers")
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("--check", action="store_true", help="only check it is installed")
    args = parser.parse_args(argv)
    kind = SERVERS[args.server]
    try:
        if args.check:
            print(kind.check_installed())
            return 0
        server: BaseServer | EmbeddedSaslServer = kind.start()
    except ServerUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 3
    except ServerStartError as exc:
        print(f"failed to start: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(_describe(server), flush=True)
        print("running; Ctrl-C stops it", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(keep_workdir=True)
        print(f"stopped; files kept in {server.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
