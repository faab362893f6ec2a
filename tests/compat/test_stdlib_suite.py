"""The yardstick: CPython's own ``Lib/test/test_smtplib.py`` with ``smtplib`` aliased to
``smtpx``.  Every one of its tests must pass on every Python CI runs.

The module is imported with ``sys.modules["smtplib"]`` pointing at smtpx, so its global
``smtplib`` *is* smtpx: its ``smtplib.socket = mock_socket`` swaps, its exception checks and
its server-side assertions all run against smtpx.  pytest collects its TestCase classes
from this module's namespace.
"""

from __future__ import annotations

import importlib
import smtplib
import sys
import unittest

import pytest

import smtpx

# login() in clear while the server offers STARTTLS warns (a deliberate difference); the
# stdlib suite does exactly that, and the warning is not what it tests.
pytestmark = pytest.mark.filterwarnings("ignore::smtpx.InsecureWarning")

# The number of tests in each interpreter's own test_smtplib.py.
EXPECTED_COUNTS = {(3, 11): 82, (3, 12): 82, (3, 13): 83}


def _import_suite() -> object:
    sys.modules["smtplib"] = smtpx
    try:
        sys.modules.pop("test.test_smtplib", None)
        return importlib.import_module("test.test_smtplib")
    finally:
        sys.modules["smtplib"] = smtplib


_suite = _import_suite()
assert _suite.smtplib is smtpx  # type: ignore[attr-defined]

for _name, _value in vars(_suite).items():
    if isinstance(_value, type) and issubclass(_value, unittest.TestCase):
        globals()[_name] = _value
del _name, _value


def test_suite_size() -> None:
    """All of the suite is collected here, none left out."""
    loaded = unittest.defaultTestLoader.loadTestsFromModule(_suite)
    expected = EXPECTED_COUNTS.get(sys.version_info[:2])
    if expected is None:
        pytest.fail(f"no expected test count recorded for Python {sys.version_info[:2]}")
    assert loaded.countTestCases() == expected
