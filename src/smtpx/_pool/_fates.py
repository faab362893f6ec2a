"""What one attempt did to each recipient, and what happens to it next.

An attempt's outcome is what ``deliver_many`` gives for the message (its ``SendResult``, or
the exception entry), or an error met while reaching the server.  ``classify`` reads it
into a ``State`` per recipient; ``plan_next`` turns those into the recipients' final states
and the sends still to make.  The table (``docs/sending.md`` describes the entries):

=============================  ==============================================================
outcome                        each recipient
=============================  ==============================================================
``SendResult``                 2yz *delivered* (LMTP: its own reply after the content
                               decides); 4yz *deferred*; 5yz *refused*; ``452`` "too many
                               recipients" *too many* (sent again at once, RFC 5321
                               section 4.5.3.1.10)
``SMTPSenderRefused``          every one by the MAIL reply: 4yz *deferred*, 5yz *refused*
``SMTPRecipientsRefused``,     accepted at RCPT but the message was not taken: by the
``SMTPDataError``              refusal (a ``421`` closing, the DATA or final reply): 4yz
                               *deferred*, 5yz *refused*; the others by their RCPT reply
``SMTPNotAttempted``           every one *not attempted*: the server took nothing, so the
                               whole message may go again (at once the first time in a
                               row, then with the backoff)
``SMTPOutcomeUnknown``         accepted at RCPT: *outcome unknown*, never sent again (it may
                               have been delivered; the caller decides); the others by their
                               RCPT reply (they were not in the message)
another reply error            4yz *deferred*, 5yz *refused* (greeting, HELO, AUTH)
connection errors (OSError)    *deferred*: nothing was sent, the server was not reachable
local errors                   *failed*: too large for the server, an extension missing, the
                               security policy, the caller's content failing: trying again
                               cannot help
=============================  ==============================================================

A recipient accepted in a ``SendResult`` is *delivered* and is never in a later send; one
accepted at RCPT in a transaction whose outcome is unknown is never in a later send either.

>>> from smtpx._protocol import Reply
>>> from smtpx._results import RecipientResult, SendResult
>>> ok, busy = Reply(250, (b"2.1.5 Ok",)), Reply(450, (b"4.2.1 try later",))
>>> result = SendResult(
...     (RecipientResult("a@example.org", ok), RecipientResult("b@example.org", busy)),
...     Reply(250, (b"2.0.0 queued as 4Xy",)),
... )
>>> decision = plan_next(result, ["a@example.org", "b@example.org"], now=100.0,
...                      history=History(first=100.0), rand=lambda: 0.0)
>>> [(f.recipient, f.state.value) for f in decision.finals]
[('a@example.org', 'delivered')]
>>> [(s.recipients, s.at, s.retry) for s in decision.sends]
[(('b@example.org',), 130.0, True)]
"""

from __future__ import annotations

import enum
import random
import smtplib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .._exceptions import (
    SMTPMessageTooLarge,
    SMTPNotAttempted,
    SMTPOutcomeUnknown,
    SMTPPolicyError,
    SMTPStateError,
)
from .._protocol import EnhancedStatus, Reply
from .._results import Recipient, RecipientResult, SendResult
from ._retry import RetrySchedule

__all__ = [
    "Decision",
    "History",
    "Outcome",
    "RecipientFate",
    "Send",
    "State",
    "classify",
    "is_throttle",
    "is_too_many",
    "plan_next",
]

#: What ``deliver_many`` gives for one message: its result or the exception entry.
Outcome = SendResult | BaseException
#: A recipient as the caller gave it: an address, or a ``Recipient`` with DSN options.
Address = str | Recipient
#: What decided a recipient's state: a reply, or the error that stopped the attempt.
Reason = Reply | BaseException | None


