"""One message's way through the pool: its sends, its attempts, its final result.

Both pool drivers keep a ``Job`` per message.  The job starts with one send (every
recipient, due at once); after each attempt ``record`` feeds the outcome to ``plan_next``
and answers the sends still to make (only the recipients deferred, the rest of a "too many
recipients" transaction, or a message a lost connection left behind).  When no send is
left, ``result()`` is the message's ``PoolResult``.  No clock, no I/O: the driver passes
``now``.

>>> from smtpx._protocol import Reply
>>> from smtpx._results import RecipientResult, SendResult
>>> job = Job(0, b"Subject: hi\\r\\n\\r\\nhello\\r\\n", "me@example.org",
...           ["a@example.org", "b@example.org"], now=0.0, schedule=RetrySchedule(first=1.0))
>>> (send,) = job.start()
>>> job.item(send)[2]  # the deliver_many item: (message, sender, recipients)
['a@example.org', 'b@example.org']
>>> ok, busy = Reply(250, (b"2.1.5 Ok",)), Reply(451, (b"4.3.0 try later",))
>>> result = SendResult(
...     (RecipientResult("a@example.org", ok), RecipientResult("b@example.org", busy)),
...     Reply(250, (b"2.0.0 queued",)),
... )
>>> [s.recipients for s in job.record(send, result, now=0.1, rand=lambda: 0.0)]
[('b@example.org',)]
>>> job.done
False
>>> job.expire_all()
>>> result = job.result()
>>> result.delivered, result.expired, result.ok
(['a@example.org'], ['b@example.org'], False)
"""

from __future__ import annotations

import email.message
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._message import envelope_from_headers
from .._results import Recipient, SendResult
from ._fates import Address, Outcome, RecipientFate, Send, State, plan_next
from ._fates import History as _History
from ._retry import RetrySchedule

__all__ = ["NO_RETRY", "Job", "PoolResult", "envelope_recipients", "retained"]

#: ``retry=None``: no backoff retry; a deferred recipient is expired after its attempt.
#: (A "too many recipients" rest and a message a lost connection never let start are
#: still sent at once: they are not retries of a refusal.)
NO_RETRY = RetrySchedule(max_retries=0)


