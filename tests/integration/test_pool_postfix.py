"""smtpx.Pool and smtpx.AsyncPool against the test Postfix: 200 messages over 4
connections (STARTTLS, the strict policy), every message delivered exactly once, with
the right Return-Path and Delivered-To (each mailbox read back)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

import smtpx

from .servers import PostfixServer, check_trace_fields, make_message, new_token

pytestmark = pytest.mark.integration

SENDER = "pool-sender@client.test"
ALICE = "alice@example.test"
COUNT = 200
DELIVERY_TIMEOUT = 60.0


def batch() -> tuple[list[str], list[tuple[bytes, str, list[str]]]]:
    tokens = [new_token() for _ in range(COUNT)]
    items = [(make_message(t, sender=SENDER, to=ALICE), SENDER, [ALICE]) for t in tokens]
    return tokens, items


def check_arrived_once(postfix: PostfixServer, tokens: list[str]) -> None:
    """Poll the maildir until every token is in, then: each exactly once, each with the
    trace fields of this sender and mailbox."""
    mailbox = postfix.mailbox(ALICE)
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    wanted = {t.encode() for t in tokens}
    while True:
        found: dict[bytes, list[bytes]] = {}
        for message in mailbox.messages():
            for token in wanted:
                if token in message:
                    found.setdefault(token, []).append(message)
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    counts = Counter({token: len(found.get(token, [])) for token in wanted})
    assert sorted(set(counts.values())) == [1], (
        f"{sum(1 for n in counts.values() if n == 0)} missing, "
        f"{sum(1 for n in counts.values() if n > 1)} duplicated"
    )
    for (message,) in found.values():
        check_trace_fields(message, sender=SENDER, recipient=ALICE)


def options(postfix: PostfixServer) -> dict[str, object]:
    return {
        "max_connections": 4,
        "context": postfix.tls.client_context(),
        "timeout": 20.0,
    }


def test_pool_200_messages(postfix: PostfixServer) -> None:
    tokens, items = batch()
    progress: list[int] = []
    url = f"smtp+starttls://{postfix.host}:{postfix.port}"
    with smtpx.Pool(url, **options(postfix)) as pool:  # type: ignore[arg-type]
        results = pool.send_many(items, progress=lambda done, total: progress.append(done))
        opened = pool._board.destinations[0].slots.open
    assert [r.index for r in results] == list(range(COUNT))
    assert all(r.ok and r.delivered == [ALICE] for r in results), [r for r in results if not r.ok][
        :3
    ]
    assert all(len(r.attempts) == 1 for r in results)
    assert progress == list(range(1, COUNT + 1))
    assert 1 <= opened <= 4
    check_arrived_once(postfix, tokens)


def test_async_pool_200_messages(postfix: PostfixServer) -> None:
    tokens, items = batch()
    url = f"smtp+starttls://{postfix.host}:{postfix.port}"

    async def main() -> list[smtpx.PoolResult]:
        async with smtpx.AsyncPool(url, **options(postfix)) as pool:  # type: ignore[arg-type]
            return await asyncio.wait_for(pool.send_many(items), DELIVERY_TIMEOUT)

    results = asyncio.run(main())
    assert all(r.ok and len(r.attempts) == 1 for r in results)
    check_arrived_once(postfix, tokens)
