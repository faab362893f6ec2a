"""The examples in the docstrings of the core, the addresses helpers, the exceptions and
the SASL mechanisms."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import smtpx._protocol
import smtpx.auth


def _modules() -> list[ModuleType]:
    core = [smtpx._protocol] + [
        importlib.import_module(f"smtpx._protocol.{info.name}")
        for info in pkgutil.iter_modules(smtpx._protocol.__path__)
    ]
    sasl = [
        importlib.import_module(f"smtpx.auth.{info.name}")
        for info in pkgutil.iter_modules(smtpx.auth.__path__)
    ]
    return [
        *core,
        importlib.import_module("smtpx._addresses"),
        importlib.import_module("smtpx._exceptions"),
        importlib.import_module("smtpx.auth"),
        *sasl,
    ]


MODULES = _modules()

# ELLIPSIS: the examples elide exception details with "..." (Command's refusal message).
FLAGS = doctest.ELLIPSIS


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doctests_pass(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_doctests_exist() -> None:
    attempted = sum(
        doctest.testmod(module, optionflags=FLAGS, verbose=False, report=False).attempted
        for module in MODULES
    )
    assert attempted > 0
    assert len(MODULES) >= 9  # the core's package and 7 modules, _addresses, auth
