"""What every command shares: the program name, errors with an exit status, the secret
check for transcripts."""

from __future__ import annotations

import base64
from importlib import metadata

__all__ = ["PROG", "CLIError", "describe", "leaks_secret", "version"]

PROG = "smtpx"


class CLIError(Exception):
    """A failure a command reports as one line, then exits with *code*; *usage* adds the
    hint to read ``--help`` (for arguments that argparse cannot check alone)."""

    def __init__(self, message: str, code: int = 1, *, usage: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.usage = usage


def describe(exc: BaseException) -> str:
    """An exception as one line: its class and the first line of its message."""
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def leaks_secret(text: str, secret: str) -> bool:
    """Whether ``text`` holds ``secret`` in clear or in any base64 alignment.

    Example:
        >>> leaks_secret("AUTH PLAIN " + base64.b64encode(b"\\0u\\0hunter22").decode(), "hunter22")
        True
        >>> leaks_secret("AUTH PLAIN ********", "hunter22")
        False
    """
    if not secret:
        return False
    if secret in text:
        return True
    raw = secret.encode("utf-8")
    for shift in range(3):
        # Only the base64 characters that depend on the secret's bytes alone
        # survive whatever comes before it (an authzid, a user name).
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = 4 if shift else 0
        stop = (shift + len(raw)) // 3 * 4
        if stop - start >= 4 and encoded[start:stop] in text:
            return True
    return False


def version() -> str:
    try:
        return metadata.version("smtpx")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"
