"""A private Haraka (Node.js MTA) on loopback, storing what it accepts in maildirs.

Haraka matters to smtpx because it differs from the RFC: it offers PIPELINING but
answers ``503 Bad sequence of commands - pipelined after end of DATA`` to every command
that reaches it after the end of a message's content and before that content's reply
(QUIT included), where RFC 2920 section 3.1 allows the next transaction there. The
engine must detect that, send again what was refused, and stop pipelining past the end
of content on that connection.

Haraka is pinned by ``haraka-node/package.json`` and ``package-lock.json`` and
installed (``npm ci --omit=optional``) into ``haraka-node/node_modules``, which git
ignores; ``scripts/test.sh`` does that. The instance runs ``node`` on Haraka's
``bin/haraka -c WORKDIR`` in a single process (``nodes=0``, no cluster), needs no root,
and reads only its work dir, which holds:

- ``config/``: listen address, host name ``haraka.test``, log level ``protocol`` (every
  command and reply goes to the console file: ``transcript()``), and one plugin,
  ``haraka-node/smtpx_test.js`` (copied to ``plugins/``) with its settings in
  ``config/smtpx_test.json``;
- ``mail/``: one maildir per user, written by that plugin.

What it offers: PIPELINING, 8BITMIME, SMTPUTF8 and SIZE (no CHUNKING, no
ENHANCEDSTATUSCODES, no STARTTLS: Haraka needs its tls plugin for that). Mail for
``USERS`` is accepted; any other recipient gets ``550 5.1.1`` at RCPT; a message whose
Subject contains ``REFUSE_MARKER`` gets ``550 5.7.1`` after its content.

Run ``python -m tests.integration.servers haraka`` to start one by hand.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ._common import (
    BaseServer,
    ServerProcess,
    ServerStartError,
    ServerUnavailable,
    find_program,
    free_ports,
    read_banner,
)
from ._maildir import Mailbox

__all__ = ["HarakaServer"]

DOMAIN = "example.test"
USERS = {"alice@example.test": "alice", "bob@example.test": "bob"}
UNKNOWN_USER = "nobody@example.test"
REFUSE_MARKER = "REFUSE-ME"
# Haraka checks SIZE itself (connection.ini max.bytes); the same limit as Postfix's.
MESSAGE_SIZE_LIMIT = 10_240_000
VERSION_PIN = "3.3.4"  # haraka-node/package.json says the same; checked at start

NODE_DIR = Path(__file__).with_name("haraka-node")
HARAKA_PACKAGE = NODE_DIR / "node_modules" / "Haraka"
PLUGIN = NODE_DIR / "smtpx_test.js"
INSTALL_HINT = (
    "run scripts/test.sh, or: cd tests/integration/servers/haraka-node && npm ci --omit=optional"
)
# Haraka logs these when it cannot run (e.g. a plugin that does not compile, a port
# taken by another process: "EADDRINUSE").
FATAL_LOG_MARKERS = ("[CRIT]", "[EMERG]", "EADDRINUSE")
START_ATTEMPTS = 3
# The notice Haraka logs when it answers 503 to commands pipelined after end of DATA.
REFUSED_AFTER_DATA = "command pipelined after end of DATA - refused"

# connection.ini: the settings Haraka's connection.js reads (with no file of its own
# in the work dir, Haraka has no defaults for some of them and fails at the greeting).
CONNECTION_INI = f"""\
[main]
smtputf8=true
[haproxy]
hosts[] =
[headers]
add_received=true
max_lines=1000
max_received=100
[max]
bytes={MESSAGE_SIZE_LIMIT}
mime_parts=1000
line_length=512
data_line_length=992
[message]
helo=Haraka for the smtpx tests
close=closing connection
[uuid]
banner_chars=6
deny_chars=0
"""


class HarakaServer(BaseServer):
    """A running private Haraka; use ``HarakaServer.start()`` and ``stop()``."""

    name = "haraka"
    domain = DOMAIN
    users = USERS
    unknown_user = UNKNOWN_USER
    refuse_marker = REFUSE_MARKER
    message_size_limit = MESSAGE_SIZE_LIMIT

    @staticmethod
    def check_installed() -> str:
        """The path of ``node``; raises ServerUnavailable if Haraka cannot run here."""
        node = find_program("node") or find_program("nodejs")
        if node is None:
            raise ServerUnavailable(
                "Node.js is not installed: apt-get install nodejs npm (scripts/test.sh does)"
            )
        try:
            installed = json.loads((HARAKA_PACKAGE / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError) as exc:
            raise ServerUnavailable(f"Haraka is not installed ({exc}): {INSTALL_HINT}") from exc
        if installed != VERSION_PIN:
            raise ServerUnavailable(
                f"Haraka {installed} is installed, the tests pin {VERSION_PIN}: {INSTALL_HINT}"
            )
        return node

    def _configure(self) -> None:
        config = self.workdir / "config"
        # BaseServer made conf/ (with the unused TLS files): Haraka reads config/.
        config.mkdir(mode=0o755)
        (self.workdir / "plugins").mkdir(mode=0o755)
        (self.workdir / "mail").mkdir(mode=0o755)
        shutil.copyfile(PLUGIN, self.workdir / "plugins" / PLUGIN.name)
        (config / "plugins").write_text(f"{PLUGIN.stem}\n")
        (config / "me").write_text("haraka.test\n")
        # protocol: every command and reply in the console file, for transcript().
        (config / "log.ini").write_text("[main]\nlevel=protocol\ntimestamps=true\n")
        (config / "connection.ini").write_text(CONNECTION_INI)
        settings = {
            "users": USERS,
            "refuse_marker": REFUSE_MARKER,
            "mail_dir": str(self.workdir / "mail"),
        }
        (config / "smtpx_test.json").write_text(json.dumps(settings, indent=2))

    def _run(self, node: str) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            (self.port,) = free_ports(1)
            # nodes=0: one process, no cluster master and workers.
            (self.workdir / "config" / "smtp.ini").write_text(
                f"listen={self.host}:{self.port}\nnodes=0\n"
            )
            self.process = ServerProcess(
                "haraka",
                [node, str(HARAKA_PACKAGE / "bin" / "haraka"), "-c", str(self.workdir)],
                self.workdir,
                fatal_markers=FATAL_LOG_MARKERS,
            )
            self.process.start()
            try:
                self.process.wait_until(self._ready, f"SMTP greeting on port {self.port}")
                return
            except ServerStartError as exc:
                self.process.stop()
                if attempt == START_ATTEMPTS or "EADDRINUSE" not in str(exc):
                    raise

    def _ready(self) -> bool:
        banner = read_banner((self.host, self.port))
        if not banner.startswith(b"220 "):
            raise ServerStartError(f"unexpected Haraka greeting {banner!r}")
        return True

    def mailbox(self, address: str) -> Mailbox:
        """The maildir that mail for ``address`` (one of ``users``) is stored in."""
        return Mailbox(address, self.workdir / "mail" / USERS[address])

    def transcript(self, client_port: int) -> list[str]:
        """Haraka's log lines for the session from the client's local port ``client_port``
        (its ``C:`` and ``S:`` lines are the session's commands and replies)."""
        log = self.process.console.read_text(errors="replace") if self.process else ""
        connect = re.search(rf"\[([0-9A-F-]+)\] \[core\] connect ip=\S+ port={client_port} ", log)
        if connect is None:
            raise AssertionError(f"no session from port {client_port} in Haraka's log")
        session = connect.group(1)
        # A session's transactions log as UUID.1, UUID.2, ...
        tag = re.compile(rf"\[{session}(?:\.\d+)?\]")
        return [line for line in log.splitlines() if tag.search(line)]
