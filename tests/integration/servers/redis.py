"""A private Redis on loopback: the broker of the Celery tests.

Debian's ``redis-server`` (``scripts/test.sh`` installs it and stops the system service),
started from its own work dir with a config file written there: a free loopback port,
no persistence (``save ""``, no AOF: a test's broker lives as long as the session), and
``protected-mode`` kept on (it only matters for non-loopback clients, which it refuses
anyway since it binds 127.0.0.1 alone).  No root needed.

Run ``python -m tests.integration.servers redis`` to start one by hand.
"""

from __future__ import annotations

import socket

from ._common import (
    BaseServer,
    ServerProcess,
    ServerStartError,
    ServerUnavailable,
    find_program,
    free_ports,
)

__all__ = ["RedisServer"]

START_ATTEMPTS = 3
# Redis logs this when its port was taken between free_ports() and its bind.
FATAL_LOG_MARKERS = ("Address already in use", "# Fatal error")


def ping(host: str, port: int, timeout: float = 2.0) -> bytes:
    """Send PING in Redis's inline form and return the reply line (``+PONG`` when up)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(64)
            if not chunk:
                raise ConnectionError("Redis closed the connection before replying to PING")
            reply += chunk
    return reply.strip()


class RedisServer(BaseServer):
    """A running private Redis; ``.url`` is ``redis://127.0.0.1:PORT/0``."""

    name = "redis"

    @staticmethod
    def check_installed() -> str:
        server = find_program("redis-server")
        if server is None:
            raise ServerUnavailable(
                "redis-server is not installed: apt-get install redis-server (scripts/test.sh does)"
            )
        return server

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _configure(self) -> None:
        (self.workdir / "data").mkdir(mode=0o755)

    def _run(self, executable: str) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            (self.port,) = free_ports(1)
            config = self.workdir / "conf" / "redis.conf"
            config.write_text(
                f"bind {self.host}\n"
                f"port {self.port}\n"
                "protected-mode yes\n"
                "daemonize no\n"
                f"dir {self.workdir / 'data'}\n"
                'save ""\n'
                "appendonly no\n"
                "loglevel notice\n"
                # The console file (stdout) is the log: the harness shows it on failure.
                'logfile ""\n'
            )
            self.process = ServerProcess(
                "redis",
                [executable, str(config)],
                self.workdir,
                fatal_markers=FATAL_LOG_MARKERS,
            )
            self.process.start()
            try:
                self.process.wait_until(self._ready, f"PONG on port {self.port}")
                return
            except ServerStartError as exc:
                self.process.stop()
                if attempt == START_ATTEMPTS or "Address already in use" not in str(exc):
                    raise

    def _ready(self) -> bool:
        reply = ping(self.host, self.port)
        if reply != b"+PONG":
            raise ServerStartError(f"unexpected reply to PING: {reply!r}")
        return True
