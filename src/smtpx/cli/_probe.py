"""``smtpx probe``: what a server offers, its certificate, and the checks an operator wants.

The probe connects, reads the greeting, sends EHLO, starts TLS (STARTTLS when offered, or
implicit TLS for ``smtps://`` and port 465), reads the certificate chain and sends EHLO
again. It then runs the operator checks: STARTTLS offered, AUTH kept off plaintext, the
certificate trusted, matching the host name and current, PIPELINING honoured and, only
with ``--send-test``, whether a message with a bare LF is accepted. It sends no mail
unless ``--send-test`` is given. Output is for people, or JSON with ``--json``.

Exit status: 0 when the probe ran (whatever the checks found), 1 when a check failed and
``--strict`` was given, 2 for bad arguments, 3 when the probe could not run (no
connection, no greeting, a refused session, a failed implicit TLS handshake).

Example:
    $ smtpx probe smtp://mail.example.org --json
    {"probe_version": 1, "target": {"host": "mail.example.org", ...}, ...}
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import select
import smtplib
import ssl
import sys
import uuid
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, TextIO

import smtpx
from smtpx._url import parse_url

from ._certificate import CertificateFacts, hostname_matches, parse_certificate
from ._probe_report import print_human

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_NOT_RUN",
    "EXIT_OK",
    "EXIT_USAGE",
    "CertificateFacts",
    "hostname_matches",
    "parse_certificate",
    "register",
    "run",
]

PROG = "smtpx probe"
EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # only with --strict
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_NOT_RUN = 3
#: Bumped when a key of the JSON report changes meaning or goes away.
PROBE_VERSION = 1
# Seconds for each network operation; a probe talks to one server, interactively.
_DEFAULT_TIMEOUT = 10.0
# How long to listen for replies nobody asked for after a pipelined group: long enough
# for a loopback or LAN server to have answered twice, short enough not to slow the probe.
_EXTRA_REPLY_WAIT = 0.3
# The pipelined group: RFC 2920 section 3.1 lets RSET and MAIL appear anywhere in a
# group and NOOP only last. MAIL's reply is told apart from the others by its code or
# its enhanced status (X.1.0, RFC 3463), which shows whether replies come in order.
_PIPELINE = ("RSET", "MAIL FROM:<>", "RSET", "NOOP")
# OpenSSL's verify codes for a name that does not match (x509_vfy.h).
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_IMPLICIT_TLS_PORT = 465


class ProbeError(Exception):
    """The probe could not run: reported on one line, exit status 3."""


# ------------------------------------------------------------------ arguments


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``probe`` subcommand to the ``smtpx`` parser."""
    parser = subparsers.add_parser(
        "probe",
        help="show what an SMTP server offers and check its TLS and configuration",
        description=(
            "Connect to an SMTP or LMTP server and report its greeting, EHLO "
            "capabilities, SIZE and AUTH mechanisms before and after TLS, the TLS "
            "certificate chain, and operator checks. Sends no mail unless --send-test."
        ),
        epilog=(
            "exit status: 0 the probe ran, 1 a check failed (--strict only), "
            "2 bad arguments, 3 the probe could not run"
        ),
    )
    parser.add_argument(
        "target",
        metavar="SERVER",
        type=_target_argument,
        help="a URL (smtp://, smtp+starttls://, smtps://, lmtp://, lmtp+unix://) "
        "or HOST[:PORT] (port 25 by default; 465 means implicit TLS)",
    )
    parser.add_argument(
        "--tls",
        choices=("auto", "starttls", "implicit", "none"),
        help="auto: implicit TLS for smtps:// and port 465, else STARTTLS when offered "
        "(the default); none: stay in plaintext",
    )
    parser.add_argument(
        "--tls-name",
        metavar="NAME",
        type=_line,
        help="name the certificate must match (and SNI), when not the host",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="trust these CA certificates (PEM) instead of the system's",
    )
    parser.add_argument(
        "--ehlo",
        metavar="NAME",
        type=_line,
        default="localhost",
        help="the EHLO name (default: localhost)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=_DEFAULT_TIMEOUT,
        help=f"per network operation (default: {_DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--send-test",
        action="store_true",
        help="send one test message with a bare LF to --rcpt; report if the server accepts it",
    )
    parser.add_argument(
        "--rcpt", metavar="ADDRESS", type=_line, help="recipient of the --send-test message"
    )
    parser.add_argument(
        "--from",
        dest="sender",
        metavar="ADDRESS",
        type=_line,
        default="",
        help="sender of the --send-test message (default: the null sender <>)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON (keys in docs/cli.md)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a check fails"
    )


