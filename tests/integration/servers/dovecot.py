"""A private Dovecot LMTP server on loopback TCP and on a unix socket.

``dovecot -c CONF -F`` runs from a work directory that holds its config,
base_dir (sockets, pid file), state_dir, log and the users' maildirs; nothing
under /etc/dovecot is read. Users come from a passwd-file:

- ``alice@example.test``: an ordinary mailbox;
- ``full@example.test``: a 10-byte quota, so LMTP accepts it at RCPT but
  refuses the message after DATA with ``552 5.2.2`` (``lmtp_rcpt_check_quota``
  is off): the per-recipient reply that only LMTP has (RFC 2033 section 4.2);
- ``tempfull@example.test``: the same with ``quota_full_tempfail``, so that
  reply is a transient ``452``;
- any other address: ``550 5.1.1 User doesn't exist`` at RCPT.

STARTTLS is offered with the trustme certificate. Run
``python -m tests.integration.servers dovecot`` to start one by hand.
"""

from __future__ import annotations

import os
import pwd
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
    require_root,
)
from ._maildir import Mailbox

__all__ = ["DovecotLMTPServer"]

DOMAIN = "example.test"
USER = "alice@example.test"
QUOTA_FULL_USER = "full@example.test"
QUOTA_TEMPFAIL_USER = "tempfull@example.test"
UNKNOWN_USER = "nobody@example.test"
USERS = (USER, QUOTA_FULL_USER, QUOTA_TEMPFAIL_USER)
# The mail users' uid (Dovecot refuses uids below first_valid_uid = 500).
DELIVERY_USER = "nobody"
LMTP_BINARY_DIRS = ("/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot")
START_ATTEMPTS = 3


def _dovecot_conf(workdir: Path, tls: TLSFiles, port: int) -> str:
    users = workdir / "conf" / "users"
    return f"""\
protocols = lmtp
listen = 127.0.0.1
base_dir = {workdir / "run"}
state_dir = {workdir / "state"}
log_path = {workdir / "dovecot.log"}
info_log_path = {workdir / "dovecot.log"}
debug_log_path = {workdir / "dovecot.log"}
hostname = localhost.test
postmaster_address = postmaster@{DOMAIN}

ssl = yes
ssl_cert = <{tls.cert_file}
ssl_key = <{tls.key_file}

mail_location = maildir:~/Maildir
mail_plugins = quota
# Check quota after DATA, not at RCPT: that is what yields per-recipient replies.
lmtp_rcpt_check_quota = no

passdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}

plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=100M
  # No grace: a user at 10 bytes cannot take even one small message.
  quota_grace = 0
}}

service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener {workdir / "lmtp.sock"} {{
    mode = 0666
  }}
}}
"""


class DovecotLMTPServer(BaseServer):
    """A running private Dovecot LMTP; use ``DovecotLMTPServer.start()`` and ``stop()``."""

    name = "dovecot"
    domain = DOMAIN
    user = USER
    quota_full_user = QUOTA_FULL_USER
    quota_tempfail_user = QUOTA_TEMPFAIL_USER
    unknown_user = UNKNOWN_USER
    users = USERS

    def __init__(self, workdir: Path, tls: TLSFiles) -> None:
        super().__init__(workdir, tls)
        self.socket_path = str(workdir / "lmtp.sock")

    @staticmethod
    def check_installed() -> str:
        """The path of ``dovecot``; raises ServerUnavailable if it cannot run here."""
        dovecot = find_program("dovecot")
        if dovecot is None:
            raise ServerUnavailable(
                "Dovecot is not installed: apt-get install dovecot-core dovecot-lmtpd "
                "(scripts/test.sh does)"
            )
        if not any(Path(directory, "lmtp").exists() for directory in LMTP_BINARY_DIRS):
            raise ServerUnavailable(
                "Dovecot's LMTP server is not installed: apt-get install dovecot-lmtpd"
            )
        require_root("Dovecot")
        for user in ("dovecot", "dovenull", DELIVERY_USER):
            try:
                pwd.getpwnam(user)
            except KeyError as exc:
                raise ServerUnavailable(f"Dovecot is not set up: no user {user!r}") from exc
        return dovecot

    def _configure(self) -> None:
        delivery = pwd.getpwnam(DELIVERY_USER)
        mail = self.workdir / "mail"
        mail.mkdir(mode=0o755)
        os.chown(mail, delivery.pw_uid, delivery.pw_gid)
        extra = {
            USER: "",
            QUOTA_FULL_USER: "userdb_quota_rule=*:storage=10B",
            QUOTA_TEMPFAIL_USER: "userdb_quota_rule=*:storage=10B userdb_quota_full_tempfail=yes",
        }
        # passwd-file: user:password:uid:gid:gecos:home:shell:extra_fields
        lines = [
            f"{user}::{delivery.pw_uid}:{delivery.pw_gid}::{mail / user.partition('@')[0]}::{x}\n"
            for user, x in extra.items()
        ]
        users = self.workdir / "conf" / "users"
        users.write_text("".join(lines))
        users.chmod(0o644)  # read by the auth process, which runs as user dovecot

    def _run(self, dovecot: str) -> None:
        config = self.workdir / "conf" / "dovecot.conf"
        for attempt in range(1, START_ATTEMPTS + 1):
            (self.port,) = free_ports(1)
            config.write_text(_dovecot_conf(self.workdir, self.tls, self.port))
            self.process = ServerProcess(
                "dovecot",
                [dovecot, "-c", str(config), "-F"],
                self.workdir,
                pidfile=self.workdir / "run" / "master.pid",
                logs=[self.workdir / "dovecot.log"],
                fatal_markers=(": Fatal: ", ": Panic: "),
            )
            self.process.start()
            try:
                self.process.wait_until(self._ready, f"LMTP greeting on port {self.port}")
                return
            except ServerStartError as exc:
                self.process.stop()
                if attempt == START_ATTEMPTS or "Address already in use" not in str(exc):
                    raise

    def _ready(self) -> bool:
        for address in ((self.host, self.port), self.socket_path):
            if isinstance(address, str) and not os.path.exists(address):
                return False
            banner = read_banner(address)
            if not banner.startswith(b"220 "):
                raise ServerStartError(f"unexpected LMTP greeting {banner!r} from {address!r}")
        return True

    def mailbox(self, address: str) -> Mailbox:
        """The maildir that mail for ``address`` (one of ``users``) is delivered to."""
        if address not in USERS:
            raise KeyError(address)
        # Dovecot's LMTP writes Delivered-To only when the transaction has one recipient.
        path = self.workdir / "mail" / address.partition("@")[0] / "Maildir"
        return Mailbox(address, path, delivered_to_always=False)
