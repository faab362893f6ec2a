"""smtpx.AsyncPool: the failure table (tests/pool/scenarios.py) on an event loop, and
asyncio-only behaviour against the embedded sink server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import smtpx
from smtpx.testing import SinkServer

from . import scenarios
from .scenarios import MESSAGE, SENDER, AsyncFacade


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.__name__)
def test_failure_table(scenario: Callable[[scenarios.Make], None]) -> None:
    scenario(AsyncFacade)


def test_many_tasks_share_a_pool() -> None:
    """Forty tasks sending through one pool at once: every message arrives once, over
    at most max_connections connections."""

    async def main(url: str) -> list[smtpx.PoolResult]:
        async with smtpx.AsyncPool(url, policy="compat", max_connections=3) as pool:
            return await asyncio.wait_for(
                asyncio.gather(*(pool.send(MESSAGE, SENDER, [f"t{n}@x.org"]) for n in range(40))),
                20,
            )

    with SinkServer() as server:
        results = asyncio.run(main(f"smtp://{server.host}:{server.port}"))
        got = sorted(r for m in server.wait_for_messages(40) for r in m.rcpt_tos)
    assert all(r.ok for r in results)
    assert got == sorted(f"t{n}@x.org" for n in range(40))


def test_submit_returns_a_future() -> None:
    async def main(url: str) -> smtpx.PoolResult:
        pool = smtpx.AsyncPool(url, policy="compat")
        future = pool.submit(MESSAGE, SENDER, ["a@x.org"])
        assert isinstance(future, asyncio.Future)
        result = await asyncio.wait_for(future, 10)
        assert await pool.close() == []
        return result

    with SinkServer() as server:
        result = asyncio.run(main(f"smtp://{server.host}:{server.port}"))
    assert result.ok


def test_pool_bound_to_one_loop() -> None:
    pool = smtpx.AsyncPool("smtp://127.0.0.1:9", policy="compat", retry=None)

    async def first() -> None:
        pool.submit(MESSAGE, SENDER, ["a@x.org"])
        await pool.close()

    async def second() -> None:
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(MESSAGE, SENDER, ["a@x.org"])

    asyncio.run(first())
    asyncio.run(second())


def test_same_api_as_the_blocking_pool() -> None:
    """Pool and AsyncPool: the same public methods with the same parameters; send,
    send_many and close are coroutines in AsyncPool, submit is not (it returns a
    future)."""
    import inspect

    def methods(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(value)
            for name, value in vars(cls).items()
            if not name.startswith("_") and callable(value)
        }

    blocking, asynchronous = methods(smtpx.Pool), methods(smtpx.AsyncPool)
    assert blocking.keys() == asynchronous.keys() == {"submit", "send", "send_many", "close"}
    for name in blocking:
        assert list(blocking[name].parameters) == list(asynchronous[name].parameters), name
    assert inspect.signature(smtpx.Pool.__init__) == inspect.signature(smtpx.AsyncPool.__init__)
    for name in ("send", "send_many", "close"):
        assert inspect.iscoroutinefunction(getattr(smtpx.AsyncPool, name)), name
    assert not inspect.iscoroutinefunction(smtpx.AsyncPool.submit)
