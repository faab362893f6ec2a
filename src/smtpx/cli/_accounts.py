"""Named accounts for ``smtpx send --account`` and ``smtpx sendmail``: a small TOML file,
or the environment.

The file is ``$SMTPX_CONFIG``, else ``$XDG_CONFIG_HOME/smtpx/accounts.toml``, else
``~/.config/smtpx/accounts.toml``::

    default = "work"                       # the account used when none is named

    [accounts.work]
    url = "smtp+starttls://mail.example.org:587"
    username = "alice@example.org"
    password_cmd = "pass show mail/work"   # or password_env = "VAR",
                                           # or password_file = "~/.work-password"
    from = "Alice <alice@example.org>"     # optional: the default sender
    cafile = "/etc/ssl/my-ca.pem"          # optional
    tls = "starttls"                       # optional: as send --tls
    auth = "auto"                          # optional: as send --auth
    ehlo = "laptop.example.org"            # optional

No secret goes in this file or in a URL: a password comes from an environment variable,
a command's output (its first line; the command is split like a shell line but run
without one) or a file that only its owner can read (mode 0600 or stricter, checked).

Without a file, or with ``SMTPX_URL`` set, the environment describes one account:
``SMTPX_URL``, ``SMTPX_USERNAME``, ``SMTPX_PASSWORD`` (the secret itself: the environment
of a process is private to its user), ``SMTPX_PASSWORD_CMD``, ``SMTPX_PASSWORD_FILE``,
``SMTPX_FROM``, ``SMTPX_CAFILE``.  ``SMTPX_ACCOUNT`` names the file's account to use.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._common import CLIError

__all__ = [
    "EXIT_CONFIG",
    "Account",
    "PasswordSource",
    "config_path",
    "load_account",
    "password_from_command",
    "password_from_env",
    "password_from_file",
]

#: The exit status of ``smtpx send`` for a configuration or credential-source error.
EXIT_CONFIG = 3

# A password command that has not answered by then is stuck (waiting for a terminal?).
_COMMAND_TIMEOUT = 60.0
_KEYS = frozenset(
    {"url", "username", "password_env", "password_cmd", "password_file", "from", "cafile"}
    | {"tls", "auth", "ehlo"}
)

#: Gives the password when it is needed (never earlier: a command may ask for a PIN).
PasswordSource = Callable[[], str]


@dataclass(frozen=True, slots=True)
class Account:
    """One account's settings, from the file or the environment."""

    name: str
    url: str | None = None
    username: str | None = None
    password: PasswordSource | None = field(default=None, repr=False)
    sender: str | None = None
    cafile: str | None = None
    tls: str | None = None
    auth: str | None = None
    ehlo: str | None = None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("SMTPX_CONFIG"):
        return Path(env["SMTPX_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "smtpx" / "accounts.toml"


def password_from_env(variable: str) -> PasswordSource:
    def read() -> str:
        value = os.environ.get(variable)
        if value is None:
            raise CLIError(
                f"the environment variable {variable} (the password) is not set", EXIT_CONFIG
            )
        return value

    return read


def password_from_command(command: str) -> PasswordSource:
    def read() -> str:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise CLIError(f"the password command cannot be split: {exc}", EXIT_CONFIG) from None
        if not argv:
            raise CLIError("the password command is empty", EXIT_CONFIG)
        try:
            # No shell: the configured command line is split, never interpreted.
            done = subprocess.run(  # noqa: S603
                argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CLIError(f"the password command failed: {exc}", EXIT_CONFIG) from None
        if done.returncode != 0:
            # Its stderr may say why; its stdout may hold the secret and is never shown.
            why = done.stderr.strip().splitlines()[-1:] or [""]
            raise CLIError(
                f"the password command exited with status {done.returncode}"
                + (f": {why[0]}" if why[0] else ""),
                EXIT_CONFIG,
            )
        lines = done.stdout.splitlines()
        if not lines or not lines[0]:
            raise CLIError("the password command printed no password", EXIT_CONFIG)
        return lines[0]

    return read


def password_from_file(path: str) -> PasswordSource:
    def read() -> str:
        where = Path(path).expanduser()
        try:
            with open(where, encoding="utf-8") as file:
                mode = os.fstat(file.fileno()).st_mode
                # Like ssh with a private key: a secret others can read is refused, so the
                # mistake is found before the secret is copied around.
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise CLIError(
                        f"the password file {where} can be read by others "
                        f"(mode {stat.S_IMODE(mode):04o}): chmod 600 it",
                        EXIT_CONFIG,
                    )
                text = file.read()
        except OSError as exc:
            raise CLIError(f"cannot read the password file: {exc}", EXIT_CONFIG) from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise CLIError(f"the password file {where} is empty", EXIT_CONFIG)
        return lines[0]

    return read


def _string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise CLIError(f"{where}: {key} must be a string", EXIT_CONFIG)
    return value


def _source(
    where: str, env: str | None, command: str | None, file: str | None
) -> PasswordSource | None:
    given = [s for s in (env, command, file) if s]
    if len(given) > 1:
        raise CLIError(
            f"{where}: give one of password_env, password_cmd and password_file", EXIT_CONFIG
        )
    if env:
        return password_from_env(env)
    if command:
        return password_from_command(command)
    if file:
        return password_from_file(file)
    return None


def _from_environment(env: Mapping[str, str]) -> Account:
    secret = env.get("SMTPX_PASSWORD")
    source = _source(
        "the environment",
        "SMTPX_PASSWORD" if secret is not None else None,
        env.get("SMTPX_PASSWORD_CMD"),
        env.get("SMTPX_PASSWORD_FILE"),
    )
    return Account(
        name="environment",
        url=env.get("SMTPX_URL"),
        username=env.get("SMTPX_USERNAME"),
        password=source,
        sender=env.get("SMTPX_FROM"),
        cafile=env.get("SMTPX_CAFILE"),
    )


def load_account(
    name: str | None,
    *,
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    required: bool = False,
) -> Account | None:
    """The account *name* (else ``SMTPX_ACCOUNT``, else the file's ``default``, else the
    environment's ``SMTPX_URL``...).  None when nothing is configured and not *required*."""
    env = os.environ if environ is None else environ
    name = name or env.get("SMTPX_ACCOUNT") or None
    where = Path(path).expanduser() if path else config_path(env)
    if not where.exists():
        if path or env.get("SMTPX_CONFIG"):
            raise CLIError(f"the config file {where} does not exist", EXIT_CONFIG)
        if name is not None:
            raise CLIError(f"no account {name!r}: there is no config file {where}", EXIT_CONFIG)
        if env.get("SMTPX_URL") or required:
            return _from_environment(env)
        return None
    try:
        with open(where, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CLIError(f"cannot read the config file {where}: {exc}", EXIT_CONFIG) from None
    accounts = data.get("accounts", {})
    if not isinstance(accounts, dict):
        raise CLIError(f"{where}: [accounts] must be a table of accounts", EXIT_CONFIG)
    if name is None:
        default = data.get("default")
        if default is None:
            if env.get("SMTPX_URL") or required:
                return _from_environment(env)
            return None
        if not isinstance(default, str):
            raise CLIError(f"{where}: default must be an account name", EXIT_CONFIG)
        name = default
    table = accounts.get(name)
    if not isinstance(table, dict):
        known = ", ".join(sorted(accounts)) or "none"
        raise CLIError(f"no account {name!r} in {where} (accounts: {known})", EXIT_CONFIG)
    label = f"{where}: account {name!r}"
    unknown = sorted(set(table) - _KEYS)
    if "password" in unknown:
        raise CLIError(
            f"{label}: no password in the config file; use password_env, password_cmd "
            "or password_file",
            EXIT_CONFIG,
        )
    if unknown:
        raise CLIError(f"{label}: unknown setting {unknown[0]!r}", EXIT_CONFIG)
    return Account(
        name=name,
        url=_string(table, "url", label),
        username=_string(table, "username", label),
        password=_source(
            label,
            _string(table, "password_env", label),
            _string(table, "password_cmd", label),
            _string(table, "password_file", label),
        ),
        sender=_string(table, "from", label),
        cafile=_string(table, "cafile", label),
        tls=_string(table, "tls", label),
        auth=_string(table, "auth", label),
        ehlo=_string(table, "ehlo", label),
    )
