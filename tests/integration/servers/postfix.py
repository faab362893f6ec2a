"""A private Postfix instance on loopback, delivering into maildirs under a temp dir.

The instance has its own configuration directory (``postfix -c DIR``), queue,
data directory and log file; nothing under /etc/postfix is read or changed
except the package's read-only meta files. It offers:

- plain SMTP with STARTTLS on ``port`` and implicit TLS on ``smtps_port``
  (certificate for ``localhost``/127.0.0.1 from a throw-away trustme CA);
- PIPELINING, SIZE (``MESSAGE_SIZE_LIMIT``), 8BITMIME, SMTPUTF8, DSN, CHUNKING;
- virtual mailbox delivery for ``example.test``: ``USERS`` maps each accepted
  address to its maildir; ``UNKNOWN_USER`` gets 550 (not in the mailbox
  table), ``DEFERRED_USER`` gets ``450 4.2.0`` from an access map;
- a message whose Subject contains ``REFUSE_MARKER`` is refused after its content
  (``550 5.7.1``, from header_checks).

Run ``python -m tests.integration.servers postfix`` from the repository root
to start one by hand.
"""

from __future__ import annotations

import grp
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

__all__ = ["PostfixServer"]

DOMAIN = "example.test"
# Address -> maildir under virtual_mailbox_base. "jöhn" exercises SMTPUTF8
# end to end: UTF-8 in the envelope, the lookup table and the delivery.
USERS = {
    "alice@example.test": "alice",
    "bob@example.test": "bob",
    "jöhn@example.test": "john",
    # Exists, so a 450 for it can only come from the access map.
    "defer@example.test": "defer",
}
UNKNOWN_USER = "nobody@example.test"
DEFERRED_USER = "defer@example.test"
DEFER_REPLY = "450 4.2.0 try later"
REFUSE_MARKER = "REFUSE-ME"
MESSAGE_SIZE_LIMIT = 10_240_000
# Unprivileged owner of the delivered files (virtual(8) refuses uid < 100).
DELIVERY_USER = "nobody"
# Lines in the maillog that mean this instance cannot work (see wait_until).
FATAL_LOG_MARKERS = (": fatal: ", ": panic: ", "warning: TLS library problem")
# Starting can lose a race for a port picked by free_port(): retry with new ones.
START_ATTEMPTS = 3

# Services of a stock master.cf, none chrooted (the chroot would need copies
# of /etc files inside the queue directory). The two listeners are added per run.
MASTER_CF = """\
pickup     unix  n  -  n  60     1  pickup
cleanup    unix  n  -  n  -      0  cleanup
qmgr       unix  n  -  n  300    1  qmgr
tlsmgr     unix  -  -  n  1000?  1  tlsmgr
rewrite    unix  -  -  n  -      -  trivial-rewrite
bounce     unix  -  -  n  -      0  bounce
defer      unix  -  -  n  -      0  bounce
trace      unix  -  -  n  -      0  bounce
verify     unix  -  -  n  -      1  verify
flush      unix  n  -  n  1000?  0  flush
proxymap   unix  -  -  n  -      -  proxymap
proxywrite unix  -  -  n  -      1  proxymap
smtp       unix  -  -  n  -      -  smtp
relay      unix  -  -  n  -      -  smtp
showq      unix  n  -  n  -      -  showq
error      unix  -  -  n  -      -  error
retry      unix  -  -  n  -      -  error
discard    unix  -  -  n  -      -  discard
local      unix  -  n  n  -      -  local
virtual    unix  -  n  n  -      -  virtual
lmtp       unix  -  -  n  -      -  lmtp
anvil      unix  -  -  n  -      1  anvil
scache     unix  -  -  n  -      1  scache
postlog    unix-dgram n  -  n  -  1  postlogd
"""


