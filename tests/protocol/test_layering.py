"""The layering of STYLE.md, checked on the source: imports point down only.

L0 (``_protocol``) and L1 (``auth``, flows, exceptions, addresses) import no I/O module, so
the blocking and asyncio drivers can share them; the core imports nothing of smtpx outside
itself; and no module imports from a layer above its own.  Every violation is reported as
``file:line``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "smtpx"

#: The top-level parts of smtpx (modules and subpackages) and their layer.
LAYERS = {
    "_protocol": 0,
    "auth": 1,
    "_flows": 1,
    "_exceptions": 1,
    "_addresses": 1,
    "_timeouts": 1,
    "_message": 1,
    "_results": 1,
    "_steps": 1,
    "_wire": 1,
    "_log": 1,
    "_plan": 1,
    "_engine": 1,
    "_outcomes": 1,
    "_url": 1,
    "_login": 1,
    "_session": 1,
    "_pool": 1,
    "_compose": 1,
    "_security": 2,
    "_clientbase": 2,
    "_sync": 2,
    "_async": 2,
    "__init__": 3,
    "cli": 3,
    "_stdlib_names": 3,
    "__main__": 3,
    "testing": 3,
    # The outbox: its policy (states, retry schedule) is pure, but its workers open
    # connections through the drivers (smtpx.connect) and sleep, so the package is L2.
    "outbox": 2,
    "pytest_plugin": 3,
    "django": 3,
}

#: Modules that mean sockets, TLS or an event loop: only the drivers (L2) may use them.
IO_MODULES = frozenset({"socket", "ssl", "asyncio", "selectors"})
NO_IO_PARTS = frozenset({"_protocol", "auth", "_log", "_pool"})
#: The pool's decisions take the time as an argument and leave waiting to the drivers:
#: no clock, no threads (STYLE.md, "pool decisions").
CLOCK_MODULES = frozenset({"time", "threading", "concurrent", "multiprocessing"})
CLOCK_FREE_PARTS = frozenset({"_pool"})


@dataclass(frozen=True, slots=True)
class Import:
    where: str  # "file:line"
    target: str  # absolute dotted name; for "from m import n", "m.n"
    module: str  # the module named in the statement ("m" for "from m import n")


@dataclass(frozen=True, slots=True)
class Module:
    name: str  # dotted, "smtpx._sync._client"; a package's __init__ is the package's name
    is_package: bool
    filename: str

    @property
    def part(self) -> str:
        """The top-level part of smtpx the module belongs to (``__init__`` for smtpx)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else "__init__"


