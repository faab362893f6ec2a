"""The examples in the docstrings: every module of the package that has one runs here.

The list is derived from the package, not written by hand: a module whose source holds a
``>>>`` example is collected, and it must run at least one (a module whose examples are all
skipped, or hidden where doctest cannot find them, fails).  A new module's examples run
without anyone remembering to list it.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import smtpx


def _modules_with_examples() -> list[ModuleType]:
    names = [smtpx.__name__] + [
        info.name
        for info in pkgutil.walk_packages(smtpx.__path__, prefix="smtpx.")
        # smtpx.django imports Django, which only tests/django_backend's runs install (with
        # Django 5.2 and 6.1); it holds no example (a test there checks that it has none).
        if not info.name.startswith("smtpx.django")
    ]
    modules = [importlib.import_module(name) for name in names]
    return [module for module in modules if ">>>" in inspect.getsource(module)]


MODULES = _modules_with_examples()

# ELLIPSIS: the examples elide exception details with "..." (Command's refusal message).
FLAGS = doctest.ELLIPSIS


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doctests_pass(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
    assert result.attempted > 0, f"{module.__name__} has '>>>' but no example that runs"


def test_the_list_is_the_package() -> None:
    """The walk finds the modules (a broken walk would run nothing and pass)."""
    names = {module.__name__ for module in MODULES}
    expected = {
        "smtpx",
        "smtpx._addresses",
        "smtpx._exceptions",
        "smtpx._protocol._commands",
        "smtpx._protocol._reply",
        "smtpx._results",
        "smtpx._timeouts",
        "smtpx.auth",
        "smtpx.testing",
    }
    assert expected <= names
    # Modules with no example are not listed (they would fail test_doctests_pass).
    assert "smtpx._protocol._connection" not in names
    assert "smtpx._protocol._limits" not in names
