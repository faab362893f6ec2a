"""The examples in the docstrings of the pool's decisions."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import smtpx._pool

MODULES = [smtpx._pool] + [
    importlib.import_module(f"smtpx._pool.{info.name}")
    for info in pkgutil.iter_modules(smtpx._pool.__path__)
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doctests_pass(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_every_module_has_examples() -> None:
    for module in MODULES[1:]:
        assert doctest.testmod(module, report=False).attempted > 0, module.__name__