@dataclass(frozen=True, slots=True, eq=False)
class PoolResult:
    """What the pool did with one message.

    - ``message_id``: the message's ``Message-ID`` header when it has one, else its
      ``index``;
    - ``index``: its position in ``send_many``, or its submission number in the pool;
    - ``recipients``: each recipient's final ``RecipientFate`` (state and the reply or
      error that decided it), in the order given;
    - ``attempts``: each attempt's outcome, in order: the ``SendResult`` or exception
      ``deliver_many`` gave (or the error met reaching the server).

    >>> PoolResult(3, {}, []).ok
    True
    """

    message_id: str | int
    recipients: Mapping[str, RecipientFate]
    attempts: list[SendResult | Exception]
    index: int = 0

    def _in(self, state: State) -> list[str]:
        return [a for a, fate in self.recipients.items() if fate.state is state]

    @property
    def delivered(self) -> list[str]:
        """The recipients the server took responsibility for."""
        return self._in(State.DELIVERED)

    @property
    def refused(self) -> list[str]:
        """The recipients refused for good (5yz)."""
        return self._in(State.REFUSED)

    @property
    def unknown(self) -> list[str]:
        """The recipients whose message may or may not have been taken (the connection
        was lost after the content): never sent again automatically."""
        return self._in(State.UNKNOWN)

    @property
    def expired(self) -> list[str]:
        """The recipients still deferred (4yz) when the retries ran out."""
        return self._in(State.EXPIRED)

    @property
    def failed(self) -> list[str]:
        """The recipients of a message that could not be sent for a local reason (too
        large, an extension missing, the security policy, bad content)."""
        return self._in(State.FAILED)

    @property
    def ok(self) -> bool:
        """Every recipient was delivered."""
        return all(fate.state is State.DELIVERED for fate in self.recipients.values())

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for fate in self.recipients.values():
            counts[fate.state.value] = counts.get(fate.state.value, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        return f"<PoolResult {self.message_id!r}: {summary or 'no recipients'}>"


def _address(recipient: Address) -> str:
    return recipient.address if isinstance(recipient, Recipient) else recipient


def envelope_recipients(message: Any, recipients: Any) -> tuple[Address, ...]:
    """The recipients of a message as a tuple (from its headers when not given, as
    ``deliver`` does), without repeats: the pool follows each one by its address."""
    if recipients is None:
        if not isinstance(message, email.message.Message):
            raise ValueError("recipients are needed unless the message is an email Message")
        _, found = envelope_from_headers(message, "", None)
        recipients = found
    if isinstance(recipients, str | Recipient):
        recipients = [recipients]
    if not isinstance(recipients, Iterable):
        raise TypeError(f"recipients must be addresses, not {type(recipients).__name__}")
    seen: set[str] = set()
    out: list[Address] = []
    for r in recipients:
        if not isinstance(r, str | Recipient):
            raise TypeError(f"a recipient must be a str or a Recipient, not {type(r).__name__}")
        if _address(r) not in seen:
            seen.add(_address(r))
            out.append(r)
    if not out:
        raise ValueError("the message has no recipients")
    return tuple(out)


def retained(message: Any) -> Any:
    """The message as the pool keeps it until every recipient is final: a retry sends it
    again, so a file or an iterable of bytes is read once, here, into bytes."""
    if isinstance(message, str | bytes | email.message.Message):
        return message
    if isinstance(message, bytearray | memoryview):
        return bytes(message)
    read = getattr(message, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, bytes):
            raise TypeError("a message file must be opened in binary mode")
        return data
    if isinstance(message, Iterable):
        pieces = list(message)
        if not all(isinstance(p, bytes | bytearray | memoryview) for p in pieces):
            raise TypeError("an iterable message must give bytes")
        return b"".join(pieces)
    raise TypeError(f"cannot send a {type(message).__name__} as a message")


def _message_id(message: Any, index: int) -> str | int:
    if isinstance(message, email.message.Message):
        value = message.get("Message-ID")
        if value is not None:
            return str(value).strip()
    return index


@dataclass(eq=False)
class Job:
    """A message in the pool (see the module docstring)."""

    index: int
    message: Any
    sender: str | None
    recipients: Iterable[Address]
    now: float
    schedule: RetrySchedule = field(default_factory=RetrySchedule)

    def __post_init__(self) -> None:
        self.recipients = tuple(self.recipients)
        self.message_id = _message_id(self.message, self.index)
        self.history = _History(first=self.now)
        self.fates: dict[str, RecipientFate] = {}
        self.last: dict[str, RecipientFate] = {}  # each recipient's latest state
        self.attempts: list[SendResult | Exception] = []
        self.waiting: list[Send] = []  # sends made but not yet started
        self.running = 0  # sends being attempted

    def start(self) -> tuple[Send, ...]:
        """The first send: every recipient, at once."""
        send = Send(tuple(self.recipients), self.now, retry=False)
        self.waiting.append(send)
        return (send,)

    def item(self, send: Send) -> tuple[Any, str | None, list[Address]]:
        """The ``deliver_many`` item for *send* (the send is now running)."""
        self.waiting.remove(send)
        self.running += 1
        return (self.message, self.sender, list(send.recipients))

    def record(
        self,
        send: Send,
        outcome: Outcome,
        now: float,
        rand: Callable[[], float] = random.random,
    ) -> tuple[Send, ...]:
        """The attempt of *send* ended with *outcome*: the sends it leaves to make."""
        self.running -= 1
        if isinstance(outcome, Exception | SendResult):
            self.attempts.append(outcome)
        decision = plan_next(outcome, send.recipients, now, self.history, self.schedule, rand)
        self.history = decision.history
        for fate in decision.states:
            self.last[fate.address] = fate
        for fate in decision.finals:
            self.fates[fate.address] = fate
        self.waiting.extend(decision.sends)
        return decision.sends

    def expire(self, send: Send) -> None:
        """*send* will not be made (the pool is closing): its recipients are expired,
        with the reason of their last attempt."""
        self.waiting.remove(send)
        for recipient in send.recipients:
            address = _address(recipient)
            last = self.last.get(address)
            self.fates[address] = RecipientFate(
                recipient, State.EXPIRED, last.reason if last is not None else None
            )

    def expire_all(self) -> None:
        """Expire every send not yet started."""
        for send in list(self.waiting):
            self.expire(send)

    @property
    def done(self) -> bool:
        return not self.waiting and not self.running

    def result(self) -> PoolResult:
        """The message's result (every recipient final once ``done``)."""
        ordered = {
            _address(r): self.fates[_address(r)]
            for r in self.recipients
            if _address(r) in self.fates
        }
        return PoolResult(self.message_id, ordered, list(self.attempts), self.index)
