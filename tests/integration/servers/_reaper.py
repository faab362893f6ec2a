"""Run one server command as a child subreaper, and stop it on SIGTERM.

Usage: ``python _reaper.py [--pidfile PATH] -- COMMAND [ARG ...]``

Why this exists: a Postfix master exits on SIGTERM without waiting for its
children, so they are re-parented to PID 1. In containers PID 1 often does not
reap, and every test run would leave a dozen zombies behind. This script marks
itself as a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``), so every
orphaned descendant comes back to it and is reaped here.

On SIGTERM (or when the parent dies: ``PR_SET_PDEATHSIG``) it sends SIGTERM to
the pid read from ``--pidfile`` (the server's master, which may have started
its own session) and to the direct child, then keeps reaping. Whatever is
still alive after ``GRACE_SECONDS`` is killed. The exit status is the direct
child's (128 + signal number if it was killed).

It only uses the standard library and is meant to be run by path, not imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Long enough for Postfix and Dovecot to shut down (both take well under a
# second), short enough that a wedged server cannot stall the test session.
GRACE_SECONDS = 10


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: best effort only
        pass


def _children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc; empty where there is none)."""
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _say(text: str) -> None:
    # stderr is the server's console file: this ends up in failure messages.
    print(f"[reaper {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    pidfile: Path | None = None
    if argv[:1] == ["--pidfile"]:
        pidfile = Path(argv[1])
        argv = argv[2:]
    if argv[:1] != ["--"] or len(argv) < 2:
        print("usage: _reaper.py [--pidfile PATH] -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    command = argv[1:]

    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    stopping = False
    child = 0

    def kill_everything(signum: int, frame: object) -> None:
        left = _children_of(os.getpid())
        _say(f"still running {GRACE_SECONDS} s after SIGTERM, killing {left}")
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _signal(pid, signal.SIGKILL)
        # Killing a process hands its own children to us: sweep again shortly.
        signal.alarm(1)

    def stop(reason: str) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        master = None
        if pidfile is not None:
            with contextlib.suppress(OSError, ValueError):
                master = int(pidfile.read_text().strip())
        _say(f"{reason}: SIGTERM to server {master} and child {child}")
        if master is not None:
            _signal(master, signal.SIGTERM)
        if child:
            _signal(child, signal.SIGTERM)
        signal.signal(signal.SIGALRM, kill_everything)
        signal.alarm(GRACE_SECONDS)

    def on_signal(signum: int, frame: object) -> None:
        stop(f"got signal {signum}")

    # Handlers first: a SIGTERM right after the fork must not orphan the child.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    child = os.fork()
    if child == 0:  # pragma: no cover - replaced by exec
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    if stopping:  # signalled before the fork returned: stop what we just started
        _signal(child, signal.SIGTERM)

    status = 0
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            status = os.waitstatus_to_exitcode(wait_status)
            if status < 0:
                status = 128 - status
            if not stopping:
                # The server went away by itself: take its descendants with it.
                stop(f"server exited with status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