class Target:
    """Where to probe and how, from the SERVER argument."""

    def __init__(self, host: str, port: int, tls: str, lmtp: bool, unix: bool) -> None:
        self.host, self.port, self.tls, self.lmtp, self.unix = host, port, tls, lmtp, unix

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": None if self.unix else self.port,
            "tls": self.tls,
            "lmtp": self.lmtp,
        }


def parse_target(text: str) -> Target:
    """The SERVER argument: a server URL, or ``host[:port]``.

    Example:
        >>> t = parse_target("mail.example.org:465")
        >>> t.host, t.port, t.tls
        ('mail.example.org', 465, 'implicit')
        >>> parse_target("smtp+starttls://[::1]").port
        587
    """
    if "://" in text:
        endpoint = parse_url(text)
        tls = {"implicit": "implicit", "starttls": "starttls", "none": "auto"}[endpoint.tls]
        return Target(endpoint.host, endpoint.port, tls, endpoint.lmtp, endpoint.unix)
    if any(c in text for c in "\r\n\0") or not text.strip():
        raise ValueError("give a host name, HOST:PORT or a server URL")
    host, port = text, smtpx.SMTP_PORT
    if text.startswith("["):  # [IPv6]:port
        inner, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}: write [IPv6]:PORT")
        host, port_text = inner, rest[1:]
        port = _port(port_text) if port_text else port
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text)
    elif ":" in text:
        try:  # a bare IPv6 address, without a port
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"bad address {text!r}: write HOST:PORT or [IPv6]:PORT") from None
    if not host:
        raise ValueError(f"{text!r} names no host")
    return Target(host, port, "implicit" if port == _IMPLICIT_TLS_PORT else "auto", False, False)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r}")
    return int(text)


