"""Build the entries ``deliver_many`` gives for one message, from the replies a server
sent: the engine's own ``_outcomes.entry`` makes them, so the pool's tests read the same
shapes (``SendResult``, exceptions with ``.result``) the drivers will pass in.  No
sockets: the replies are given as data."""

from __future__ import annotations

from collections.abc import Sequence

from smtpx._engine import Lost, Outcome
from smtpx._outcomes import entry
from smtpx._plan import Job
from smtpx._protocol import Command, Reply
from smtpx._results import SendResult

Code = int | tuple[int, str]

SENDER = "sender@example.org"


def reply(code: Code) -> Reply:
    """``250`` or ``(452, "4.5.3 too many recipients")``."""
    if isinstance(code, int):
        text = {2: "2.0.0 Ok", 3: "go ahead", 4: "4.3.0 try later", 5: "5.0.0 no"}[code // 100]
        return Reply(code, (text.encode(),))
    return Reply(code[0], (code[1].encode(),))


def job(recipients: Sequence[str]) -> Job:
    return Job(
        sender=SENDER,
        recipients=list(recipients),
        mail=Command("mail", f"from:<{SENDER}>"),
        rcpts=[Command("rcpt", f"to:<{r}>") for r in recipients],
        pieces=iter(()),
        size=None,
    )


def attempt(
    recipients: Sequence[str],
    rcpts: Sequence[Code] | None = None,
    *,
    mail: Code | None = 250,
    data: Code | None = 354,
    final: Sequence[Code] = (250,),
    lost: Lost | None = None,
    error: BaseException | None = None,
    lmtp: bool = False,
) -> SendResult | Exception:
    """The entry for one transaction.  *rcpts* defaults to 250 for every recipient and
    may be shorter than *recipients* (the server closed before answering the rest)."""
    outcome = Outcome(job(recipients))
    outcome.mail = None if mail is None else reply(mail)
    outcome.rcpts = [reply(c) for c in (rcpts if rcpts is not None else [250] * len(recipients))]
    outcome.data = None if data is None else reply(data)
    outcome.final = [reply(c) for c in final]
    outcome.accepted = sum(r.is_positive for r in outcome.rcpts)
    outcome.lost = lost
    outcome.error = error
    return entry(outcome, lmtp)
