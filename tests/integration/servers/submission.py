"""Postfix submission with Dovecot SASL, plus an OAuth 2.0 introspection endpoint.

Three pieces, each private to one work dir and on loopback only:

- a Dovecot instance that runs nothing but its ``auth`` service (``protocols =
  none``), listening on a unix socket in the work dir, with two passdbs: a
  passwd-file of ``{PLAIN}`` passwords (Dovecot derives what CRAM-MD5 and SCRAM
  need from the plaintext) for PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1 and
  SCRAM-SHA-256, and an ``oauth2`` passdb for XOAUTH2 and OAUTHBEARER;
- an :class:`IntrospectionEndpoint` (RFC 7662) that the oauth2 passdb asks about
  every bearer token (``introspection_mode = post``; no auth cache, so every
  login reaches it);
- a Postfix whose smtpd hands AUTH to that socket (``smtpd_sasl_type =
  dovecot``) and delivers into maildirs like :class:`PostfixServer`.

OAuth2 goes through the Postfix submission port too (Dovecot's own submission
service would need the ``dovecot-submissiond`` package and a relay; Postfix's
Dovecot SASL client forwards any mechanism the auth service lists, and the
token check lives in the auth service either way).

The ports (all on 127.0.0.1):

=====================  ==========  ========================================
attribute              TLS         AUTH
=====================  ==========  ========================================
``port``               STARTTLS,   only after STARTTLS (``smtpd_tls_auth_only``);
                       required    MAIL before STARTTLS gets ``530``
``smtps_port``         implicit    yes
``optional_tls_port``  STARTTLS    offered before STARTTLS too (cleartext)
                       offered
``plaintext_auth_port`` none       offered in cleartext, no STARTTLS at all
``no_tls_port``        none        not offered
=====================  ==========  ========================================

What this Dovecot cannot do, checked against the installed 2.3.19:

- **SCRAM-SHA-1-PLUS / SCRAM-SHA-256-PLUS**: Dovecot 2.3 has no channel binding
  (its auth binary has SCRAM-SHA-1 and SCRAM-SHA-256 only), and Postfix's
  Dovecot SASL client could not pass channel-binding data anyway: its request
  line is ``AUTH id mech service=smtp nologin lip= rip= [secured] resp=``.
- **EXTERNAL**: Dovecot has the mechanism, but it needs the client
  certificate's user name (``cert_username``) from the login process; Postfix
  sends no certificate facts to the auth service, so EXTERNAL is never offered
  here. Both are served by the embedded server in ``embedded_sasl.py``.

Run ``python -m tests.integration.servers submission`` to start one by hand.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import unicodedata
from pathlib import Path

from ._common import (
    BaseServer,
    ServerProcess,
    ServerStartError,
    ServerUnavailable,
    TLSFiles,
    find_program,
    free_ports,
    read_banner,
)
from ._introspection import IntrospectionEndpoint
from ._maildir import Mailbox
from .dovecot import LMTP_BINARY_DIRS
from .postfix import (
    DELIVERY_USER,
    DOMAIN,
    FATAL_LOG_MARKERS,
    MASTER_CF,
    REFUSE_MARKER,
    START_ATTEMPTS,
    PostfixServer,
    _main_cf,
)
from .postfix import USERS as MAILDIRS

__all__ = ["SubmissionServer"]

# SASL user -> password. Written NFC, so SASLprep (RFC 4013: NFKC) leaves them
# as they are; Dovecot 2.3 compares the bytes without normalising them.
# "bob" has an ASCII name and a non-ASCII password; "jöhn" has both non-ASCII
# (Dovecot allows it because auth_username_chars is emptied below).
USERS = {
    "alice@example.test": "s3cret-Alice",
    "bob@example.test": "pässwörd-ñ",
    "jöhn@example.test": "jöhns-pässwörd-ñ",
}
# Mechanisms the password passdb serves, in the spelling of the EHLO AUTH line.
PASSWORD_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")
OAUTH_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
MECHANISMS = PASSWORD_MECHANISMS + OAUTH_MECHANISMS
OAUTH_USER = "alice@example.test"
# Dovecot's auth protocol version this harness speaks for its readiness check.
AUTH_PROTOCOL = "VERSION\t1\t2\n"
AUTH_SOCKET_TIMEOUT = 5.0


def _dovecot_conf(workdir: Path, oauth_conf: Path) -> str:
    users = workdir / "conf" / "sasl-users"
    password_mechs = " ".join(m.lower() for m in PASSWORD_MECHANISMS)
    oauth_mechs = " ".join(m.lower() for m in OAUTH_MECHANISMS)
    return f"""\
