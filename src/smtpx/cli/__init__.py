"""The ``smtpx`` command line (``python -m smtpx``): ``demo``, ``send``, ``sendmail`` and the
commands listed in ``COMMANDS``.

Each command is a module here with two functions: ``register(subparsers)`` adds its
parser, and ``run(args) -> int`` does the work and returns the exit status.  ``main`` finds
the parsers each module added and sends their arguments to its ``run``.  A command module
that is absent from this copy of smtpx is left out of the list.

Errors are one line on stderr (``smtpx send: error: ...``) and a usage error adds a hint
(``Try 'smtpx send --help'.``); never a traceback.  See ``docs/cli.md``.

Example:
    >>> main(["--version"])  # doctest: +ELLIPSIS
    smtpx ...
    0
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import NoReturn

from ._common import PROG, CLIError, describe, version

__all__ = ["COMMANDS", "main"]

#: The subcommand modules, in the order ``--help`` lists them.  ``_probe`` and ``_sink``
#: are written separately; each module is imported if it is present.
COMMANDS = ("_demo", "_send", "_sendmail", "_probe", "_sink", "_outbox")

# A copy of smtpx installed or linked as "sendmail" (for cron and mail programs that call
# /usr/sbin/sendmail) runs the sendmail command.
_SENDMAIL_NAMES = frozenset({"sendmail"})


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error and a hint instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def main(argv: list[str] | None = None) -> int:
    """Run the ``smtpx`` command line with *argv* (default ``sys.argv[1:]``) and return its
    exit status: 0 on success, 2 for a usage error, a command's own codes otherwise."""
    if argv is None:
        argv = sys.argv[1:]
        if os.path.basename(sys.argv[0]) in _SENDMAIL_NAMES:
            argv = ["sendmail", *argv]
    parser, runners = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits for --help and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    name = f"{PROG} {args.command}"
    try:
        return int(runners[args.command](args))
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except CLIError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        if exc.usage:
            print(f"Try '{name} --help'.", file=sys.stderr)
        return exc.code
    except Exception as exc:  # a command-line tool reports, it does not trace back
        print(f"{name}: error: {describe(exc)}", file=sys.stderr)
        return 1


def build_parser() -> tuple[ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    """The parser with every present command, and each command's ``run``."""
    parser = ArgumentParser(prog=PROG, description="An smtplib-compatible SMTP and LMTP client.")
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for module in _command_modules():
        before = set(subparsers.choices)
        module.register(subparsers)
        for command in set(subparsers.choices) - before:
            runners[command] = module.run
    return parser, runners


def _command_modules() -> list[ModuleType]:
    modules = []
    for name in COMMANDS:
        try:
            modules.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the module is there but something it needs is not
    return modules
