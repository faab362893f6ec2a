"""Run the examples of one documentation page against embedded servers.

    python tests/docs/run_examples.py docs/sending.md

``tests/docs/test_examples.py`` runs this once per page, in a child process (so a page's
patches, event loops and working directory end with it, and a hang is bounded by the
test's timeout). The rules a page follows:

- Every fenced ``python`` block runs, in the page's order, in one namespace (a later block
  may use what an earlier one defined, as a reader of the page would). ``message`` is
  given: an ``email.message.EmailMessage`` from alice@example.org to bob@example.org.
  Top-level ``await`` and ``async with`` work (each such block runs in ``asyncio.run``).
  A block that defines ``test_*`` functions has them called, so an example test runs too.
- Every fenced ``sh`` block holds ``smtpx ...`` or ``python -m smtpx ...`` commands; each
  runs as the ``smtpx`` command (``smtpx.cli.main``) and must exit 0.
- A block that cannot run says why, on the line before its fence:
  ``<!-- not-run: needs a Google OAuth token -->``.
- The placeholder hosts of ``PLACEHOLDER_HOSTS`` resolve to embedded servers
  (``smtpx.testing.SinkServer``) that have a certificate for that name from a throwaway CA
  which ``ssl.create_default_context()`` trusts here: port 465 (and ``smtps://``) reaches
  one with implicit TLS, any other port one with STARTTLS. Both offer AUTH PLAIN and LOGIN
  after TLS for the users of ``CREDENTIALS``. Any other name fails to resolve, so an
  example never reaches the network.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import re
import shlex
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

PYTHON_LANGS = frozenset({"python", "py"})
SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})

#: The hosts examples may name; each gets its own pair of embedded servers.
PLACEHOLDER_HOSTS = ("mail.example.org", "smtp.gmail.com", "smtp.office365.com")
#: The users the embedded servers accept (the examples' own passwords).
CREDENTIALS = {"alice": "s3cret", "app": "s3cret"}
IMPLICIT_TLS_PORT = 465

_FENCE = re.compile(r"^```\s*(?P<lang>[\w+-]*)\s*$")
_MARK = re.compile(r"^<!--\s*not-run:(?P<reason>.*?)-->\s*$")
_COMMAND = re.compile(r"^(?:smtpx|(?:\S*/)?python3?(?:\.\d+)? -m smtpx)(?:\s|$)")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, code, where it starts, and why it does not run."""

    path: Path
    line: int  # the line of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason given by a not-run mark, or None

    @property
    def runnable_kind(self) -> bool:
        return self.lang in PYTHON_LANGS or self.lang in SHELL_LANGS

    def where(self) -> str:
        return f"{self.path}:{self.line}"


class PageError(Exception):
    """A page breaks the rules (a mark without a block, a block that is not a command)."""


