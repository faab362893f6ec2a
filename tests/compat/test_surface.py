"""The public surface matches the running interpreter's smtplib: every public name, the
same signatures, exceptions that are the standard library's (subclasses, same arguments
and attributes), and a sorted, complete ``__all__``."""

from __future__ import annotations

import inspect
import smtplib
import types

import pytest

import smtpx

SMTPLIB_NAMES = sorted(
    name
    for name in dir(smtplib)
    if not name.startswith("_") and not isinstance(getattr(smtplib, name), types.ModuleType)
)


def _shape(obj: object) -> list[tuple[str, object, object]]:
    """A signature without annotations (smtplib has none; smtpx is fully typed)."""
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("name", SMTPLIB_NAMES)
def test_every_public_smtplib_name_exists(name: str) -> None:
    assert hasattr(smtpx, name)


@pytest.mark.parametrize(
    "name", [n for n in SMTPLIB_NAMES if inspect.isfunction(getattr(smtplib, n))]
)
def test_function_signatures(name: str) -> None:
    assert _shape(getattr(smtpx, name)) == _shape(getattr(smtplib, name))


@pytest.mark.parametrize("name", ["SMTP", "SMTP_SSL", "LMTP"])
def test_class_methods_and_signatures(name: str) -> None:
    ours, theirs = getattr(smtpx, name), getattr(smtplib, name)
    for attr, value in inspect.getmembers(theirs):
        if attr.startswith("__") and attr not in ("__init__", "__enter__", "__exit__"):
            continue
        assert hasattr(ours, attr), f"{name}.{attr} is missing"
        if inspect.isfunction(value):
            assert _shape(getattr(ours, attr)) == _shape(value), f"{name}.{attr}"
        elif not callable(value):
            assert getattr(ours, attr) == value, f"{name}.{attr}"


def test_class_hierarchy_matches() -> None:
    assert issubclass(smtpx.SMTP_SSL, smtpx.SMTP)
    assert issubclass(smtpx.LMTP, smtpx.SMTP)


EXCEPTION_ARGS = {
    "SMTPException": ("boom",),
    "SMTPNotSupportedError": ("no",),
    "SMTPServerDisconnected": ("gone",),
    "SMTPResponseException": (550, b"no"),
    "SMTPSenderRefused": (550, b"no", "a@example.org"),
    "SMTPRecipientsRefused": ({"b@example.org": (550, b"no")},),
    "SMTPDataError": (554, b"no"),
    "SMTPConnectError": (554, b"no"),
    "SMTPHeloError": (501, b"no"),
    "SMTPAuthenticationError": (535, b"no"),
}


def test_every_smtplib_exception_is_covered() -> None:
    stdlib = {n for n in SMTPLIB_NAMES if isinstance(getattr(smtplib, n), type)}
    assert {n for n in stdlib if issubclass(getattr(smtplib, n), Exception)} == set(EXCEPTION_ARGS)


@pytest.mark.parametrize("name", sorted(EXCEPTION_ARGS))
def test_exceptions_subclass_stdlib_with_same_arguments(name: str) -> None:
    ours, theirs = getattr(smtpx, name), getattr(smtplib, name)
    assert issubclass(ours, theirs)
    args = EXCEPTION_ARGS[name]
    mine, reference = ours(*args), theirs(*args)
    assert mine.args == reference.args
    assert str(mine) == str(reference)
    for attribute in ("smtp_code", "smtp_error", "sender", "recipients"):
        assert getattr(mine, attribute, None) == getattr(reference, attribute, None)
    # The hierarchy among smtpx's own classes mirrors smtplib's.
    for base in theirs.__mro__[1:]:
        if base.__module__ == "smtplib":
            assert issubclass(ours, getattr(smtpx, base.__name__))


def test_timeout_error_is_also_builtin_timeout() -> None:
    assert issubclass(smtpx.SMTPTimeoutError, TimeoutError)
    assert issubclass(smtpx.SMTPTimeoutError, smtplib.SMTPServerDisconnected)


def test_all_is_sorted_and_complete() -> None:
    assert sorted(smtpx.__all__) == sorted(set(smtpx.__all__))
    for name in smtpx.__all__:
        assert hasattr(smtpx, name), name
    public = {
        n
        for n, v in vars(smtpx).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public - {"annotations"} <= set(smtpx.__all__)


def test_assigning_the_socket_module_reaches_the_clients() -> None:
    import socket

    fake = types.SimpleNamespace(**vars(socket))
    smtpx.socket = fake  # type: ignore[attr-defined]
    try:
        from smtpx._sync import _client, _variants

        assert _client.socket is fake
        assert _variants.socket is fake  # LMTP's unix socket, SMTP_SSL
    finally:
        smtpx.socket = socket  # type: ignore[attr-defined]
    assert _client.socket is socket
    assert _variants.socket is socket
