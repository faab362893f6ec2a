"""What each API makes of a transaction's ``Outcome``: smtplib's ``sendmail`` result and
exceptions, or a ``SendResult`` (``deliver``, ``deliver_many``).

The engine has already done what the wire needed (RSET, close); these functions only read
the replies.  Every exception ``deliver`` raises carries ``.result``: a ``SendResult`` with
what is known when recipients were already answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ._engine import Lost, Outcome
from ._exceptions import (
    SMTPDataError,
    SMTPNotAttempted,
    SMTPOutcomeUnknown,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from ._protocol import Reply
from ._results import RecipientResult, SendResult

__all__ = ["Response", "entry", "sendmail_result"]

Response = tuple[int, bytes]
_E = TypeVar("_E", bound=BaseException)


def sendmail_result(outcome: Outcome, lmtp: bool) -> dict[str, Response]:
    """smtplib's ``sendmail`` outcome: the refused recipients, or its exceptions.

    For LMTP each accepted recipient's own reply after the content decides its fate (RFC
    2033 section 4.2; smtplib reads one reply only: docs/compatibility.md).
    """
    job = outcome.job
    if outcome.lost is not None:
        if isinstance(outcome.error, Exception):
            raise outcome.error  # what stopped it, as smtplib would raise it
        raise _lost(outcome, "Connection unexpectedly closed")
    assert outcome.mail is not None
    if outcome.mail.code != 250:
        raise SMTPSenderRefused(outcome.mail.code, outcome.mail.message, job.sender)
    refused: dict[str, Response] = {}
    accepted: list[str] = []
    for recipient, reply in zip(job.recipients, outcome.rcpts, strict=False):
        if reply.code in (250, 251):
            accepted.append(recipient)
        else:
            refused[recipient] = reply.as_tuple()
    if not accepted or _cut(outcome):
        raise SMTPRecipientsRefused(refused)  # every one refused, or the server closed (421)
    if outcome.data is not None and outcome.data.code != 354:
        raise SMTPDataError(outcome.data.code, outcome.data.message)
    final = outcome.final
    if not lmtp:
        if final[0].code != 250:
            raise SMTPDataError(final[0].code, final[0].message)
        return refused
    # RFC 2033 section 4.2: one reply per accepted recipient, in RCPT order.
    delivered = False
    for recipient, reply in zip(accepted, final, strict=False):
        if reply.is_positive:
            delivered = True
        else:
            refused[recipient] = reply.as_tuple()
    for recipient in accepted[len(final) :]:
        refused[recipient] = final[-1].as_tuple()  # no reply of its own: the server closed
    if not delivered:
        raise SMTPRecipientsRefused(refused)
    return refused


def entry(outcome: Outcome, lmtp: bool, single: bool = False) -> SendResult | Exception:
    """``deliver``'s result for one transaction: a ``SendResult``, or the exception it
    raises (with ``.result`` attached).  *single*: for ``deliver`` itself, a message that
    was not sent gives the error that stopped it (a timeout stays a ``TimeoutError``);
    in a batch it gives ``SMTPNotAttempted``, with that error as its cause."""
    job = outcome.job
    error = outcome.error
    if (
        outcome.lost is Lost.NOT_ATTEMPTED
        and isinstance(error, Exception)
        and (single or not isinstance(error, SMTPServerDisconnected))
    ):
        return error  # what stopped it, or the caller's content failed (a file, an iterator)
    # Results hold replies without their raw lines (those are for debug output).
    rcpts = [_bare(reply) for reply in outcome.rcpts]
    final = [_bare(reply) for reply in outcome.final]
    results = [
        RecipientResult(address, reply)
        for address, reply in zip(job.recipients, rcpts, strict=False)
    ]
    if lmtp and final:  # RFC 2033 section 4.2: each accepted recipient's own final reply
        replies = iter(final)
        results = [
            RecipientResult(r.address, r.reply, next(replies, final[-1])) if r.accepted else r
            for r in results
        ]
    mail = None if outcome.mail is None else _bare(outcome.mail)
    last = final[-1] if final else (rcpts[-1] if rcpts else mail)
    if outcome.lost is Lost.NOT_ATTEMPTED or mail is None or last is None:
        lost = _lost(outcome, "the message was not sent: the connection was closed first")
        return lost if last is None else _with_result(lost, results, last)
    if mail.code == 421 and not single:
        # The server closed instead of taking the transaction (RFC 5321 section 3.8): in a
        # batch that is "not attempted", safe to send again (docs/sending.md); deliver()
        # keeps smtplib's SMTPSenderRefused(421).
        return _with_result(_lost(outcome, "the server closed (421) at its MAIL"), results, mail)
    if mail.code != 250:
        return _with_result(SMTPSenderRefused(mail.code, mail.message, job.sender), results, mail)
    if outcome.lost is Lost.UNKNOWN and len(rcpts) < len(job.recipients):
        # Lost amid the RCPT replies after the content went with the envelope (BDAT): the
        # replies not read may have accepted recipients, and the server may have taken
        # the message.  Not "refused", which would make a resend look safe.
        return _with_result(_lost(outcome, ""), results, last)
    if _cut(outcome) or not any(r.reply.code in (250, 251) for r in results):
        refused = {r.address: r.reply.as_tuple() for r in results if r.reply.code not in (250, 251)}
        return _with_result(SMTPRecipientsRefused(refused), results, last)
    for refusal in (outcome.data, outcome.chunk):
        if refusal is not None and refusal.code != 354:
            return _with_result(SMTPDataError(refusal.code, refusal.message), results, last)
    if outcome.lost is Lost.UNKNOWN:
        return _with_result(_lost(outcome, ""), results, last)
    result = SendResult(tuple(results), final[0] if not lmtp else last)
    if not lmtp and not result.reply.is_positive:
        return _with_result(SMTPDataError(last.code, last.message), results, last)
    if lmtp and not result.accepted:
        return _with_result(SMTPRecipientsRefused(result.as_smtplib_dict()), results, last)
    return result


def _bare(reply: Reply) -> Reply:
    return Reply(reply.code, reply.lines) if reply.raw else reply


def _cut(outcome: Outcome) -> bool:
    """The server closed (421) before every recipient was answered, or at the last one."""
    rcpts = outcome.rcpts
    return len(rcpts) < len(outcome.job.recipients) or (bool(rcpts) and rcpts[-1].code == 421)


def _lost(outcome: Outcome, not_attempted: str) -> SMTPServerDisconnected:
    error: SMTPServerDisconnected
    if outcome.lost is Lost.UNKNOWN:
        error = SMTPOutcomeUnknown(
            "the connection was lost after the message was sent, before the server's reply;"
            " it may or may not have been delivered"
        )
    else:
        error = SMTPNotAttempted(not_attempted)
    error.__cause__ = outcome.error
    return error


def _with_result(error: _E, results: Sequence[RecipientResult], reply: Reply) -> _E:
    """Attach what is known (``error.result``, a ``SendResult``) to an exception."""
    error.result = SendResult(tuple(results), reply)  # type: ignore[attr-defined]
    return error
