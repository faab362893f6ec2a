"""Servers for bench/rtt.py: the test suite's private Postfix, with AUTH, and smtp-sink.

Postfix is the one ``tests/integration/servers/postfix.py`` starts for the integration
tests (own config dir, queue and maildirs under a temp dir, loopback ports, PIPELINING,
CHUNKING, STARTTLS with a throw-away CA), imported from there, not copied.  The bench adds
SASL authentication to it, as a submission service has: AUTH PLAIN and LOGIN, offered only
after STARTTLS (``smtpd_tls_auth_only``), checked by a private Dovecot auth service that
Postfix asks over a unix socket (``smtpd_sasl_type = dovecot``), so that no SASL package
beyond the Postfix and Dovecot the tests already need is required.

Run as root (Postfix and Dovecot switch to their own users), like the integration tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.integration.servers, from the repository root
    sys.path.insert(0, str(ROOT))

from tests.integration.servers._common import (  # noqa: E402
    BaseServer,
    ServerProcess,
    ServerStartError,
    find_program,
    require_root,
)
from tests.integration.servers.postfix import PostfixServer  # noqa: E402

__all__ = ["AUTH_PASSWORD", "AUTH_USER", "DovecotAuth", "SubmissionPostfix", "postfix", "sink"]

AUTH_USER = "bench@example.test"
AUTH_PASSWORD = "bench-password"  # a throw-away account of a private server
RECIPIENT = "alice@example.test"  # a mailbox of the test Postfix


class DovecotAuth(BaseServer):
    """A private Dovecot that runs only its authentication service, for Postfix's SASL."""

    name = "dovecot-auth"

    def __init__(self, workdir: Path, tls: Any) -> None:
        super().__init__(workdir, tls)
        self.socket_path = str(workdir / "auth")

    @staticmethod
    def check_installed() -> str:
        dovecot = find_program("dovecot")
        if dovecot is None:
            raise RuntimeError("Dovecot is not installed: apt-get install dovecot-core")
        require_root("Dovecot")
        return dovecot

    def _configure(self) -> None:
        users = self.workdir / "conf" / "users"
        # passwd-file: user:password; PLAIN scheme, a throw-away password.
        users.write_text(f"{AUTH_USER}:{{PLAIN}}{AUTH_PASSWORD}\n")
        users.chmod(0o644)  # read by the auth process, which runs as user dovecot
        (self.workdir / "conf" / "dovecot.conf").write_text(
            f"""\
protocols =
base_dir = {self.workdir / "run"}
state_dir = {self.workdir / "state"}
log_path = {self.workdir / "dovecot.log"}
info_log_path = {self.workdir / "dovecot.log"}
ssl = no
# Postfix only offers AUTH inside TLS; the socket carries no traffic of its own.
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {self.socket_path} {{
    mode = 0666
  }}
}}
"""
        )

    def _run(self, dovecot: str) -> None:
        self.process = ServerProcess(
            "dovecot",
            [dovecot, "-c", str(self.workdir / "conf" / "dovecot.conf"), "-F"],
            self.workdir,
            pidfile=self.workdir / "run" / "master.pid",
            logs=[self.workdir / "dovecot.log"],
            fatal_markers=(": Fatal: ", ": Panic: "),
        )
        self.process.start()
        self.process.wait_until(lambda: os.path.exists(self.socket_path), "the auth socket")


class SubmissionPostfix(PostfixServer):
    """The integration tests' Postfix with SASL AUTH after STARTTLS (see the docstring)."""

    auth_socket = ""  # set before start()

    def _configure(self) -> None:
        super()._configure()
        if not self.auth_socket:
            raise ServerStartError("SubmissionPostfix.auth_socket is not set")
        with (self.workdir / "conf" / "main.cf").open("a") as main_cf:
            main_cf.write(
                f"""
# bench/servers.py: AUTH as on a submission port, checked by a private Dovecot.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.auth_socket}
smtpd_tls_auth_only = yes
"""
            )


@contextlib.contextmanager
def postfix() -> Iterator[SubmissionPostfix]:
    """A running Postfix with AUTH (and its Dovecot auth service), stopped on exit."""
    auth = DovecotAuth.start()
    try:
        socket_path = auth.socket_path

        class BenchPostfix(SubmissionPostfix):  # start() is a classmethod: a class per run
            auth_socket = socket_path

        server = BenchPostfix.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        auth.stop()


@contextlib.contextmanager
def sink(host: str = "127.0.0.1") -> Iterator[int]:
    """Postfix's ``smtp-sink`` on a free port (PIPELINING, no CHUNKING); yields the port.

    Started as bench/run.py does; ``-u nobody`` because it refuses to run as root.
    """
    exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    with tempfile.TemporaryFile() as log:
        for _attempt in range(5):
            port = _free_port(host)
            cmd = [exe] + (["-u", "nobody"] if os.geteuid() == 0 else [])
            proc = subprocess.Popen(
                [*cmd, f"{host}:{port}", "1000"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            if _wait_greeting(host, port, proc):
                break
            proc.kill()
            proc.wait()
        else:
            log.seek(0)
            raise RuntimeError(f"smtp-sink did not start: {log.read().decode(errors='replace')}")
        try:
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_greeting(host: str, port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            time.sleep(0.05)
    return False
