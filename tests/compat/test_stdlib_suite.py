"""The yardstick: CPython's own ``Lib/test/test_smtplib.py`` with ``smtplib`` aliased to
``smtpx``.  Every one of its tests must pass on every Python CI runs.

The module is imported with ``sys.modules["smtplib"]`` pointing at smtpx, so its global
``smtplib`` *is* smtpx: its ``smtplib.socket = mock_socket`` swaps, its exception checks and
its server-side assertions all run against smtpx.  pytest collects its TestCase classes
from this module's namespace.
"""

from __future__ import annotations

import functools
import importlib
import smtplib
import socket
import sys
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import smtpx

# login() in clear while the server offers STARTTLS warns (a deliberate difference); the
# stdlib suite does exactly that, and the warning is not what it tests.
pytestmark = pytest.mark.filterwarnings("ignore::smtpx.InsecureWarning")
pytest_plugins = ["pytester"]

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

# Every test must pass: a skip fails here (tests/compat/conftest.py), so a test that
# stops running cannot leave the suite green.
pytestmark = [pytestmark, pytest.mark.no_skip]

# testSourceAddress picks a free port, then binds the client to it; another process may
# take the port in between, and the test then skips ("couldn't bind to source port").
# Retried with a new port instead: a clash is the machine's, not smtpx's, but a skip
# would hide a real failure.
_PORT_CLASH = "couldn't bind to source port"
_ATTEMPTS = 5


def _retry_port_clash(test: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(test)
    def run(self: Any) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                test(self)
                return
            except unittest.SkipTest as skip:
                if _PORT_CLASH not in str(skip) or attempt == _ATTEMPTS - 1:
                    raise

    return run


for _name, _value in vars(_suite).items():
    if isinstance(_value, type) and issubclass(_value, unittest.TestCase):
        if "testSourceAddress" in vars(_value):
            _value.testSourceAddress = _retry_port_clash(_value.testSourceAddress)  # type: ignore[attr-defined]
        globals()[_name] = _value
del _name, _value


def test_suite_size() -> None:
    """All of the suite is collected here, none left out (and each must pass, none
    skipped: the no_skip mark)."""
    loaded = unittest.defaultTestLoader.loadTestsFromModule(_suite)
    expected = EXPECTED_COUNTS.get(sys.version_info[:2])
    if expected is None:
        pytest.fail(f"no expected test count recorded for Python {sys.version_info[:2]}")
    assert loaded.countTestCases() == expected


def test_a_port_clash_is_retried_not_skipped() -> None:
    """testSourceAddress given a source port that is taken twice still runs and passes."""
    busy = socket.create_server(("127.0.0.1", 0))
    taken = busy.getsockname()[1]
    real = _suite.socket_helper.find_unused_port  # type: ignore[attr-defined]
    picks: list[int] = []

    def find_unused_port(*args: Any, **kwargs: Any) -> int:
        picks.append(taken if len(picks) < 2 else real(*args, **kwargs))
        return picks[-1]

    test = _suite.DebuggingServerTests("testSourceAddress")  # type: ignore[attr-defined]
    helper = _suite.socket_helper  # type: ignore[attr-defined]
    with busy, mock.patch.object(helper, "find_unused_port", find_unused_port):
        result = unittest.TestResult()
        test.run(result)
    assert len(picks) == 3 and picks[:2] == [taken, taken]
    assert result.wasSuccessful() and not result.skipped, (result.errors, result.skipped)


def test_a_skip_fails_a_no_skip_test(pytester: pytest.Pytester) -> None:
    """The no_skip mark turns a skip (unittest's or pytest's) into a failure."""
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    no_skip: must run\n")
    pytester.makepyfile(
        """
        import unittest
        import pytest

        pytestmark = pytest.mark.no_skip

        class Case(unittest.TestCase):
            def test_skipped(self):
                self.skipTest("port clash")

        def test_also_skipped():
            pytest.skip("why")

        def test_runs():
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*skipped, but every test of this suite must run*port clash*"])
