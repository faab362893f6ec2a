"""The pool against the pytest plugin's embedded server and its scripted faults
(``smtpx.testing.Fault``, the ``smtp_server_factory`` fixture): each failure kind, with
what the pool did, from the server's own record of what it received."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import smtpx
from smtpx.testing import Fault, SinkServer

SENDER = "app@example.org"
BODY = b"Subject: pooled\r\n\r\nhello\r\n"
# Retries within the test's time: 0.05 s, then doubling, at most 3.
FAST = smtpx.RetrySchedule(first=0.05, factor=2.0, cap=0.2, max_retries=3, lifetime=5.0)

Factory = Callable[..., SinkServer]


def pool(server: SinkServer, **options: Any) -> smtpx.Pool:
    options.setdefault("retry", FAST)
    return smtpx.Pool(server.url, policy="compat", timeout=5, **options)


def test_only_the_deferred_recipient_is_sent_again(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Fault(at="RCPT", nth=2, reply="451 4.3.0 try later")])
    with pool(server) as p:
        result = p.send(BODY, SENDER, ["a@example.org", "b@example.org"])
    assert sorted(result.delivered) == ["a@example.org", "b@example.org"]
    # Two transactions: a and b, then b alone. a never got a second copy.
    received = [m.rcpt_tos for m in server.wait_for_messages(2)]
    assert received == [("a@example.org",), ("b@example.org",)]


def test_too_many_recipients_go_in_a_further_transaction(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(
        faults=[Fault(at="RCPT", nth=3, reply="452 4.5.3 Too many recipients", times=None)]
    )
    rcpts = [f"r{i}@example.org" for i in range(5)]
    with pool(server, retry=None) as p:  # no retry needed: a 452 split is not a retry
        result = p.send(BODY, SENDER, rcpts)
    assert result.ok and sorted(result.delivered) == rcpts
    received = [m.rcpt_tos for m in server.wait_for_messages(3)]
    assert received == [tuple(rcpts[0:2]), tuple(rcpts[2:4]), tuple(rcpts[4:5])]


def test_a_drop_after_the_content_is_never_resent(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Fault(at="CONTENT", drop=True)])
    with pool(server) as p:
        result = p.send(BODY, SENDER, ["a@example.org"])
    assert result.unknown == ["a@example.org"]
    assert len(result.attempts) == 1
    assert isinstance(result.attempts[0], smtpx.SMTPOutcomeUnknown)
    assert server.messages == []  # the one attempt was cut; nothing was sent again


def test_421_at_the_greeting_is_retried(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Fault(at="GREETING", reply="421 4.3.2 busy")])
    with pool(server) as p:
        result = p.send(BODY, SENDER, ["a@example.org"])
    assert result.ok
    # Each refused connection is an attempt (the pool may have tried more than one before
    # the fault was spent); the last attempt delivered it.
    *refused, delivered = result.attempts
    assert refused and all(
        isinstance(e, smtpx.SMTPConnectError) and e.smtp_code == 421 for e in refused
    )
    assert isinstance(delivered, smtpx.SendResult)
    assert len(server.wait_for_messages(1)) == 1


def test_a_refused_recipient_is_not_retried(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(refuse_at_rcpt=["nobody@example.org"])
    with pool(server) as p:
        result = p.send(BODY, SENDER, ["a@example.org", "nobody@example.org"])
    assert result.delivered == ["a@example.org"]
    assert result.refused == ["nobody@example.org"]
    assert len(result.attempts) == 1


def test_a_server_closing_after_two_messages(smtp_server_factory: Factory) -> None:
    """421 at the third MAIL of each connection: what was left behind goes again on a new
    connection, each message delivered once."""
    server = smtp_server_factory(faults=[Fault.close_after(2, times=None)])
    with pool(server, max_connections=1) as p:
        results = p.send_many([(BODY, SENDER, [f"r{i}@example.org"]) for i in range(6)])
    assert all(result.ok for result in results)
    received = sorted(m.rcpt_tos[0] for m in server.wait_for_messages(6))
    assert received == [f"r{i}@example.org" for i in range(6)]


def test_async_pool_with_a_deferred_recipient(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Fault(at="RCPT", nth=2, reply="450 4.2.0 busy")])

    async def main() -> smtpx.PoolResult:
        async with smtpx.AsyncPool(server.url, policy="compat", timeout=5, retry=FAST) as p:
            return await p.send(BODY, SENDER, ["a@example.org", "b@example.org"])

    result = asyncio.run(main())
    assert sorted(result.delivered) == ["a@example.org", "b@example.org"]
    received = [m.rcpt_tos for m in server.wait_for_messages(2)]
    assert received == [("a@example.org",), ("b@example.org",)]
