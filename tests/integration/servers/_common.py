"""Machinery shared by the real-server harnesses: work dirs, ports, TLS, processes.

Every server runs from a private work directory made for the test session
(configuration, TLS material, queue, logs and the delivered mail all live
there) and listens on loopback ports picked at run time. The process is
started under ``_reaper.py`` so that stopping it leaves no orphans or zombies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "BaseServer",
    "ServerProcess",
    "ServerStartError",
    "ServerUnavailable",
    "TLSFiles",
    "find_program",
    "free_ports",
    "make_tls",
    "make_workdir",
    "read_banner",
    "require_root",
    "tail",
]

# Startup of either server takes well under a second here; the margin is for
# a loaded CI machine with two test sessions running side by side.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
POLL_INTERVAL = 0.05
# How much of each log goes into a failure message.
LOG_TAIL_LINES = 60

REAPER = Path(__file__).with_name("_reaper.py")
# Debian keeps the daemons' front ends in sbin, which a non-login PATH may lack.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ServerUnavailable(Exception):
    """The server software is not installed here (or cannot be run by this user)."""


class ServerStartError(RuntimeError):
    """The server is installed but did not come up; the message holds its logs."""


def find_program(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(name, path=path)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ServerUnavailable(
            f"{what} must be started as root (it switches to its own users); "
            "run the integration tests as root, e.g. via scripts/test.sh"
        )


def make_workdir(name: str) -> Path:
    """A fresh private directory, traversable by the servers' unprivileged users."""
    base = tempfile.gettempdir()
    # Unix socket paths are limited to ~107 bytes, and Dovecot puts several
    # sockets below its base_dir: keep the prefix short.
    if len(base) > 40:
        base = "/tmp"
    workdir = Path(tempfile.mkdtemp(prefix=f"smtpx-{name}-", dir=base))
    workdir.chmod(0o755)
    return workdir


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that were free a moment ago.

    The sockets stay bound until all are picked, so the kernel cannot hand
    out the same port twice; a server that then loses a race for one of them
    fails to bind, and the harness retries with new ports.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass(frozen=True)
