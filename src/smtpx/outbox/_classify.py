"""What one ``deliver_many`` entry means for each recipient of its message: pure.

The entry is a ``SendResult`` or the exception ``deliver()`` would have raised (see
``docs/sending.md``); each recipient gets an ``Event`` for the state table and the reply
that decided it, which the attempt record keeps and the retry schedule is keyed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._exceptions import (
    SMTPDataError,
    SMTPMessageTooLarge,
    SMTPNotAttempted,
    SMTPNotSupportedError,
    SMTPOutcomeUnknown,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)
from .._protocol import Reply
from .._results import RecipientResult, SendResult
from ._states import Event

__all__ = ["Fate", "Verdict", "classify"]


@dataclass(frozen=True, slots=True)
class Fate:
    """One recipient's event and the reply behind it (code None: no reply)."""

    event: Event
    code: int | None = None
    enhanced: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A whole attempt: a one-word outcome, the final reply, one fate per recipient."""

    outcome: str
    code: int | None
    text: str
    fates: tuple[Fate, ...]


def _fate(event: Event, reply: Reply | None) -> Fate:
    if reply is None:
        return Fate(event)
    status = reply.enhanced_status
    return Fate(
        event,
        reply.code,
        None if status is None else str(status),
        reply.message.decode("utf-8", "replace"),
    )


def _by_code(code: int) -> Event:
    if 200 <= code < 300:
        return Event.ACCEPTED
    return Event.TRANSIENT if 400 <= code < 500 else Event.PERMANENT


def _from_results(
    results: Sequence[RecipientResult], count: int, accepted: Event, missing: Event
) -> tuple[Fate, ...]:
    """A fate per recipient from the replies known; an accepted one gets *accepted*, one
    without a reply (the server closed before answering it) gets *missing*."""
    fates = []
    for index in range(count):
        if index >= len(results):
            fates.append(Fate(missing))
            continue
        result = results[index]
        event = _by_code(result.code)
        fates.append(_fate(accepted if event is Event.ACCEPTED else event, result.final_reply))
    return tuple(fates)


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def classify(entry: SendResult | BaseException, count: int, resend_unknown: bool) -> Verdict:
    """The verdict on one message of *count* recipients (in the order they were sent).

    >>> ok = SendResult((RecipientResult("a@x", Reply(250, (b"2.1.5 ok",))),), Reply(250, ()))
    >>> [f.event.value for f in classify(ok, 1, False).fates]
    ['accepted']
    >>> classify(SMTPNotAttempted("gone"), 2, False).fates[1].event.value
    'not_attempted'
    """
    unknown = Event.UNKNOWN_RESEND if resend_unknown else Event.UNKNOWN
    if isinstance(entry, SendResult):
        fates = _from_results(entry.recipients, count, Event.ACCEPTED, Event.NOT_ATTEMPTED)
        return Verdict("sent", entry.reply.code, _reply_text(entry.reply), fates)
    result = getattr(entry, "result", None)
    known = result.recipients if isinstance(result, SendResult) else ()
    final = result.reply if isinstance(result, SendResult) else None
    code = final.code if final is not None else None
    if isinstance(entry, SMTPOutcomeUnknown):
        # Accepted at RCPT and the content went: the server may have taken it.
        fates = _from_results(known, count, unknown, unknown)
        return Verdict("outcome_unknown", None, _text(entry), fates)
    if isinstance(entry, SMTPNotAttempted):
        reply = final if final is not None and final.code == 421 else None
        fates = tuple(_fate(Event.NOT_ATTEMPTED, reply) for _ in range(count))
        return Verdict("not_attempted", code, _text(entry), fates)
    if isinstance(entry, SMTPSenderRefused):
        reply = _as_reply(entry.smtp_code, entry.smtp_error)
        fates = tuple(_fate(_by_code(entry.smtp_code), reply) for _ in range(count))
        return Verdict("sender_refused", entry.smtp_code, _text(entry), fates)
    if isinstance(entry, SMTPRecipientsRefused):
        # No content went (or, for LMTP, none was delivered): an address the server
        # accepted at RCPT was not delivered and may be sent again.
        if known:
            fates = _from_results(known, count, Event.NOT_ATTEMPTED, Event.NOT_ATTEMPTED)
        else:
            fates = tuple(Fate(Event.NOT_ATTEMPTED) for _ in range(count))
        return Verdict("recipients_refused", code, _text(entry), fates)
    if isinstance(entry, SMTPDataError):
        # The transaction failed as a whole: its reply decides for every recipient the
        # server had accepted; those it had refused keep their own reply.
        reply = _as_reply(entry.smtp_code, entry.smtp_error)
        data_fate = _fate(_by_code(entry.smtp_code), reply)
        if data_fate.event is Event.ACCEPTED:  # pragma: no cover - a 2yz is no error
            data_fate = Fate(unknown, data_fate.code, data_fate.enhanced, data_fate.text)
        fates = tuple(
            data_fate
            if index >= len(known) or known[index].accepted
            else _fate(_by_code(known[index].code), known[index].final_reply)
            for index in range(count)
        )
        return Verdict("data_refused", entry.smtp_code, _text(entry), fates)
    if isinstance(entry, (SMTPMessageTooLarge, SMTPNotSupportedError, ValueError, TypeError)):
        # Checked before anything was sent; no later attempt can change the answer.
        fates = tuple(Fate(Event.PERMANENT, None, None, _text(entry)) for _ in range(count))
        return Verdict("invalid", None, _text(entry), fates)
    if isinstance(entry, SMTPResponseException):
        reply = _as_reply(entry.smtp_code, entry.smtp_error)
        event = _by_code(entry.smtp_code)
        if event is Event.ACCEPTED:
            event = unknown
        fates = tuple(_fate(event, reply) for _ in range(count))
        return Verdict("failed", entry.smtp_code, _text(entry), fates)
    # Anything else from the seam: whether the content went is not known, so the message
    # is held rather than risk a second copy (the seam should report SMTPNotAttempted for
    # what it did not send).
    fates = tuple(Fate(unknown, None, None, _text(entry)) for _ in range(count))
    return Verdict("outcome_unknown", None, _text(entry), fates)


def _as_reply(code: int, error: bytes | str) -> Reply:
    text = error if isinstance(error, bytes) else error.encode("utf-8", "replace")
    return Reply(code, tuple(text.split(b"\n")))


def _reply_text(reply: Reply) -> str:
    return reply.message.decode("utf-8", "replace")