class State(enum.Enum):
    """A recipient's state after an attempt.  ``final`` ones are never sent again."""

    DELIVERED = "delivered"  # the server took responsibility for it (2yz)
    REFUSED = "refused"  # a permanent failure (5yz)
    DEFERRED = "deferred"  # a temporary failure (4yz): retried with the backoff
    TOO_MANY = "too many recipients"  # 452 at RCPT: a further transaction, at once
    NOT_ATTEMPTED = "not attempted"  # the server took nothing: safe to send again
    UNKNOWN = "outcome unknown"  # lost after the content: may have been delivered
    EXPIRED = "expired"  # still deferred when its retries or lifetime ran out
    FAILED = "failed"  # a local error (too large, policy...): trying again cannot help

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({State.DELIVERED, State.REFUSED, State.UNKNOWN, State.EXPIRED, State.FAILED})


@dataclass(frozen=True, slots=True)
class RecipientFate:
    """One recipient's state, and the reply or error that decided it."""

    recipient: Address
    state: State
    reason: Reason = None

    @property
    def address(self) -> str:
        return _address(self.recipient)


@dataclass(frozen=True, slots=True)
class Send:
    """Send the message again to *recipients*, not before *at* (the caller's clock).

    *retry* is True for a backoff retry (it counts against ``max_retries``), False for a
    send due at once: the rest of a "too many recipients" transaction, or a message a lost
    connection left behind.
    """

    recipients: tuple[Address, ...]
    at: float
    retry: bool


