"""The blocking and asyncio classes offer the same API: names, parameters, coroutines."""

from __future__ import annotations

import inspect

import pytest

import smtpx
from smtpx._async import AsyncLMTP, AsyncSMTP, AsyncSMTP_SSL

PAIRS = [(smtpx.SMTP, AsyncSMTP), (smtpx.SMTP_SSL, AsyncSMTP_SSL), (smtpx.LMTP, AsyncLMTP)]
IDS = ["SMTP", "SMTP_SSL", "LMTP"]

# Methods that only compute (no I/O): plain functions in both classes.
NO_IO = {
    "has_extn",
    "set_debuglevel",
    "add_observer",
    "remove_observer",
    "auth_cram_md5",
    "auth_plain",
    "auth_login",
}
# The one documented difference: the asyncio constructor does no I/O, so connect()
# without arguments connects to the address given to the constructor.
CONNECT_DEFAULTS = {"host": None, "port": None}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value)
    }


def parameters(function: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(("sync", "asynchronous"), PAIRS, ids=IDS)
def test_same_public_methods(sync: type, asynchronous: type) -> None:
    assert public_methods(sync) == public_methods(asynchronous)


@pytest.mark.parametrize(("sync", "asynchronous"), PAIRS, ids=IDS)
def test_same_parameters(sync: type, asynchronous: type) -> None:
    for name in sorted(public_methods(sync) | {"__init__"}):
        expected = parameters(getattr(sync, name))
        if name == "connect":
            expected = [(n, k, CONNECT_DEFAULTS.get(n, d)) for n, k, d in expected]
        assert parameters(getattr(asynchronous, name)) == expected, name


@pytest.mark.parametrize(("sync", "asynchronous"), PAIRS, ids=IDS)
def test_io_methods_are_coroutines(sync: type, asynchronous: type) -> None:
    for name in public_methods(asynchronous):
        method = getattr(asynchronous, name)
        if name in NO_IO:
            assert not inspect.iscoroutinefunction(method), name
        else:
            assert inspect.iscoroutinefunction(method), name
    assert inspect.iscoroutinefunction(asynchronous.__aenter__)
    assert inspect.iscoroutinefunction(asynchronous.__aexit__)


@pytest.mark.parametrize(("sync", "asynchronous"), PAIRS, ids=IDS)
def test_every_step_a_flow_names_is_a_coroutine(sync: type, asynchronous: type) -> None:
    # The private methods flows call through ``Call`` must be awaitable in the async class.
    for name in ("_rset", "_start_tls", "_cork", "_flush"):
        if hasattr(sync, name):
            assert inspect.iscoroutinefunction(getattr(asynchronous, name)), name
