"""The connection options ``smtpx send`` and ``smtpx sendmail`` share: the server (a URL,
or host and port), TLS mode and verification, the account, and where the password comes
from (never the command line)."""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from collections.abc import Callable

from .._url import parse_url
from . import _accounts
from ._accounts import EXIT_CONFIG, Account
from ._common import CLIError, describe
from ._transfer import TLS_MODES, Server

__all__ = ["add_connection_options", "server_from_options"]

_DEFAULT_PORTS = {"implicit": 465, "starttls": 587, "starttls-if-offered": 587, "none": 25}
_SCHEME_TLS = {"smtps": "implicit", "smtp+starttls": "starttls"}
# A generous default: the library's own defaults bound each step; this bounds any one wait.
_TIMEOUT = 30.0


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """The server, TLS and AUTH options (``send`` and ``sendmail``... share them)."""
    server = parser.add_argument_group("server")
    server.add_argument("--account", metavar="NAME", help="an account of the config file")
    server.add_argument(
        "--config",
        metavar="PATH",
        help="the config file (default: $SMTPX_CONFIG or ~/.config/smtpx/accounts.toml)",
    )
    server.add_argument(
        "--url",
        metavar="URL",
        help="smtps://HOST, smtp+starttls://HOST, "
        "smtp://HOST, lmtp://HOST, lmtp+unix:///PATH (no password in it)",
    )
    server.add_argument("--host", metavar="HOST")
    server.add_argument("--port", type=_port, metavar="PORT")
    server.add_argument(
        "--tls",
        choices=TLS_MODES,
        help="implicit, starttls (required, the default), starttls-if-offered, none",
    )
    server.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033)")
    server.add_argument("--ehlo", metavar="NAME", help="the name to give in EHLO/LHLO")
    server.add_argument("--timeout", type=_seconds, default=_TIMEOUT, metavar="SECONDS")
    tls = parser.add_argument_group("certificates")
    tls.add_argument("--cafile", metavar="PATH", help="trust the CA certificates in PATH")
    tls.add_argument(
        "--server-name",
        metavar="NAME",
        help="the name the certificate must show, when not the host's",
    )
    tls.add_argument(
        "--insecure-no-verify",
        action="store_true",
        help="do not check the certificate (anyone in the path can read all)",
    )
    auth = parser.add_argument_group("authentication")
    auth.add_argument("-u", "--user", metavar="NAME", help="log in as NAME")
    auth.add_argument(
        "--auth",
        metavar="MECH",
        help="the SASL mechanism, or auto (the strongest both sides speak; the default)",
    )
    auth.add_argument("--password-env", metavar="VAR", help="the password is in $VAR")
    auth.add_argument(
        "--password-cmd", metavar="CMD", help="the password is the first line CMD prints"
    )
    auth.add_argument(
        "--password-file", metavar="PATH", help="the password is the first line of PATH (mode 0600)"
    )
    auth.add_argument("--password", metavar="SECRET", help=argparse.SUPPRESS)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise ValueError(text)
    return value


_positive.__name__ = "positive number"
_port.__name__ = "port"
_seconds.__name__ = "number of seconds (0 to 3600)"


# -- the server and the login -----------------------------------------------------------------


def _usage(message: str) -> CLIError:
    return CLIError(message, 2, usage=True)


def server_from_options(
    args: argparse.Namespace, account: Account | None, *, needs_password: bool = True
) -> Server:
    """The ``Server`` the options (and the account, for what they leave out) describe."""
    if args.password is not None:
        raise _usage(
            "--password is refused: a command line is visible to other users of this "
            "machine (ps); use the prompt, --password-env, --password-cmd or --password-file"
        )
    url = args.url or (account.url if account and not args.host else None)
    tls: str | None = args.tls or (account.tls if account else None)
    if tls is not None and tls not in TLS_MODES:
        raise CLIError(f"unknown TLS mode {tls!r}: use one of {', '.join(TLS_MODES)}", EXIT_CONFIG)
    unix = False
    lmtp = bool(args.lmtp)
    username = args.user or (account.username if account else None)
    if url:
        if args.url and (args.host or args.port):
            raise _usage("give the server as --url or as --host and --port, not both")
        try:
            endpoint = parse_url(url)
        except ValueError as exc:
            raise _usage(str(exc)) from None
        if endpoint.password is not None:
            raise _usage(
                "the URL holds a password, which the command line shows to other users; "
                "use the prompt, --password-env, --password-cmd or --password-file"
            )
        host, port, unix = endpoint.host, endpoint.port, endpoint.unix
        lmtp = lmtp or endpoint.lmtp
        username = args.user or endpoint.username or username
        implied = _SCHEME_TLS.get(endpoint.scheme)
        if implied is not None and tls is not None and tls != implied:
            raise _usage(f"--tls {tls} contradicts the URL's scheme {endpoint.scheme}://")
        tls = tls or implied or ("none" if unix else "starttls")
        if lmtp and tls == "implicit":
            raise _usage("LMTP has no implicit TLS mode")
    else:
        if not args.host:
            raise _usage("no server: give --url, --host or --account (or set SMTPX_URL)")
        host = args.host
        if tls is None:
            tls = "implicit" if args.port == 465 else "starttls"
        port = args.port or (24 if lmtp else _DEFAULT_PORTS[tls])
        if lmtp and tls == "implicit":
            raise _usage("LMTP has no implicit TLS mode")
    auth = args.auth or (account.auth if account else None) or "auto"
    if (args.auth or args.password_env or args.password_cmd or args.password_file) and not (
        username
    ):
        raise _usage("--auth and the password options need --user (or an account's username)")
    password = None
    if username and needs_password:
        password = _password(args, account, username)
    cafile = args.cafile or (account.cafile if account else None)
    return Server(
        host=host,
        port=port,
        tls=tls,  # type: ignore[arg-type]
        context=_context(cafile, args.insecure_no_verify),
        lmtp=lmtp,
        unix=unix,
        server_name=args.server_name,
        ehlo=args.ehlo or (account.ehlo if account else None),
        timeout=args.timeout,
        username=username,
        password=password,
        mechanism=auth,
    )


def _context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    if insecure:
        if cafile:
            raise _usage("--cafile and --insecure-no-verify contradict each other")
        print(
            "smtpx: warning: certificate checks are off (--insecure-no-verify): anyone "
            "between here and the server can read and change the session",
            file=sys.stderr,
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise CLIError(f"cannot load --cafile {cafile}: {describe(exc)}", EXIT_CONFIG) from None


def _password(args: argparse.Namespace, account: Account | None, username: str) -> str:
    given = [o for o in (args.password_env, args.password_cmd, args.password_file) if o]
    if len(given) > 1:
        raise _usage("give one of --password-env, --password-cmd and --password-file")
    if args.password_env:
        source = _accounts.password_from_env(args.password_env)
    elif args.password_cmd:
        source = _accounts.password_from_command(args.password_cmd)
    elif args.password_file:
        source = _accounts.password_from_file(args.password_file)
    elif account is not None and account.password is not None:
        source = account.password
    else:
        source = _prompt(username)
    return source()


def _prompt(username: str) -> Callable[[], str]:
    def ask() -> str:
        try:
            # getpass reads the terminal, not stdin (which may hold the message).
            tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            raise CLIError(
                f"a password is needed for {username} and there is no terminal to ask on: "
                "use --password-env, --password-cmd or --password-file",
                EXIT_CONFIG,
            ) from None
        os.close(tty)
        return getpass.getpass(f"Password for {username}: ")

    return ask