class TLSFiles:
    """A throw-away CA and a server certificate for ``localhost`` and 127.0.0.1."""

    ca_file: Path
    cert_file: Path  # leaf certificate followed by its chain
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls(directory: Path) -> TLSFiles:
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - trustme is a test dependency
        raise ServerUnavailable("trustme is not installed (pip install -e '.[test]')") from exc
    ca = trustme.CA(organization_name="smtpx integration tests")
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    files = TLSFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-cert.pem",
        key_file=directory / "server-key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    # Both servers read the key as root before dropping privileges.
    files.key_file.touch(mode=0o600)
    leaf.private_key_pem.write_to_path(str(files.key_file))
    return files


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def read_banner(
    address: str | tuple[str, int],
    timeout: float = 5.0,
    *,
    context: ssl.SSLContext | None = None,
) -> bytes:
    """Connect (through TLS if ``context``), read the greeting, say QUIT.

    Raises OSError (ssl.SSLError included) if any of that fails.
    """
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        sock.settimeout(timeout)
        sock.connect(address)
        if context is not None:
            sock = stack.enter_context(context.wrap_socket(sock, server_hostname="localhost"))
        banner = b""
        while not banner.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{address!r} closed before its greeting")
            banner += chunk
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
            sock.recv(4096)
    return banner


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class ServerProcess:
    """One server started under the reaper, with its console output in a file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        workdir: Path,
        *,
        pidfile: Path | None = None,
        logs: Sequence[Path] = (),
        fatal_markers: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.command = list(command)
        self.workdir = workdir
        self.pidfile = pidfile
        self.console = workdir / f"{name}.console"
        self.logs = [self.console, *logs]
        # Log text meaning the server will not come up: stop waiting at once
        # (e.g. smtpd failing every TLS handshake) instead of at the timeout.
        self.fatal_markers = tuple(fatal_markers)
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offsets: dict[Path, int] = {}

    def start(self) -> None:
        # A retry reuses the log files: only what this run writes can stop it.
        self._log_offsets = {path: _size(path) for path in self.logs}
        argv = [sys.executable, str(REAPER)]
        if self.pidfile is not None:
            argv += ["--pidfile", str(self.pidfile)]
        argv += ["--", *self.command]
        with self.console.open("ab") as console:
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def diagnostics(self) -> str:
        parts = [f"command: {' '.join(self.command)}"]
        if self._popen is not None and self._popen.returncode is not None:
            parts.append(f"exit status: {self._popen.returncode}")
        parts += [f"--- {path} ---\n{tail(path)}" for path in self.logs]
        return "\n".join(parts)

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it is true; raise ServerStartError with the logs if not."""
        deadline = time.monotonic() + START_TIMEOUT
        last_error = ""
        while True:
            try:
                if ready():
                    return
            except OSError as exc:
                last_error = f" (last error: {exc})"
            if not self.running:
                raise ServerStartError(
                    f"{self.name} exited while waiting for {what}\n{self.diagnostics()}"
                )
            if self._logged_fatal():
                raise ServerStartError(
                    f"{self.name} logged a fatal error while waiting for {what}{last_error}\n"
                    f"{self.diagnostics()}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.name}: no {what} after {START_TIMEOUT:.0f} s{last_error}\n"
                    f"{self.diagnostics()}"
                )
            time.sleep(POLL_INTERVAL)

    def _logged_fatal(self) -> bool:
        for path in self.logs if self.fatal_markers else ():
            try:
                with path.open("rb") as log:
                    log.seek(self._log_offsets.get(path, 0))
                    text = log.read().decode(errors="replace")
            except OSError:
                continue
            if any(marker in text for marker in self.fatal_markers):
                return True
        return False

    def stop(self) -> None:
        """SIGTERM (the reaper stops the server and reaps it), then SIGKILL if need be."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill_groups(popen.pid)
                popen.wait(STOP_TIMEOUT)

    def _kill_groups(self, reaper_pid: int) -> None:
        groups = [reaper_pid]
        if self.pidfile is not None:
            with contextlib.suppress(OSError, ValueError):
                groups.append(int(self.pidfile.read_text().strip()))
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


class BaseServer:
    """What both harnesses share: a work dir, TLS files, a process, clean-up."""

    name = "server"

    def __init__(self, workdir: Path, tls: TLSFiles) -> None:
        self.workdir = workdir
        self.tls = tls
        self.process: ServerProcess | None = None
        self.host = "127.0.0.1"
        self.port = 0  # chosen when the server starts

    @staticmethod
    def check_installed() -> str:
        """The server's executable; raises ServerUnavailable when it cannot run here."""
        raise NotImplementedError

    def _configure(self) -> None:
        raise NotImplementedError

    def _run(self, executable: str) -> None:
        raise NotImplementedError

    @classmethod
    def start(cls) -> Self:
        """Configure a private instance in a new work dir and start it."""
        executable = cls.check_installed()
        workdir = make_workdir(cls.name)
        conf = workdir / "conf"
        conf.mkdir(mode=0o755)
        server = cls(workdir, make_tls(conf))
        try:
            server._configure()
            server._run(executable)
        except BaseException:
            server.stop(keep_workdir=True)
            raise
        return server

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    def client_context(self) -> ssl.SSLContext:
        """A verifying ``ssl.SSLContext`` that trusts the test CA."""
        return self.tls.client_context()

    def diagnostics(self) -> str:
        return self.process.diagnostics() if self.process else "(not started)"

    def stop(self, *, keep_workdir: bool = False) -> None:
        if self.process is not None:
            self.process.stop()
        if not keep_workdir and os.environ.get("SMTPX_KEEP_SERVER_DIRS") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
