"""smtplib's whole module namespace, private names included, resolves on smtpx.

Programs import more of smtplib than its documented names (``from smtplib import
_have_ssl, SMTP``, ``smtplib.email.utils``).  The list of names is taken from the running
interpreter's own ``smtplib``, so a name a new Python adds fails here until smtpx has it.
Each name must be the same kind of object: a module is the very same module, a class is a
class, a function is a function with smtplib's parameters and smtplib's results, and a
constant is equal.
"""

from __future__ import annotations

import inspect
import re
import smtplib
import types
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx

NAMES = sorted(dir(smtplib))

#: Module metadata: smtpx has its own (its name, file, loader, ``__all__``).
METADATA = frozenset(
    {
        "__all__",
        "__builtins__",
        "__cached__",
        "__doc__",
        "__file__",
        "__loader__",
        "__name__",
        "__package__",
        "__spec__",
    }
)


def _kind(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "value"


def _parameters(function: Callable[..., Any]) -> list[tuple[str, object, object]]:
    """Names, kinds and defaults: what a caller can pass (annotations left out)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_list_is_smtplibs_own() -> None:
    """The names below come from the interpreter, and include the ones programs import."""
    assert {"_have_ssl", "_addr_only", "_fix_eols", "_quote_periods", "SMTP"} <= set(NAMES)
    assert {"base64", "copy", "datetime", "email", "hmac", "io", "socket", "ssl"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_smtplib_name_resolves(name: str) -> None:
    assert hasattr(smtpx, name), f"smtpx has no {name!r}"


def test_from_import_of_private_names() -> None:
    """The line from a widely used mail library that failed with ImportError."""
    namespace: dict[str, object] = {}
    exec("from smtpx import _have_ssl, SMTP", namespace)
    assert namespace["_have_ssl"] is True
    assert namespace["SMTP"] is smtpx.SMTP


@pytest.mark.parametrize("name", [n for n in NAMES if n not in METADATA])
def test_same_kind_of_object(name: str) -> None:
    ours, theirs = getattr(smtpx, name), getattr(smtplib, name)
    assert _kind(ours) == _kind(theirs), (name, ours, theirs)
    kind = _kind(theirs)
    if kind == "module":
        assert ours is theirs
    elif kind == "function":
        assert inspect.isfunction(ours) or ours is theirs
        assert _parameters(ours) == _parameters(theirs)
    elif kind == "value":
        assert type(ours) is type(theirs)
        assert ours == theirs


def test_module_attributes_of_the_re_exports() -> None:
    """``smtplib.email`` has the submodules smtplib imported (``email.utils`` and more)."""
    for name in ("utils", "message", "generator"):
        assert getattr(smtpx.email, name) is getattr(smtplib.email, name)


def test_metadata_names_exist() -> None:
    for name in METADATA & set(NAMES):
        assert hasattr(smtpx, name)
    assert all(isinstance(name, str) for name in smtpx.__all__)
    # The public surface stays curated: no private name, no module.
    assert not [n for n in smtpx.__all__ if n.startswith("_")]
    assert not [n for n in smtpx.__all__ if isinstance(getattr(smtpx, n), types.ModuleType)]


# ------------------------------------------------------------------ the helpers' results

ADDRESSES = [
    "",
    "a@example.org",
    "<a@example.org>",
    "  <a@example.org>  ",
    "<>",
    "john",
    "John <john@example.org>",
    '"Doe, John" <john@example.org>',
    '"x y"@example.org',
    "(comment) a@example.org",
    "a@example.org (comment)",
    "a@example.org, b@example.org",
    "<@relay.example:a@example.org>",
    "José <josé@example.org>",
    "a@[127.0.0.1]",
    "a.b.c@d-e.example",
    "a..b@example.org",
    ".a@example.org",
    "a@-",
    "a@b.",
    "<a@example.org",
    "a@example.org>",
    "<<a@example.org>>",
    "a@example.org\r\n",
    "@",
    "a@",
    "@b",
    "a b@example.org",
]

TEXTS = [
    "",
    ".",
    "..",
    "\r",
    "\n",
    "\r\n",
    "\n\r",
    "\r\r\n",
    "\r\n\n",
    "abc\n.jkl\rfoo\r\n..blue",
    ".a\r.b\n.c\r\n.d",
    "a\r\n.\r\n",
    "x" * 100 + "\n." * 5,
    "no line end",
    "ümlaut\n.é",
]

BINARIES = [
    b"",
    b".",
    b"..",
    b".a\r\n.b\r.c\n..d",
    b"\n.\n.\n",
    b"\r.",
    b"abc",
    b"\xff\n.\x00",
    bytearray(b".a\n.b"),
    memoryview(b".a\n.b"),
]

#: Every function in smtplib's namespace, with the arguments its results are compared on.
FUNCTION_CASES: dict[str, list[tuple[object, ...]]] = {
    "_addr_only": [(a,) for a in ADDRESSES],
    "quoteaddr": [(a,) for a in ADDRESSES],
    "_fix_eols": [(t,) for t in TEXTS],
    "quotedata": [(t,) for t in TEXTS],
    "_quote_periods": [(b,) for b in BINARIES],
    "encode_base64": [(b"",), (b"\0user\0secret",), (b"x" * 100,), (b"abc", "")],
}


def _outcome(function: Callable[..., object], args: tuple[object, ...]) -> tuple[str, object]:
    """The result, or the type of the exception raised (its message may differ)."""
    try:
        return "returned", function(*args)
    except Exception as exc:
        return "raised", type(exc)


def test_every_smtplib_function_has_cases() -> None:
    """A helper a new Python adds fails here until it has a row above."""
    functions = {n for n in NAMES if _kind(getattr(smtplib, n)) == "function"}
    assert functions == set(FUNCTION_CASES)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        pytest.param(name, args, id=f"{name}-{index}")
        for name, cases in FUNCTION_CASES.items()
        for index, args in enumerate(cases)
    ],
)
def test_helper_results_match_smtplib(name: str, args: tuple[object, ...]) -> None:
    ours = _outcome(getattr(smtpx, name), args)
    theirs = _outcome(getattr(smtplib, name), args)
    assert ours == theirs
    if ours[0] == "returned":
        assert type(ours[1]) is type(theirs[1])


def test_wrong_types_raise_as_smtplib_does() -> None:
    """bytes where smtplib takes str (and the reverse) is a TypeError in both."""
    for name, arg in [("_fix_eols", b"a\n"), ("quotedata", b"a\n"), ("_quote_periods", ".a")]:
        assert _outcome(getattr(smtpx, name), (arg,)) == ("raised", TypeError)
        assert _outcome(getattr(smtplib, name), (arg,)) == ("raised", TypeError)


# Line-end and dot soup: the characters these helpers treat specially, in runs.
_LINES = st.lists(st.sampled_from(["\r", "\n", "\r\n", ".", "..", "a", " ", "é"])).map("".join)
_TEXT = st.one_of(st.text(), _LINES)
_BINARY = st.one_of(st.binary(), _LINES.map(lambda text: text.encode("utf-8")))
_ADDRESS = st.one_of(
    st.text(),
    st.text(alphabet='ab.@<> "(),:;\\[]\r\n'),
    st.sampled_from(ADDRESSES),
)


@given(_TEXT)
def test_fix_eols_matches_smtplib(text: str) -> None:
    assert smtpx._fix_eols(text) == smtplib._fix_eols(text)  # type: ignore[attr-defined]


@given(_TEXT)
def test_quotedata_matches_smtplib(text: str) -> None:
    assert smtpx.quotedata(text) == smtplib.quotedata(text)


@given(_BINARY)
def test_quote_periods_matches_smtplib(data: bytes) -> None:
    assert smtpx._quote_periods(data) == smtplib._quote_periods(data)  # type: ignore[attr-defined]


@settings(deadline=None)  # the address parser is slow on some inputs; the result matters
@given(_ADDRESS)
def test_address_helpers_match_smtplib(address: str) -> None:
    assert smtpx.quoteaddr(address) == smtplib.quoteaddr(address)
    assert smtpx._addr_only(address) == smtplib._addr_only(address)  # type: ignore[attr-defined]


def test_the_old_style_auth_pattern_is_smtplibs() -> None:
    """A compiled pattern compares by source and flags: the value test above holds it."""
    assert isinstance(smtpx.OLDSTYLE_AUTH, re.Pattern)
    assert smtpx.OLDSTYLE_AUTH.match("auth=PLAIN LOGIN")