# Only the auth service: no IMAP, POP3, LMTP or submission listeners.
protocols = none
listen = 127.0.0.1
base_dir = {workdir / "dovecot-run"}
state_dir = {workdir / "dovecot-state"}
log_path = {workdir / "dovecot.log"}
info_log_path = {workdir / "dovecot.log"}
debug_log_path = {workdir / "dovecot.log"}
ssl = no

auth_mechanisms = {password_mechs} {oauth_mechs}
# Postfix decides where cleartext mechanisms may be used (smtpd_tls_auth_only
# per port); Dovecot must not second-guess it from the loopback addresses.
disable_plaintext_auth = no
# Empty = every character, so that UTF-8 user names (RFC 6531 addresses) work.
auth_username_chars =
auth_verbose = yes
# Every login must reach the introspection endpoint (the tests count calls).
auth_cache_size = 0
# No delay after a failed login: the refusal tests fail on purpose.
auth_failure_delay = 0

passdb {{
  driver = passwd-file
  mechanisms = {password_mechs}
  args = scheme=PLAIN username_format=%u {users}
}}
passdb {{
  driver = oauth2
  mechanisms = {oauth_mechs}
  args = {oauth_conf}
}}
# Postfix only authenticates (``nologin``): no user lookup, but Dovecot wants one.
userdb {{
  driver = static
  args = uid={DELIVERY_USER} gid=nogroup home=/nonexistent
}}

# Dovecot delays every login from an address with recent failures by up to
# 15 s (its "auth penalty", kept by anvil); the refusal tests fail on purpose,
# all from 127.0.0.1. Mode 0 leaves that anvil socket out, and without it the
# auth process keeps no penalty (measured: 52 tests in 10 s instead of 74 s).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service auth {{
  unix_listener {workdir / "auth-postfix"} {{
    mode = 0666
  }}
}}
"""


def _oauth_conf(introspection_url: str) -> str:
    return f"""\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


# Per-port smtpd options, appended to the stock master.cf by _run.
_PORTS = {
    "port": (
        "smtpd_tls_security_level=encrypt",
        "smtpd_tls_auth_only=yes",
        "smtpd_sasl_auth_enable=yes",
    ),
    "smtps_port": (
        "smtpd_tls_wrappermode=yes",
        "smtpd_tls_security_level=encrypt",
        "smtpd_sasl_auth_enable=yes",
    ),
    "optional_tls_port": (
        "smtpd_tls_security_level=may",
        "smtpd_tls_auth_only=no",
        "smtpd_sasl_auth_enable=yes",
    ),
    "plaintext_auth_port": (
        "smtpd_tls_security_level=none",
        "smtpd_tls_auth_only=no",
        "smtpd_sasl_auth_enable=yes",
    ),
    "no_tls_port": ("smtpd_tls_security_level=none", "smtpd_sasl_auth_enable=no"),
}


def _sasl_cf(workdir: Path) -> str:
    return f"""
smtpd_sasl_type = dovecot
smtpd_sasl_path = {workdir / "auth-postfix"}
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
broken_sasl_auth_clients = no
"""