def _main_cf(workdir: Path, tls: TLSFiles, delivery_uid: int, delivery_gid: int) -> str:
    conf = workdir / "conf"
    return f"""\
compatibility_level = 3.6
queue_directory = {workdir / "queue"}
data_directory = {workdir / "data"}
# No syslog in a container: postlogd writes this file (Postfix >= 3.4).
maillog_file = {workdir / "maillog"}
maillog_file_prefixes = {workdir}

# Names and networks fixed so that nothing needs DNS (there is no network).
myhostname = localhost.test
mydomain = localhost.test
myorigin = localhost.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
# "connect from localhost[127.0.0.1]:PORT": a test finds its own session in the log.
smtpd_client_port_logging = yes
# Nothing leaves this instance: bounces to senders' domains fail at once.
default_transport = error:5.7.1 outbound mail disabled in tests
relay_transport = error:5.7.1 outbound mail disabled in tests
alias_maps =
alias_database =
biff = no

# Leave messages as the client sent them: no header rewriting or added
# Message-ID/Date for loopback clients, so tests can compare byte for byte.
local_header_rewrite_clients =
always_add_missing_headers = no

# Keep a test session fast: no tarpit after rejected commands, no inflow delay.
smtpd_error_sleep_time = 0s
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
in_flow_delay = 0s

virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {workdir / "mail"}
virtual_mailbox_maps = texthash:{conf / "vmailbox"}
virtual_uid_maps = static:{delivery_uid}
virtual_gid_maps = static:{delivery_gid}
smtpd_recipient_restrictions =
    check_recipient_access texthash:{conf / "recipient_access"},
    permit_mynetworks,
    reject_unauth_destination

# A refused message: cleanup(8) rejects it at the end of its content.
header_checks = regexp:{conf / "header_checks"}

message_size_limit = {MESSAGE_SIZE_LIMIT}
smtputf8_enable = yes

smtpd_tls_security_level = may
smtpd_tls_chain_files = {tls.key_file}, {tls.cert_file}
smtpd_tls_loglevel = 1
"""


class PostfixServer(BaseServer):
    """A running private Postfix; use ``PostfixServer.start()`` and ``stop()``."""

    name = "postfix"
    domain = DOMAIN
    users = USERS
    unknown_user = UNKNOWN_USER
    deferred_user = DEFERRED_USER
    refuse_marker = REFUSE_MARKER
    message_size_limit = MESSAGE_SIZE_LIMIT

    def __init__(self, workdir: Path, tls: TLSFiles) -> None:
        super().__init__(workdir, tls)
        self.smtps_port = 0

    @staticmethod
    def check_installed() -> str:
        """The path of ``postfix``; raises ServerUnavailable if it cannot run here."""
        postfix = find_program("postfix")
        postconf = find_program("postconf")
        if postfix is None or postconf is None:
            raise ServerUnavailable(
                "Postfix is not installed: apt-get install postfix (scripts/test.sh does)"
            )
        require_root("Postfix")
        try:
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
            pwd.getpwnam(DELIVERY_USER)
        except KeyError as exc:
            raise ServerUnavailable(f"Postfix is not set up: {exc}") from exc
        return postfix

    def _configure(self) -> None:
        delivery = pwd.getpwnam(DELIVERY_USER)
        # `postfix` chdirs into the queue before post-install creates the rest.
        (self.workdir / "queue").mkdir(mode=0o755)
        mail = self.workdir / "mail"
        mail.mkdir(mode=0o755)
        os.chown(mail, delivery.pw_uid, delivery.pw_gid)
        conf = self.workdir / "conf"
        (conf / "main.cf").write_text(
            _main_cf(self.workdir, self.tls, delivery.pw_uid, delivery.pw_gid)
        )
        (conf / "vmailbox").write_text(
            "".join(f"{address} {DOMAIN}/{folder}/\n" for address, folder in USERS.items()),
            encoding="utf-8",
        )
        (conf / "recipient_access").write_text(f"{DEFERRED_USER} {DEFER_REPLY}\n")
        (conf / "header_checks").write_text(
            f"/^Subject:.*{REFUSE_MARKER}/ REJECT 5.7.1 message refused\n"
        )

    def _run(self, postfix: str) -> None:
        conf = self.workdir / "conf"
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port, self.smtps_port = free_ports(2)
            (conf / "master.cf").write_text(
                f"{self.host}:{self.port} inet n - n - - smtpd\n"
                f"{self.host}:{self.smtps_port} inet n - n - - smtpd\n"
                "  -o smtpd_tls_wrappermode=yes\n"
                "  -o smtpd_tls_security_level=encrypt\n" + MASTER_CF
            )
            # start-fg runs the checks of `postfix check` (creating the queue
            # directories on first use; problems go to the console file), and
            # keeps the master our descendant where `start` would daemonise it
            # away from the reaper. The master still makes its own session.
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
                self.process.wait_until(self._ready, f"SMTP greeting on port {self.port}")
                return
            except ServerStartError as exc:
                self.process.stop()
                if attempt == START_ATTEMPTS or "Address already in use" not in str(exc):
                    raise

    def _ready(self) -> bool:
        for port, context in ((self.port, None), (self.smtps_port, self.client_context())):
            banner = read_banner((self.host, port), context=context)
            if not banner.startswith(b"220 "):
                raise ServerStartError(f"unexpected Postfix greeting {banner!r} on port {port}")
        return True

    def mailbox(self, address: str) -> Mailbox:
        """The maildir that mail for ``address`` (one of ``users``) is delivered to."""
        return Mailbox(address, self.workdir / "mail" / DOMAIN / USERS[address])