def _module_for(path: Path) -> Module:
    relative = path.relative_to(SRC).with_suffix("")
    parts = list(relative.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return Module(".".join(parts), is_package, str(path.relative_to(SRC.parent)))


def _all_modules() -> list[tuple[Module, str]]:
    return [
        (_module_for(path), path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _imports(source: str, module: Module) -> Iterator[Import]:
    """Every import in *source*, resolved to absolute names (relative ones included)."""
    tree = ast.parse(source, module.filename)
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(tree):
        where = f"{module.filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(where, alias.name, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    # Beyond the top-level package: report it as an import of nothing known.
                    yield Import(where, "." * node.level, "." * node.level)
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                if node.module:
                    base = f"{base}.{node.module}"
            else:
                base = node.module or ""
            for alias in node.names:
                yield Import(where, f"{base}.{alias.name}", base)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            # __import__("socket") and importlib.import_module("socket") count as imports.
            name = node.args[0].value
            yield Import(where, name, name)


def _part_of(target: str, known: frozenset[str]) -> str | None:
    """The smtpx part an absolute import target lies in, or None when not in smtpx.

    ``from smtpx import SMTP`` names something of ``smtpx/__init__.py`` (L3); ``from smtpx
    import _flows`` names the module ``_flows``.
    """
    parts = target.split(".")
    if parts[0] != "smtpx":
        return None
    if len(parts) > 1 and parts[1] in known:
        return parts[1]
    return "__init__"


def violations(source: str, module: Module, known: frozenset[str] = frozenset(LAYERS)) -> list[str]:
    """What is wrong with the imports of *module*, one ``file:line: reason`` per problem."""
    found: list[str] = []
    part = module.part
    layer = LAYERS.get(part)
    if layer is None:
        found.append(f"{module.filename}:1: {module.name} is in no layer (add it to LAYERS)")
    for imp in _imports(source, module):
        if imp.target.startswith("."):
            found.append(f"{imp.where}: relative import beyond the top-level package")
            continue
        top = imp.module.split(".")[0]
        if part in NO_IO_PARTS and top in IO_MODULES:
            found.append(f"{imp.where}: {module.name} imports the I/O module {imp.module!r}")
        if part in CLOCK_FREE_PARTS and top in CLOCK_MODULES:
            found.append(f"{imp.where}: {module.name} imports the clock or threads {imp.module!r}")
        target_part = _part_of(imp.target, known)
        if part == "_protocol":
            if target_part is None and top not in sys.stdlib_module_names:
                found.append(f"{imp.where}: the core imports {imp.module!r}, not the stdlib")
            if target_part is not None and target_part != "_protocol":
                found.append(f"{imp.where}: the core imports {imp.target!r} from outside it")
        if target_part is None or layer is None:
            continue
        target_layer = LAYERS.get(target_part)
        if target_layer is None:
            found.append(f"{imp.where}: imports {imp.target!r}, which is in no layer")
        elif target_layer > layer:
            found.append(
                f"{imp.where}: L{layer} module {module.name} imports L{target_layer} {imp.target!r}"
            )
    return found


def test_the_tree_is_where_the_check_looks() -> None:
    modules = [module for module, _ in _all_modules()]
    parts = {module.part for module in modules}
    assert {"_protocol", "auth", "_flows", "_sync", "__init__"} <= parts
    assert sum(module.part == "_protocol" for module in modules) >= 5


def test_every_module_respects_the_layers() -> None:
    modules = _all_modules()
    known = frozenset(LAYERS) | {module.part for module, _ in modules}
    problems = [
        problem for module, source in modules for problem in violations(source, module, known)
    ]
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_the_resolver_sees_the_real_imports() -> None:
    """The check is not vacuous: it resolves the imports the drivers are known to make."""
    by_name = {module.name: (module, source) for module, source in _all_modules()}
    client, source = by_name["smtpx._sync._client"]
    targets = {imp.target for imp in _imports(source, client)}
    assert "smtpx._flows" in targets  # from .. import _flows
    assert "smtpx._protocol.ProtocolError" in targets  # from .._protocol import ProtocolError
    assert "socket" in targets
    reply, source = by_name["smtpx._protocol._reply"]
    assert "smtpx._protocol._errors.RemoteProtocolError" in {
        imp.target for imp in _imports(source, reply)
    }


CORE = Module("smtpx._protocol._example", False, "src/smtpx/_protocol/_example.py")
CORE_INIT = Module("smtpx._protocol", True, "src/smtpx/_protocol/__init__.py")
AUTH = Module("smtpx.auth", True, "src/smtpx/auth/__init__.py")
FLOWS = Module("smtpx._flows", False, "src/smtpx/_flows.py")
DRIVER = Module("smtpx._sync._client", False, "src/smtpx/_sync/_client.py")
POOL = Module("smtpx._pool._policy", False, "src/smtpx/_pool/_policy.py")


@pytest.mark.parametrize(
    ("module", "source", "line", "reason"),
    [
        (CORE, "import socket\n", 1, "I/O module"),
        (CORE, "import ssl as tls\n", 1, "I/O module"),
        (CORE, "import asyncio.streams\n", 1, "I/O module"),
        (CORE, "from selectors import DefaultSelector\n", 1, "I/O module"),
        (CORE, "def f():\n    import socket\n", 2, "I/O module"),
        (CORE, "import importlib\nimportlib.import_module('ssl')\n", 2, "I/O module"),
        (CORE, "x = 1\n__import__('socket')\n", 2, "I/O module"),
        (AUTH, "from socket import create_connection\n", 1, "I/O module"),
        (AUTH, "import hmac\nfrom asyncio import sleep\n", 2, "I/O module"),
        (CORE, "from .._exceptions import SMTPException\n", 1, "from outside"),
        (CORE, "from .. import _flows\n", 1, "from outside"),
        (CORE_INIT, "from ..auth import plain_response\n", 1, "from outside"),
        (CORE, "import smtpx._addresses\n", 1, "from outside"),
        (CORE, "from smtpx import SMTP\n", 1, "from outside"),
        (CORE, "import aiosmtpd\n", 1, "not the stdlib"),
        (AUTH, "from .._sync import SMTP\n", 1, "imports L2"),
        (FLOWS, "from ._sync._client import SMTP\n", 1, "imports L2"),
        (FLOWS, "import smtpx\n", 1, "imports L3"),
        (FLOWS, "from . import testing\n", 1, "imports L3"),
        (FLOWS, "from smtpx import SMTP\n", 1, "imports L3"),
        (DRIVER, "from ... import x\n", 1, "beyond the top-level package"),
        (DRIVER, "from ..cli import main\n", 1, "imports L3"),
        (POOL, "import time\n", 1, "clock or threads"),
        (POOL, "from threading import Lock\n", 1, "clock or threads"),
        (POOL, "from concurrent.futures import Future\n", 1, "clock or threads"),
        (POOL, "import asyncio\n", 1, "I/O module"),
        (POOL, "from .._sync import SMTP\n", 1, "imports L2"),
    ],
)
def test_the_check_catches_a_violation(module: Module, source: str, line: int, reason: str) -> None:
    problems = violations(source, module)
    assert problems, "the check let a violation through"
    assert all(problem.startswith(f"{module.filename}:{line}: ") for problem in problems)
    assert any(reason in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("module", "source"),
    [
        (CORE, "from ._reply import Reply\nimport enum\nfrom collections import deque\n"),
        (CORE_INIT, "from ._commands import Command\n"),
        (CORE, "from smtpx._protocol._limits import MAX_LINE\n"),
        (AUTH, "import hmac\nfrom .._protocol import MAX_CHALLENGES\n"),
        (FLOWS, "from ._protocol import Extensions\nfrom ._addresses import quoteaddr\n"),
        (DRIVER, "import socket\nimport ssl\nfrom .. import _flows\nfrom ..auth import x\n"),
        (POOL, "import random\nfrom .._results import SendResult\nfrom ._retry import R\n"),
        (Module("smtpx", True, "src/smtpx/__init__.py"), "import socket\nfrom . import _sync\n"),
    ],
)
def test_the_check_accepts_allowed_imports(module: Module, source: str) -> None:
    assert violations(source, module) == []


def test_a_module_in_no_layer_is_reported() -> None:
    stray = Module("smtpx._stray", False, "src/smtpx/_stray.py")
    assert violations("", stray) == [
        "src/smtpx/_stray.py:1: smtpx._stray is in no layer (add it to LAYERS)"
    ]