class SubmissionServer(BaseServer):
    """Postfix submission with Dovecot SASL; ``SubmissionServer.start()`` and ``stop()``.

    Example:
        >>> with SubmissionServer.start() as server:  # doctest: +SKIP
        ...     with smtpx.SMTP(server.host, server.port, timeout=10) as smtp:
        ...         smtp.starttls(context=server.client_context())
        ...         smtp.login("alice@example.test", server.users["alice@example.test"])
    """

    name = "submission"
    domain = DOMAIN
    users = USERS
    mechanisms = MECHANISMS
    password_mechanisms = PASSWORD_MECHANISMS
    oauth_mechanisms = OAUTH_MECHANISMS
    oauth_user = OAUTH_USER
    # Neither can be had through Postfix with Dovecot 2.3: see the module docstring.
    unsupported_mechanisms = ("SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "EXTERNAL")

    def __init__(self, workdir: Path, tls: TLSFiles) -> None:
        super().__init__(workdir, tls)
        self.smtps_port = 0
        self.optional_tls_port = 0
        self.plaintext_auth_port = 0
        self.no_tls_port = 0
        self.auth_socket = str(workdir / "auth-postfix")
        # A fresh token per run: nothing outside this test session knows it.
        self.oauth_token = "ya29.test-" + secrets.token_urlsafe(24)
        self.dovecot_process: ServerProcess | None = None
        self.introspection: IntrospectionEndpoint | None = None
        # Mechanisms the Dovecot auth service listed in its handshake.
        self.auth_service_mechanisms: tuple[str, ...] = ()

    @staticmethod
    def check_installed() -> str:
        """The path of ``postfix``; raises ServerUnavailable if Postfix or Dovecot is missing."""
        if find_program("dovecot") is None or not any(
            Path(directory, "auth").exists() for directory in LMTP_BINARY_DIRS
        ):
            raise ServerUnavailable(
                "Dovecot is not installed: apt-get install dovecot-core (scripts/test.sh does)"
            )
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError as exc:
                raise ServerUnavailable(f"Dovecot is not set up: no user {user!r}") from exc
        return PostfixServer.check_installed()  # also requires root

    def _configure(self) -> None:
        delivery = pwd.getpwnam(DELIVERY_USER)
        (self.workdir / "queue").mkdir(mode=0o755)
        mail = self.workdir / "mail"
        mail.mkdir(mode=0o755)
        os.chown(mail, delivery.pw_uid, delivery.pw_gid)
        conf = self.workdir / "conf"
        (conf / "main.cf").write_text(
            _main_cf(self.workdir, self.tls, delivery.pw_uid, delivery.pw_gid)
            + _sasl_cf(self.workdir)
        )
        (conf / "vmailbox").write_text(
            "".join(f"{address} {DOMAIN}/{folder}/\n" for address, folder in MAILDIRS.items()),
            encoding="utf-8",
        )
        (conf / "recipient_access").write_text("")
        # _main_cf names a header_checks table; without it cleanup fails every message
        # ("451 4.3.0 queue file write error").
        (conf / "header_checks").write_text(
            f"/^Subject:.*{REFUSE_MARKER}/ REJECT 5.7.1 message refused\n"
        )
        lines = []
        for user, password in USERS.items():
            # passwd-file fields are split at ':'; SASLprep must be a no-op (see USERS).
            if ":" in user + password or unicodedata.normalize("NFKC", password) != password:
                raise ValueError(f"unusable test credentials for {user!r}")
            lines.append(f"{user}:{{PLAIN}}{password}::::::\n")
        users = conf / "sasl-users"
        users.write_text("".join(lines), encoding="utf-8")
        users.chmod(0o644)  # read by the auth process, which runs as user dovecot

    def _run(self, postfix: str) -> None:
        self.introspection = IntrospectionEndpoint({self.oauth_token: OAUTH_USER})
        self._run_dovecot()
        self._run_postfix(postfix)

    def _run_dovecot(self) -> None:
        dovecot = find_program("dovecot")
        assert dovecot is not None  # check_installed made sure
        assert self.introspection is not None
        conf = self.workdir / "conf"
        (conf / "oauth2.conf").write_text(_oauth_conf(self.introspection.url))
        config = conf / "dovecot.conf"
        config.write_text(_dovecot_conf(self.workdir, conf / "oauth2.conf"))
        self.dovecot_process = ServerProcess(
            "dovecot",
            [dovecot, "-c", str(config), "-F"],
            self.workdir,
            pidfile=self.workdir / "dovecot-run" / "master.pid",
            logs=[self.workdir / "dovecot.log"],
            fatal_markers=(": Fatal: ", ": Panic: "),
        )
        self.dovecot_process.start()
        self.dovecot_process.wait_until(self._auth_ready, f"auth socket {self.auth_socket}")

    def _auth_ready(self) -> bool:
        if not os.path.exists(self.auth_socket):
            return False
        self.auth_service_mechanisms = auth_service_mechanisms(self.auth_socket)
        missing = set(MECHANISMS) - set(self.auth_service_mechanisms)
        if missing:
            raise ServerStartError(
                f"Dovecot's auth service lacks {sorted(missing)}: "
                f"it lists {self.auth_service_mechanisms}"
            )
        return True

    def _run_postfix(self, postfix: str) -> None:
        conf = self.workdir / "conf"
        for attempt in range(1, START_ATTEMPTS + 1):
            ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
            for attribute, number in ports.items():
                setattr(self, attribute, number)
            services = "".join(
                f"{self.host}:{number} inet n - n - - smtpd\n"
                + "".join(f"  -o {option}\n" for option in _PORTS[attribute])
                for attribute, number in ports.items()
            )
            (conf / "master.cf").write_text(services + MASTER_CF)
            self.process = ServerProcess(
                "postfix",
                [postfix, "-c", str(conf), "start-fg"],
                self.workdir,
                pidfile=self.workdir / "queue" / "pid" / "master.pid",
                logs=[self.workdir / "maillog"],
                fatal_markers=FATAL_LOG_MARKERS,
            )
            self.process.start()
            try:
                self.process.wait_until(self._ready, f"SMTP greetings on ports {ports}")
                return
            except ServerStartError as exc:
                self.process.stop()
                if attempt == START_ATTEMPTS or "Address already in use" not in str(exc):
                    raise

    def _ready(self) -> bool:
        for port in (self.port, self.optional_tls_port, self.plaintext_auth_port, self.no_tls_port):
            banner = read_banner((self.host, port))
            if not banner.startswith(b"220 "):
                raise ServerStartError(f"unexpected greeting {banner!r} on port {port}")
        banner = read_banner((self.host, self.smtps_port), context=self.client_context())
        if not banner.startswith(b"220 "):
            raise ServerStartError(f"unexpected greeting {banner!r} on port {self.smtps_port}")
        return True

    def mailbox(self, address: str) -> Mailbox:
        """The maildir that mail for ``address`` is delivered to (as in PostfixServer)."""
        return Mailbox(address, self.workdir / "mail" / DOMAIN / MAILDIRS[address])

    def password(self, user: str) -> str:
        return USERS[user]

    def diagnostics(self) -> str:
        parts = [
            "--- postfix ---",
            self.process.diagnostics() if self.process else "(not started)",
            "--- dovecot auth ---",
            self.dovecot_process.diagnostics() if self.dovecot_process else "(not started)",
        ]
        return "\n".join(parts)

    def stop(self, *, keep_workdir: bool = False) -> None:
        # Postfix first: it is the auth service's only client.
        if self.process is not None:
            self.process.stop()
        if self.dovecot_process is not None:
            self.dovecot_process.stop()
        if self.introspection is not None:
            self.introspection.stop()
        super().stop(keep_workdir=keep_workdir)


def auth_service_mechanisms(path: str) -> tuple[str, ...]:
    """The mechanisms a Dovecot auth socket lists (its client handshake).

    The server speaks first: ``VERSION``, ``MECH name flags...`` lines, ``SPID``,
    ``CUID``, ``COOKIE`` and ``DONE``; the client's ``VERSION`` and ``CPID``
    may be sent at once.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(AUTH_SOCKET_TIMEOUT)
        sock.connect(path)
        sock.sendall(f"{AUTH_PROTOCOL}CPID\t{os.getpid()}\n".encode())
        data = b""
        while not (data.startswith(b"DONE\n") or b"\nDONE\n" in data):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{path} closed during the auth handshake: {data!r}")
            data += chunk
    lines = data.decode().splitlines()
    return tuple(line.split("\t")[1] for line in lines if line.startswith("MECH\t"))