@dataclass(frozen=True, slots=True)
class History:
    """What the plan needs to know of a message's past attempts; ``Decision.history`` is
    the one to pass with the next attempt's outcome."""

    first: float  # when the message was first tried: the lifetime counts from here
    retries: int = 0  # backoff retries planned so far
    lost: int = 0  # attempts in a row that left a recipient not attempted


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt.

    - ``states``: this attempt's state for each recipient sent, in the order given;
    - ``finals``: the recipients that are done, with their final state (a recipient whose
      retry would come too late or one too many is ``EXPIRED``, with its last reason);
    - ``sends``: the sends to make, each with its recipients in the order given;
    - every recipient is in exactly one of ``finals`` and ``sends``;
    - ``throttled``: the outcome carried a throttling signal (for ``Concurrency``);
    - ``recipient_limit``: the recipients the server took before answering "too many
      recipients", when it did: a hint for the size of the next transactions.
    """

    states: tuple[RecipientFate, ...]
    finals: tuple[RecipientFate, ...]
    sends: tuple[Send, ...]
    history: History
    throttled: bool
    recipient_limit: int | None = None


def _address(recipient: Address) -> str:
    return recipient.address if isinstance(recipient, Recipient) else recipient


# ------------------------------------------------------------------ reading replies


def _by_code(code: int) -> State:
    if 200 <= code < 300:
        return State.DELIVERED
    return State.REFUSED if 500 <= code < 600 else State.DEFERRED


def is_too_many(reply: Reply) -> bool:
    """A RCPT reply saying the server's recipient limit is reached (RFC 5321 section
    4.5.3.1.10): ``452``, or ``552`` which RFC 821 listed wrongly and which clients
    "SHOULD treat as temporary", identified by the enhanced status ``X.5.3`` (RFC 3463:
    too many recipients) or the words "too many recipients" (for servers that send
    no enhanced status).

    A ``452 4.2.2 mailbox full`` is an ordinary deferral of that recipient.

    >>> is_too_many(Reply(452, (b"4.5.3 Error: too many recipients",)))
    True
    >>> is_too_many(Reply(452, (b"4.3.1 Insufficient system storage",)))
    False
    """
    if reply.code not in (452, 552):
        return False
    status = reply.enhanced_status
    if status is not None and (status.subject, status.detail) == (5, 3):
        return True
    return b"too many recipients" in reply.message.lower()


def _is_throttle_reply(code: int, text: bytes) -> bool:
    """``421`` (closing), ``454`` (TLS or AUTH temporarily unavailable), or ``451`` with
    an enhanced status ``4.7.x`` (a security or policy reason: rate limits, RFC 3463
    section 3.8).  Greylisting servers that answer ``451 4.7.1`` are seen as throttling
    too; the concurrency then dips once and grows back."""
    if code in (421, 454):
        return True
    if code != 451:
        return False
    status = EnhancedStatus.parse(text, code)
    return status is not None and status.subject == 7


def _replies(result: SendResult) -> Iterator[Reply]:
    yield result.reply
    for r in result.recipients:
        yield r.reply
        if r.data_reply is not None:
            yield r.data_reply


def is_throttle(outcome: Outcome) -> bool:
    """Does *outcome* tell the pool to slow down?  A throttling reply anywhere in it (the
    final reply, a recipient's, a refusal's code), or a connection refused or reset,
    here or in the chain of causes.

    >>> is_throttle(ConnectionRefusedError())
    True
    >>> is_throttle(smtplib.SMTPSenderRefused(451, b"4.7.1 slow down", "a@example.org"))
    True
    >>> is_throttle(smtplib.SMTPSenderRefused(451, b"4.3.0 try again", "a@example.org"))
    False
    """
    if isinstance(outcome, SendResult):
        return any(_is_throttle_reply(r.code, r.message) for r in _replies(outcome))
    seen: set[int] = set()
    error: BaseException | None = outcome
    while error is not None and id(error) not in seen:  # a cycle of causes ends the walk
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError | ConnectionResetError):
            return True
        if isinstance(error, smtplib.SMTPResponseException) and _is_throttle_reply(
            error.smtp_code, _bytes(error.smtp_error)
        ):
            return True
        if isinstance(error, smtplib.SMTPRecipientsRefused) and any(
            _is_throttle_reply(code, _bytes(text)) for code, text in _refusals(error)
        ):
            return True
        result = getattr(error, "result", None)
        if isinstance(result, SendResult) and is_throttle(result):
            return True
        error = error.__cause__ or error.__context__
    return False


def _bytes(text: object) -> bytes:
    if isinstance(text, bytes):
        return text
    return str(text).encode("utf-8", "replace")


def _refusals(error: smtplib.SMTPRecipientsRefused) -> Iterator[tuple[int, object]]:
    recipients = error.recipients if isinstance(error.recipients, dict) else {}
    for value in recipients.values():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
            yield value[0], value[1]


# ---------------------------------------------------------------- classification


def _results_for(
    result: SendResult | None, recipients: Sequence[Address]
) -> list[RecipientResult | None]:
    """The result of each recipient sent, by position; None where it got no reply."""
    if result is None:
        return [None] * len(recipients)
    if len(result.recipients) > len(recipients):
        raise ValueError(
            f"the outcome has {len(result.recipients)} recipients, more than the"
            f" {len(recipients)} sent"
        )
    for given, got in zip(recipients, result.recipients, strict=False):
        if _address(given) != got.address:
            raise ValueError(
                f"the outcome's recipient {got.address!r} is not the one sent ({given!r})"
            )
    found: list[RecipientResult | None] = list(result.recipients)
    return found + [None] * (len(recipients) - len(found))


def _by_rcpt(res: RecipientResult) -> RecipientFate | None:
    """The state a RCPT refusal gives on its own; None for a recipient accepted at RCPT
    (its state is the transaction's)."""
    reply = res.reply
    if reply.is_positive:
        return None
    if is_too_many(reply):
        return RecipientFate(res.address, State.TOO_MANY, reply)
    return RecipientFate(res.address, _by_code(reply.code), reply)


def _code_of(error: BaseException) -> int | None:
    if isinstance(error, smtplib.SMTPResponseException) and isinstance(error.smtp_code, int):
        return error.smtp_code
    return None


def _transaction_state(error: BaseException, result: SendResult | None) -> tuple[State, Reason]:
    """The state of the recipients accepted at RCPT when the transaction failed with
    *error*: what its refusal code says, or why nothing was sent."""
    if isinstance(error, SMTPOutcomeUnknown):
        return State.UNKNOWN, error
    if isinstance(error, SMTPNotAttempted):
        return State.NOT_ATTEMPTED, error
    if isinstance(error, SMTPMessageTooLarge | SMTPPolicyError | SMTPStateError):
        return State.FAILED, error
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return State.FAILED, error
    code = _code_of(error)
    if code is not None:
        # A code outside 4yz and 5yz (-1: an unreadable reply) is treated as temporary.
        return (State.REFUSED if 500 <= code < 600 else State.DEFERRED), error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # Recipients accepted at RCPT, yet "refused": the server closed (421) before the
        # content.  Its last reply says why.
        return State.DEFERRED, (result.reply if result is not None else error)
    if isinstance(error, OSError):
        return State.DEFERRED, error  # unreachable, timed out, dropped before anything
    return State.FAILED, error  # the caller's content or another local error


def classify(outcome: Outcome, recipients: Sequence[Address]) -> tuple[RecipientFate, ...]:
    """This attempt's state for each of *recipients* (the ones sent, in order).

    Raises ``ValueError`` when the outcome's recipients are not the ones given.
    """
    if isinstance(recipients, str | Recipient):
        raise TypeError("recipients must be a sequence of addresses, not a single one")
    if isinstance(outcome, SendResult):
        fates = _classify_taken(outcome, recipients)
        result: SendResult | None = outcome
    else:
        found = getattr(outcome, "result", None)
        result = found if isinstance(found, SendResult) else None
        fates = _classify_failed(outcome, result, recipients)
    if result is not None and not any(r.reply.is_positive for r in result.recipients):
        # RFC 5321 section 4.5.3.1.10: a server at its recipient limit has taken some
        # recipients.  None taken: the 452 is an ordinary deferral, and going on at once
        # would make no progress.
        fates = [
            RecipientFate(f.recipient, State.DEFERRED, f.reason) if f.state is State.TOO_MANY else f
            for f in fates
        ]
    return tuple(fates)


def _classify_taken(result: SendResult, recipients: Sequence[Address]) -> list[RecipientFate]:
    """The server took the message: its final reply came, positive."""
    fates = []
    for given, res in zip(recipients, _results_for(result, recipients), strict=True):
        if res is None:
            # No RCPT reply, yet the message was taken: it was not among its recipients.
            fates.append(RecipientFate(given, State.NOT_ATTEMPTED, result.reply))
        elif res.data_reply is not None:
            # LMTP: its own reply after the content decides (RFC 2033 section 4.2).
            fates.append(RecipientFate(given, _by_code(res.data_reply.code), res.data_reply))
        else:
            own = _by_rcpt(res)
            fates.append(
                RecipientFate(given, State.DELIVERED, result.reply)
                if own is None
                else RecipientFate(given, own.state, own.reason)
            )
    return fates


def _classify_failed(
    error: BaseException, result: SendResult | None, recipients: Sequence[Address]
) -> list[RecipientFate]:
    """The message was not taken, or nobody knows whether it was."""
    state, reason = _transaction_state(error, result)
    if state is State.NOT_ATTEMPTED or isinstance(error, smtplib.SMTPSenderRefused):
        # Nothing was taken, or MAIL was refused: the RCPT replies that came (a 503
        # "need MAIL" after a refused MAIL) say nothing about the recipients.
        return [RecipientFate(r, state, reason) for r in recipients]
    if result is None and isinstance(error, smtplib.SMTPRecipientsRefused):
        return [_from_refusals(error, r) for r in recipients]
    fates = []
    for given, res in zip(recipients, _results_for(result, recipients), strict=True):
        if res is None:
            # No RCPT reply: the transaction's state.  When the outcome is unknown the
            # content may have gone with the envelope (BDAT) before any reply was read.
            fates.append(RecipientFate(given, state, reason))
            continue
        if res.data_reply is not None and state is not State.UNKNOWN:
            # LMTP: its own reply after the content.  Not trusted when the connection was
            # lost amid those replies: a recipient whose reply did not come is then given
            # the last one that did.
            fates.append(RecipientFate(given, _by_code(res.data_reply.code), res.data_reply))
            continue
        own = _by_rcpt(res)
        if own is None:
            fates.append(RecipientFate(given, state, reason))
        elif own.state is State.TOO_MANY and state is not State.UNKNOWN:
            # The message was not taken: the recipients over the limit go with the others
            # (the "further transaction" of RFC 5321 section 4.5.3.1.10 is the retry).
            fates.append(RecipientFate(given, State.DEFERRED, own.reason))
        else:
            fates.append(RecipientFate(given, own.state, own.reason))
    return fates


def _from_refusals(error: smtplib.SMTPRecipientsRefused, recipient: Address) -> RecipientFate:
    """smtplib's shape (no ``.result``): the refusals by address."""
    recipients = error.recipients if isinstance(error.recipients, dict) else {}
    value = recipients.get(_address(recipient))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        reply = Reply(value[0], tuple(_bytes(value[1]).split(b"\n")))
        own = _by_rcpt(RecipientResult(_address(recipient), reply))
        if own is not None:
            state = State.DEFERRED if own.state is State.TOO_MANY else own.state
            return RecipientFate(recipient, state, reply)
    return RecipientFate(recipient, State.DEFERRED, error)  # not refused itself: a 421


# --------------------------------------------------------------------- the plan


def plan_next(
    outcome: Outcome,
    recipients: Sequence[Address],
    now: float,
    history: History,
    schedule: RetrySchedule | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """What to do after an attempt that sent the message to *recipients* at *now*.

    *history* is the message's past (``History(first=now)`` before its first attempt, then
    the previous ``Decision.history``); *rand* gives the jitter (a number in [0, 1)).
    """
    schedule = schedule or RetrySchedule()
    states = classify(outcome, recipients)
    deadline = history.first + schedule.lifetime
    any_lost = any(s.state is State.NOT_ATTEMPTED for s in states)

    finals: list[tuple[int, RecipientFate]] = []
    at_once: list[tuple[int, RecipientFate]] = []
    later: list[tuple[int, RecipientFate]] = []
    for i, fate in enumerate(states):
        if fate.state.final:
            finals.append((i, fate))
        elif fate.state is State.TOO_MANY or (
            fate.state is State.NOT_ATTEMPTED and history.lost == 0
        ):
            # A further transaction (RFC 5321 section 4.5.3.1.10: each one takes some
            # recipients, so this ends), or a message a lost connection left behind (an
            # idle connection the server had closed): at once, on another connection.  A
            # second loss in a row waits like a deferral: a server that drops every
            # connection is not hammered.
            at_once.append((i, fate))
        else:
            later.append((i, fate))

    sends: list[Send] = []
    if at_once:
        if now <= deadline:
            sends.append(Send(tuple(f.recipient for _, f in at_once), now, retry=False))
        else:
            finals += _expire(at_once)
    retries = history.retries
    if later:
        retry = retries + 1
        at = now + schedule.delay(retry, rand()) if retry <= schedule.max_retries else None
        if at is not None and at <= deadline:
            sends.append(Send(tuple(f.recipient for _, f in later), at, retry=True))
            retries = retry
        else:
            finals += _expire(later)

    finals.sort(key=lambda pair: pair[0])
    return Decision(
        states=states,
        finals=tuple(f for _, f in finals),
        sends=tuple(sends),
        history=History(history.first, retries, history.lost + 1 if any_lost else 0),
        throttled=is_throttle(outcome),
        recipient_limit=_recipient_limit(outcome, states),
    )


def _expire(group: list[tuple[int, RecipientFate]]) -> list[tuple[int, RecipientFate]]:
    """Out of retries or of time: expired, with the reason of the last attempt."""
    return [(i, RecipientFate(f.recipient, State.EXPIRED, f.reason)) for i, f in group]


def _recipient_limit(outcome: Outcome, states: tuple[RecipientFate, ...]) -> int | None:
    if not any(s.state is State.TOO_MANY for s in states):
        return None
    result = outcome if isinstance(outcome, SendResult) else getattr(outcome, "result", None)
    if not isinstance(result, SendResult):
        return None
    taken = 0
    for res in result.recipients:
        if is_too_many(res.reply):
            break
        taken += res.reply.is_positive
    return taken or None
