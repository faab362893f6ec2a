"""``set_debuglevel`` output, byte for byte, in both front ends.

The golden files in ``golden/`` were recorded from the clients as they printed their debug
lines directly, before that output was produced from structured events.  Set
``SMTPX_WRITE_GOLDEN=1`` to record them again (and review the diff).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import smtpx

from .debug_scenarios import (
    SCENARIOS,
    Scenario,
    normalize,
    ssl_client,
    ssl_server,
    starttls_client,
    starttls_server,
)
from .scripted import Peer, scripted_server

GOLDEN = Path(__file__).parent / "golden"
TIMEOUT = 5


def _classes(kind: str, graph: bool, front: str) -> type[Any]:
    base: type[Any] = {
        ("smtp", "sync"): smtpx.SMTP,
        ("lmtp", "sync"): smtpx.LMTP,
        ("ssl", "sync"): smtpx.SMTP_SSL,
        ("smtp", "async"): smtpx.AsyncSMTP,
        ("lmtp", "async"): smtpx.AsyncLMTP,
        ("ssl", "async"): smtpx.AsyncSMTP_SSL,
    }[kind, front]
    if not graph:
        return base
    if front == "sync":

        class SyncGraph(base):  # type: ignore[misc,valid-type]
            def rcpt(self, recip: str, options: Any = ()) -> Any:
                return super().rcpt(recip, options)

        return SyncGraph

    class AsyncGraph(base):  # type: ignore[misc,valid-type]
        async def rcpt(self, recip: str, options: Any = ()) -> Any:
            return await super().rcpt(recip, options)

    return AsyncGraph


def _run_sync(
    cls: type[Any], port: int, script: Callable[[Any], Any], level: int, **kwargs: Any
) -> list[Any]:
    smtp = cls(local_hostname="client.test", timeout=TIMEOUT, **kwargs)
    smtp.set_debuglevel(level)
    smtp.connect("127.0.0.1", port)
    results: list[Any] = []
    steps = script(smtp)
    for result in steps:
        results.append(result)
    return results


def _run_async(
    cls: type[Any], port: int, script: Callable[[Any], Any], level: int, **kwargs: Any
) -> list[Any]:
    async def main() -> list[Any]:
        smtp = cls(local_hostname="client.test", timeout=TIMEOUT, **kwargs)
        smtp.set_debuglevel(level)
        await smtp.connect("127.0.0.1", port)
        results: list[Any] = []
        steps = script(smtp)
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                awaitable = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration:
                return results
            error = None
            if not asyncio.iscoroutine(awaitable):
                value = awaitable
                results.append(value)
                continue
            try:
                value = await awaitable
                results.append(value)
            except Exception as exc:
                error = exc

    return asyncio.run(main())


def _transcript(
    front: str,
    cls: type[Any],
    server: Callable[[Peer], None],
    script: Callable[[Any], Any],
    level: int,
    wrap: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> str:
    stderr = io.StringIO()
    with scripted_server(server, wrap=wrap) as (port, _), contextlib.redirect_stderr(stderr):
        run = _run_sync if front == "sync" else _run_async
        run(cls, port, script, level, **kwargs)
    return normalize(stderr.getvalue(), port)


def _check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SMTPX_WRITE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("front", ["sync", "async"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_debug_output_is_unchanged(scenario: Scenario, front: str) -> None:
    cls = _classes(scenario.kind, scenario.graph, front)
    text = _transcript(front, cls, scenario.server, scenario.script, scenario.level)
    _check(f"{scenario.name}-{front}", text)


@pytest.mark.parametrize("front", ["sync", "async"])
def test_debug_output_starttls(
    front: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    cls = _classes("smtp", False, front)
    text = _transcript(
        front, cls, starttls_server(server_context), starttls_client(client_context), 1
    )
    _check(f"starttls-{front}", text)


@pytest.mark.parametrize("front", ["sync", "async"])
def test_debug_output_implicit_tls(
    front: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    cls = _classes("ssl", False, front)
    text = _transcript(
        front, cls, ssl_server, ssl_client, 1, wrap=server_context, context=client_context
    )
    _check(f"implicit-tls-{front}", text)