def _target_argument(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _line(text: str) -> str:
    # A value that ends up in a command or a header: CR, LF or NUL would inject.
    if any(c in text for c in "\r\n\0"):
        raise argparse.ArgumentTypeError("CR, LF and NUL are not allowed")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 3600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError("give a number of seconds above 0 and below 3600")
    return value


# ------------------------------------------------------------------ running


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``smtpx probe`` with parsed arguments and return the exit status."""
    out = sys.stdout if out is None else out
    if args.send_test and not args.rcpt:
        print(
            f"{PROG}: error: --send-test needs --rcpt ADDRESS (see smtpx probe --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.rcpt and not args.send_test:
        print(f"{PROG}: error: --rcpt is only used with --send-test", file=sys.stderr)
        return EXIT_USAGE
    target: Target = args.target
    if args.tls is not None:
        target.tls = args.tls
    if target.lmtp and target.tls == "implicit":
        print(f"{PROG}: error: LMTP has no implicit TLS; use --tls starttls", file=sys.stderr)
        return EXIT_USAGE
    try:
        context = _verifying_context(args.ca_file)
    except (OSError, ssl.SSLError) as exc:
        print(f"{PROG}: error: cannot load --ca-file: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    probe = _Probe(target, args, context)
    report = probe.run()
    if args.json:
        json.dump(report, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        print_human(report, out)
    if report["error"] is not None:
        if not args.json:
            print(f"{PROG}: error: {report['error']}", file=sys.stderr)
        return EXIT_NOT_RUN
    failed = any(check["result"] == "fail" for check in report["checks"].values())
    return EXIT_CHECK_FAILED if args.strict and failed else EXIT_OK


def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _unverified_context() -> ssl.SSLContext:
    # Only to read a certificate the verifying handshake refused, so it can be shown;
    # the probe sends no credentials, and mail only with --send-test.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Probe:
    def __init__(self, target: Target, args: argparse.Namespace, context: ssl.SSLContext) -> None:
        self.target = target
        self.args = args
        self.context = context
        # A unix socket has no host name to check: only --tls-name gives one.
        self.tls_name: str | None = args.tls_name or (None if target.unix else target.host)
        if self.tls_name is None:
            context.check_hostname = False
        self.report: dict[str, Any] = {
            "probe_version": PROBE_VERSION,
            "target": target.as_dict(),
            "greeting": None,
            "ehlo": None,
            "tls": None,
            "ehlo_after_tls": None,
            "checks": {},
            "error": None,
        }

    # -- the session -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        client: smtpx.SMTP | None = None
        try:
            client = self._session()
            self._post_checks(client)
        except ProbeError as exc:
            self.report["error"] = str(exc)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            self.report["error"] = _one_line(exc)
        finally:
            if client is not None:
                _quit(client)
        self._static_checks()
        order = (
            "starttls_offered",
            "auth_not_in_plaintext",
            "tls_certificate_trusted",
            "tls_hostname_match",
            "tls_certificate_current",
            "pipelining_honoured",
            "bare_lf_rejected",
        )
        checks = self.report["checks"]
        self.report["checks"] = {name: checks[name] for name in order if name in checks}
        return self.report

    def _client(self, context: ssl.SSLContext | None) -> smtpx.SMTP:
        timeout = self.args.timeout
        client: smtpx.SMTP
        if self.target.lmtp:
            client = smtpx.LMTP(local_hostname=self.args.ehlo, timeout=timeout)
        elif self.target.tls == "implicit":
            client = smtpx.SMTP_SSL(local_hostname=self.args.ehlo, timeout=timeout, context=context)
        else:
            client = smtpx.SMTP(local_hostname=self.args.ehlo, timeout=timeout)
        if self.args.tls_name:
            client._tls_server_name = self.args.tls_name
        elif self.target.unix:
            # ssl refuses an empty server_hostname; a unix socket's peer is local by
            # definition, and its name is not checked (see tls_name).
            client._tls_server_name = "localhost"
        return client

    def _connect(self, context: ssl.SSLContext | None, *, first: bool) -> smtpx.SMTP:
        client = self._client(context)
        target = self.target
        try:
            code, text = client.connect(target.host, target.port)
        except ssl.SSLCertVerificationError:
            client.close()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            client.close()
            where = target.host if target.unix else f"{target.host}:{target.port}"
            raise ProbeError(f"cannot connect to {where}: {_one_line(exc)}") from None
        if first:
            self.report["greeting"] = {"code": code, "text": _text(text)}
        if code != 220:
            client.close()
            raise ProbeError(f"the server refused the session: {code} {_text(text)}")
        return client

    def _ehlo(self, client: smtpx.SMTP) -> dict[str, Any]:
        code, text = client.ehlo()
        esmtp = 200 <= code < 300
        if not esmtp and not self.target.lmtp:
            code, text = client.helo()
        if not 200 <= code < 300:
            raise ProbeError(f"the server refused EHLO and HELO: {code} {_text(text)}")
        lines = _text(text).split("\n")
        features = client.esmtp_features if esmtp else {}
        size_text = features.get("size", "").strip()
        return {
            "code": code,
            "esmtp": esmtp,
            "hostname": lines[0],
            "extensions": lines[1:] if esmtp else [],
            "size": int(size_text) if size_text.isdigit() else None,
            "auth": features.get("auth", "").upper().split() if "auth" in features else None,
            "starttls": "starttls" in features,
            "pipelining": "pipelining" in features,
        }

    def _session(self) -> smtpx.SMTP:
        mode = self.target.tls
        if mode == "implicit":
            try:
                client = self._connect(self.context, first=True)
                verification: ssl.SSLCertVerificationError | None = None
            except ssl.SSLCertVerificationError as exc:
                verification = exc
                client = self._connect(_unverified_context(), first=True)
            self._record_tls(client, "implicit", verification)
            self.report["ehlo"] = self._ehlo(client)
            return client
        client = self._connect(None, first=True)
        before = self.report["ehlo"] = self._ehlo(client)
        if mode == "none" or (not before["starttls"] and mode == "auto"):
            return client
        if not before["starttls"]:
            self.report["tls"] = {"mode": "starttls", "error": "STARTTLS is not offered"}
            return client
        try:
            client.starttls(context=self.context)
            verification = None
        except ssl.SSLCertVerificationError as exc:
            verification = exc
            client = self._connect(None, first=False)
            self._ehlo(client)
            client.starttls(context=_unverified_context())
        except (ssl.SSLError, smtplib.SMTPResponseException) as exc:
            self.report["tls"] = {"mode": "starttls", "error": _one_line(exc)}
            if client.sock is None:  # the handshake failed: the session is gone
                raise ProbeError(f"STARTTLS failed: {_one_line(exc)}") from None
            return client
        self._record_tls(client, "starttls", verification)
        self.report["ehlo_after_tls"] = self._ehlo(client)
        return client

    def _record_tls(
        self, client: smtpx.SMTP, mode: str, failure: ssl.SSLCertVerificationError | None
    ) -> None:
        sock = client.sock
        verified = failure is None
        chain_der = _chain(sock, verified=verified)
        chain: list[dict[str, Any]] = []
        for der in chain_der:
            try:
                chain.append(parse_certificate(der).as_dict())
            except ValueError as exc:
                chain.append({"error": str(exc)})
        leaf = parse_certificate(chain_der[0]) if chain_der else None
        name_ok: bool | None
        if self.tls_name is None:
            trusted, name_ok = verified, None
        elif verified:
            trusted, name_ok = True, True
        elif failure is not None and failure.verify_code in _NAME_MISMATCH:
            trusted, name_ok = True, False
        else:
            # OpenSSL stops at the first error, so it did not check the name: check it here.
            trusted = False
            name_ok = leaf is not None and hostname_matches(self.tls_name, leaf.sans)
        cipher = sock.cipher()
        self.report["tls"] = {
            "mode": mode,
            "error": None,
            "version": sock.version(),
            "cipher": cipher[0] if cipher else None,
            "verified": verified,
            "verify_error": None if failure is None else _verify_message(failure),
            "chain_trusted": trusted,
            "hostname": self.tls_name,
            "hostname_match": name_ok,
            "chain": chain,
        }

    # -- checks ----------------------------------------------------------------

    def _check(self, name: str, result: str, detail: str) -> None:
        self.report["checks"][name] = {"result": result, "detail": detail}

    def _static_checks(self) -> None:
        """The checks read off the report: STARTTLS, AUTH, the certificate."""
        ehlo, tls = self.report["ehlo"], self.report["tls"]
        implicit = self.target.tls == "implicit"
        if ehlo is not None and not implicit:
            if ehlo["starttls"]:
                self._check("starttls_offered", "pass", "STARTTLS is offered")
            else:
                self._check("starttls_offered", "fail", "STARTTLS is not offered")
            # RFC 4954 section 4 and RFC 8314 section 3: no password in the clear.
            if ehlo["auth"]:
                self._check(
                    "auth_not_in_plaintext",
                    "fail",
                    "AUTH " + " ".join(ehlo["auth"]) + " is offered before TLS",
                )
            else:
                self._check("auth_not_in_plaintext", "pass", "no AUTH before TLS")
        elif implicit and ehlo is not None:
            self._check("starttls_offered", "skip", "implicit TLS")
            self._check("auth_not_in_plaintext", "pass", "the session is TLS from the start")
        if tls is None or tls.get("error") is not None:
            why = "no TLS session" if tls is None else tls["error"]
            for name in (
                "tls_certificate_trusted",
                "tls_hostname_match",
                "tls_certificate_current",
            ):
                self._check(name, "skip", why)
            return
        if tls["chain_trusted"]:
            self._check("tls_certificate_trusted", "pass", "the chain verifies")
        else:
            self._check("tls_certificate_trusted", "fail", tls["verify_error"] or "not verified")
        name = tls["hostname"]
        if name is None:
            self._check("tls_hostname_match", "skip", "a unix socket has no host name (--tls-name)")
        elif tls["hostname_match"]:
            self._check("tls_hostname_match", "pass", f"the certificate is valid for {name}")
        else:
            self._check("tls_hostname_match", "fail", f"the certificate is not valid for {name}")
        leaf = tls["chain"][0] if tls["chain"] else {}
        days = leaf.get("expires_in_days")
        if days is None:
            self._check("tls_certificate_current", "skip", "no readable certificate")
        elif leaf["not_yet_valid"]:
            self._check("tls_certificate_current", "fail", f"not valid before {leaf['not_before']}")
        elif days < 0:
            self._check("tls_certificate_current", "fail", f"expired {-days} days ago")
        else:
            self._check("tls_certificate_current", "pass", f"expires in {days} days")

    def _post_checks(self, client: smtpx.SMTP) -> None:
        """The checks that talk to the server: pipelining, then the bare LF message."""
        ehlo = self.report["ehlo_after_tls"] or self.report["ehlo"]
        if not ehlo["pipelining"]:
            self._check("pipelining_honoured", "skip", "PIPELINING is not advertised")
        else:
            result, detail = _check_pipelining(client)
            self._check("pipelining_honoured", result, detail)
        if not self.args.send_test:
            self._check("bare_lf_rejected", "skip", "no test message sent (see --send-test)")
        elif client.sock is None:
            self._check("bare_lf_rejected", "skip", "the connection was lost")
        else:
            result, detail = _check_bare_lf(client, self.args.sender, self.args.rcpt)
            self._check("bare_lf_rejected", result, detail)


def _check_pipelining(client: smtpx.SMTP) -> tuple[str, str]:
    """Send a pipelined group (RFC 2920) in one write and read the replies."""
    group = "".join(f"{command}\r\n" for command in _PIPELINE)
    replies: list[tuple[int, bytes]] = []
    try:
        client.send(group)
        for _ in _PIPELINE:
            replies.append(client.getreply())
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        client.close()
        return "fail", (
            f"{len(replies)} of {len(_PIPELINE)} replies to a pipelined group, then: "
            f"{_one_line(exc)}"
        )
    codes = [code for code, _ in replies]
    shown = " ".join(str(code) for code in codes)
    mail_like = [index for index, reply in enumerate(replies) if _mail_reply(reply)]
    if any(index != 1 for index in mail_like):
        return "fail", f"replies out of order or not one per command: {shown}"
    if codes[0] // 100 != 2 or codes[2] // 100 != 2:
        return "skip", f"the server refused RSET ({shown}); cannot tell"
    if _more_to_read(client):
        client.close()
        return "fail", f"more replies than commands after a group of {len(_PIPELINE)}"
    return "pass", f"{len(_PIPELINE)} commands in one write, replies in order ({shown})"


def _mail_reply(reply: tuple[int, bytes]) -> bool:
    """Whether a reply in the group can only be MAIL's: not a plain 250, or an
    enhanced status about an address (X.1.Y, RFC 3463 section 3.3)."""
    code, text = reply
    if code != 250:
        return True
    parts = text.split(b" ", 1)[0].split(b".")
    return len(parts) == 3 and parts[1] == b"1"


def _more_to_read(client: smtpx.SMTP) -> bool:
    conn = client._conn
    if conn is not None and conn.has_buffered:
        return True
    sock = client.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    readable, _, _ = select.select([sock], [], [], _EXTRA_REPLY_WAIT)
    return bool(readable)


def _check_bare_lf(client: smtpx.SMTP, sender: str, rcpt: str) -> tuple[str, str]:
    """Send one message whose body has a line ending in a bare LF (RFC 5321 section
    2.3.8 forbids it; accepting it is what SMTP smuggling builds on)."""
    token = f"smtpx-probe-{uuid.uuid4().hex}"
    content = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: smtpx probe bare LF test {token}\r\n"
        f"Date: {formatdate(localtime=True)}\r\nMessage-ID: <{token}@smtpx.invalid>\r\n\r\n"
        "This message was sent by smtpx probe --send-test.\r\n"
        "The next line ends with a bare LF:\n"
        "this line follows it.\r\n.\r\n"
    ).encode()
    code, text = client.mail(sender)
    if code != 250:
        return "skip", f"MAIL FROM refused: {code} {_text(text)}"
    code, text = client.rcpt(rcpt)
    if code not in (250, 251):
        client.rset()
        return "skip", f"RCPT TO refused: {code} {_text(text)}"
    code, text = client.docmd("DATA")
    if code != 354:
        client.rset()
        return "skip", f"DATA refused: {code} {_text(text)}"
    try:
        client.send(content)
        code, text = client.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        client.close()
        return "pass", f"the server closed the connection: {_one_line(exc)}"
    if 200 <= code < 300:
        return "fail", f"accepted ({code} {_text(text)}); the message is {token}"
    return "pass", f"rejected: {code} {_text(text)}"


def _quit(client: smtpx.SMTP) -> None:
    try:
        if client.sock is not None:
            client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


def _chain(sock: Any, *, verified: bool) -> list[bytes]:
    """The certificate chain in DER, the server's certificate first.

    The verified chain ends at the trusted root; without verification, the chain is what
    the server sent. Python 3.13 made the methods public; 3.11 and 3.12 have them on the
    SSL object inside the socket.
    """
    name = "get_verified_chain" if verified else "get_unverified_chain"
    getter: Callable[[], Any] | None = getattr(sock, name, None)
    if getter is None:
        getter = getattr(getattr(sock, "_sslobj", None), name, None)
    certificates: list[Any] = []
    if getter is not None:
        try:
            certificates = list(getter() or ())
        except (ssl.SSLError, ValueError):
            certificates = []
    der = [
        item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
        for item in certificates
    ]
    if not der:
        leaf = sock.getpeercert(binary_form=True)
        der = [leaf] if leaf else []
    return der


def _verify_message(exc: ssl.SSLCertVerificationError) -> str:
    return str(exc.verify_message or exc.reason or exc)


# ------------------------------------------------------------------ output


def _text(data: bytes | str) -> str:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return text.strip()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
