"""A clock the tests move, and a sending seam that answers from a script (no network)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from smtpx import Recipient, RecipientResult, Reply, SendResult
from smtpx._exceptions import SMTPNotAttempted, SMTPOutcomeUnknown

__all__ = ["Clock", "ScriptedSeam", "reply"]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reply(code: int, text: str = "") -> Reply:
    return Reply(code, (text.encode(),))


def _address(r: str | Recipient) -> str:
    return r.address if isinstance(r, Recipient) else r


class ScriptedSeam:
    """Answers each item from *answer(address) -> code or "unknown"/"not_attempted"*:
    per recipient codes at RCPT; "unknown" / "not_attempted" for the whole message when
    any recipient asks for it.  Counts the copies each recipient really received
    (accepted, or sent with an unknown outcome when *unknown_delivers*)."""

    def __init__(
        self, answer: Callable[[str], int | str], *, unknown_delivers: bool = True
    ) -> None:
        self.answer = answer
        self.unknown_delivers = unknown_delivers
        self.received: Counter[tuple[bytes, str]] = Counter()
        self.calls = 0
        self.items = 0

    def __call__(self, items: Iterator[Any]) -> list[SendResult | Exception]:
        self.calls += 1
        entries: list[SendResult | Exception] = []
        for content, _sender, recipients in items:
            self.items += 1
            addresses = [_address(r) for r in recipients]
            answers = [self.answer(a) for a in addresses]
            if "not_attempted" in answers:
                entries.append(SMTPNotAttempted("connection closed"))
                continue
            results = tuple(
                RecipientResult(a, reply(250 if isinstance(c, str) else c, "x.y.z"))
                for a, c in zip(addresses, answers, strict=True)
            )
            if "unknown" in answers:
                error = SMTPOutcomeUnknown("lost after the content")
                error.result = SendResult(results, results[-1].reply)
                if self.unknown_delivers:
                    for r in results:
                        if r.accepted:
                            self.received[content, r.address] += 1
                entries.append(error)
                continue
            for r in results:
                if r.accepted:
                    self.received[content, r.address] += 1
            entries.append(SendResult(results, reply(250, "2.0.0 queued as ABC")))
        return entries