def parse(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with their not-run marks.

    A mark is the last non-blank line before an opening fence; a mark anywhere else, or
    one without a reason, is an error: it would silently mark nothing.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: tuple[int, str] | None = None  # a mark waiting for its fence
    index = 0
    while index < len(lines):
        line = lines[index]
        mark = _MARK.match(line.strip())
        fence = _FENCE.match(line)
        if mark:
            if pending is not None:
                raise PageError(f"{path}:{pending[0]}: a not-run mark with no block after it")
            reason = mark["reason"].strip()
            if not reason:
                raise PageError(f"{path}:{index + 1}: a not-run mark must give its reason")
            pending = (index + 1, reason)
        elif fence:
            start = index
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                index += 1
            if index == len(lines):
                raise PageError(f"{path}:{start + 1}: a code block that never ends")
            reason = pending[1] if pending is not None else None
            block = Block(
                path, start + 1, fence["lang"].lower(), "\n".join(lines[start + 1 : index]), reason
            )
            if reason is not None and not block.runnable_kind:
                raise PageError(
                    f"{path}:{pending[0]}: a not-run mark before a "
                    f"{block.lang or 'plain'} block, which never runs"
                )
            blocks.append(block)
            pending = None
        elif line.strip() and pending is not None:
            raise PageError(f"{path}:{pending[0]}: a not-run mark must be right before a fence")
        index += 1
    if pending is not None:
        raise PageError(f"{path}:{pending[0]}: a not-run mark with no block after it")
    return blocks


def shell_commands(block: Block) -> list[list[str]]:
    """The smtpx command lines of a shell block, as argument lists for ``smtpx``."""
    commands = []
    for raw in block.code.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        match = _COMMAND.match(line)
        if not match:
            raise PageError(
                f"{block.where()}: {line!r} is not an smtpx command: "
                "mark the block <!-- not-run: REASON --> if it cannot run here"
            )
        commands.append(shlex.split(line[match.end() :], comments=True))
    return commands


def sample_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Subject"] = "hi"
    message.set_content("hello\n")
    return message


# -- the harness -----------------------------------------------------------------------


@contextlib.contextmanager
def placeholder_servers(hosts: list[str]) -> Iterator[dict[str, tuple[Any, Any]]]:
    """Start a STARTTLS and an implicit-TLS sink for each host; yield host -> the pair."""
    from smtpx.testing import SinkServer

    with contextlib.ExitStack() as stack:
        servers = {}
        for host in hosts:
            starttls = SinkServer(starttls=True, auth=CREDENTIALS, hostname=host)
            implicit = SinkServer(implicit_tls=True, auth=CREDENTIALS, hostname=host)
            servers[host] = (stack.enter_context(starttls), stack.enter_context(implicit))
        yield servers


@contextlib.contextmanager
def mapped_network(servers: dict[str, tuple[Any, Any]]) -> Iterator[None]:
    """Resolve the placeholders to the sinks and trust their CAs; refuse any other name."""
    real_getaddrinfo = socket.getaddrinfo
    real_default_context = ssl.create_default_context
    loopback = {"127.0.0.1", "::1", "localhost"}
    authorities = "".join(
        server.ca_pem.decode("ascii") for pair in servers.values() for server in pair
    )

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii") if isinstance(host, bytes) else host
        if name in servers:
            starttls, implicit = servers[name]
            server = implicit if str(port) == str(IMPLICIT_TLS_PORT) else starttls
            return real_getaddrinfo(server.host, server.port, *args, **kwargs)
        if name in loopback or name is None:
            return real_getaddrinfo(host, port, *args, **kwargs)
        raise socket.gaierror(
            socket.EAI_NONAME, f"{name!r} is not a placeholder of the docs harness"
        )

    def create_default_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = real_default_context(*args, **kwargs)
        if authorities and context.verify_mode != ssl.CERT_NONE:
            context.load_verify_locations(cadata=authorities)
        return context

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    ssl.create_default_context = create_default_context  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo
        ssl.create_default_context = real_default_context


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    # Padding keeps the page's line numbers in tracebacks.
    source = "\n" * block.line + block.code + "\n"
    code = compile(
        source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    before = set(namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))  # the page's own example
    else:
        exec(code, namespace)
    for name in sorted(set(namespace) - before):
        function = namespace[name]
        if name.startswith("test_") and callable(function):
            print(f"  calling {name}()")
            result = function()
            if inspect.iscoroutine(result):
                asyncio.run(result)


def run_shell(block: Block) -> None:
    from smtpx.cli import main

    for argv in shell_commands(block):
        print(f"  $ smtpx {shlex.join(argv)}")
        status = main(argv)
        if status != 0:
            raise SystemExit(f"{block.where()}: `smtpx {shlex.join(argv)}` exited {status}")


def run_page(path: Path) -> int:
    """Run every runnable block of the page; return how many ran."""
    blocks = [block for block in parse(path) if block.runnable_kind]
    for block in blocks:  # check every shell block before running anything
        if block.not_run is None and block.lang in SHELL_LANGS:
            shell_commands(block)
    text = path.read_text(encoding="utf-8")
    hosts = [host for host in PLACEHOLDER_HOSTS if host in text]
    namespace: dict[str, Any] = {"__name__": "__docs__", "message": sample_message()}
    ran = 0
    with (
        placeholder_servers(hosts) as servers,
        mapped_network(servers),
        tempfile.TemporaryDirectory() as scratch,
        contextlib.chdir(scratch),
    ):
        for block in blocks:
            if block.not_run is not None:
                print(f"{block.where()}: not run: {block.not_run}")
                continue
            print(f"{block.where()}: {block.lang}")
            if block.lang in PYTHON_LANGS:
                run_python(block, namespace)
            else:
                run_shell(block)
            ran += 1
        received = sum(len(server.messages) for pair in servers.values() for server in pair)
    print(f"{path}: {ran} blocks ran, {received} messages received by the placeholder servers")
    return ran


def main(argv: list[str]) -> int:
    for name in argv:
        try:
            run_page(Path(name))
        except PageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
