"""The decision table: what one attempt's outcome does to each recipient, and what is
sent next.  The outcomes are the entries ``deliver_many`` makes (``attempts.attempt``
builds them with the engine's own code from the server's replies)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from smtpx import Recipient
from smtpx._engine import Lost
from smtpx._exceptions import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPMessageTooLarge,
    SMTPNotAttempted,
    SMTPNotSupportedError,
    SMTPOutcomeUnknown,
    SMTPPolicyError,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from smtpx._pool import (
    Decision,
    History,
    RetrySchedule,
    Send,
    State,
    classify,
    is_throttle,
    plan_next,
)
from smtpx._protocol import Reply
from smtpx._results import RecipientResult, SendResult

from .attempts import attempt

A, B, C, D, E = (f"{name}@example.org" for name in "abcde")
NOW = 1000.0
TOO_MANY = (452, "4.5.3 Error: too many recipients")


def plan(
    outcome: BaseException | SendResult,
    recipients: list[str],
    *,
    history: History | None = None,
    schedule: RetrySchedule | None = None,
    now: float = NOW,
) -> Decision:
    return plan_next(
        outcome,
        recipients,
        now,
        history or History(first=now),
        schedule,
        rand=lambda: 0.0,
    )


def finals(decision: Decision) -> dict[str, State]:
    return {f.address: f.state for f in decision.finals}


def sends(decision: Decision) -> list[tuple[tuple[object, ...], float, bool]]:
    return [(s.recipients, s.at, s.retry) for s in decision.sends]


# ------------------------------------------------------------ the message was taken


def test_every_recipient_accepted_is_delivered_and_nothing_is_sent_again() -> None:
    d = plan(attempt([A, B]), [A, B])
    assert finals(d) == {A: State.DELIVERED, B: State.DELIVERED}
    assert d.sends == ()
    assert d.history == History(first=NOW)
    assert not d.throttled


def test_only_the_deferred_recipients_are_retried_after_30_seconds() -> None:
    d = plan(attempt([A, B, C], [250, 450, 550]), [A, B, C])
    assert finals(d) == {A: State.DELIVERED, C: State.REFUSED}
    assert sends(d) == [((B,), NOW + 30.0, True)]
    assert d.history.retries == 1
    assert [s.state for s in d.states] == [State.DELIVERED, State.DEFERRED, State.REFUSED]
    assert d.states[1].reason == Reply(450, (b"4.3.0 try later",))


def test_too_many_recipients_go_in_a_further_transaction_at_once() -> None:
    """RFC 5321 section 4.5.3.1.10: the rest go in another transaction; not a failure."""
    d = plan(attempt([A, B, C, D], [250, 250, TOO_MANY, TOO_MANY]), [A, B, C, D])
    assert finals(d) == {A: State.DELIVERED, B: State.DELIVERED}
    assert sends(d) == [((C, D), NOW, False)]
    assert d.history.retries == 0  # not counted against the retries
    assert d.recipient_limit == 2


@pytest.mark.parametrize(
    "too_many",
    [
        (452, "4.5.3 Too many recipients"),
        (452, "Too many recipients"),  # Exim: no enhanced status
        (552, "5.5.3 Too many recipients"),  # RFC 821's code, "treated as temporary"
    ],
)
def test_the_forms_of_too_many_recipients(too_many: tuple[int, str]) -> None:
    d = plan(attempt([A, B], [250, too_many]), [A, B])
    assert sends(d) == [((B,), NOW, False)]


def test_a_452_that_is_not_too_many_is_an_ordinary_deferral() -> None:
    d = plan(attempt([A, B], [250, (452, "4.2.2 mailbox full")]), [A, B])
    assert sends(d) == [((B,), NOW + 30.0, True)]
    assert d.recipient_limit is None


def test_too_many_and_deferred_together_make_two_sends() -> None:
    d = plan(attempt([A, B, C], [250, 450, TOO_MANY]), [A, B, C])
    assert sends(d) == [((C,), NOW, False), ((B,), NOW + 30.0, True)]


def test_too_many_when_nobody_was_taken_waits_like_a_deferral() -> None:
    """No progress is possible at once: going on would loop."""
    d = plan(attempt([A, B], [TOO_MANY, TOO_MANY], data=None, final=[]), [A, B])
    assert sends(d) == [((A, B), NOW + 30.0, True)]


def test_lmtp_each_recipient_by_its_own_reply_after_the_content() -> None:
    """RFC 2033 section 4.2: LMTP answers once per accepted recipient after the content."""
    outcome = attempt([A, B, C], [250, 250, 250], final=[250, 451, 550], lmtp=True)
    d = plan(outcome, [A, B, C])
    assert finals(d) == {A: State.DELIVERED, C: State.REFUSED}
    assert sends(d) == [((B,), NOW + 30.0, True)]


def test_lmtp_when_nobody_is_delivered() -> None:
    outcome = attempt([A, B], [250, 550], final=[452], lmtp=True)
    assert isinstance(outcome, smtplib.SMTPRecipientsRefused)
    d = plan(outcome, [A, B])
    assert finals(d) == {B: State.REFUSED}
    assert sends(d) == [((A,), NOW + 30.0, True)]


# ------------------------------------------------------------ the message was not taken


def test_sender_refused_temporarily_defers_everyone() -> None:
    # RCPT pipelined after a refused MAIL gets 503: it says nothing about the recipient.
    outcome = attempt([A, B], [503, 503], mail=451, data=503, final=[])
    assert isinstance(outcome, smtplib.SMTPSenderRefused)
    d = plan(outcome, [A, B])
    assert finals(d) == {}
    assert sends(d) == [((A, B), NOW + 30.0, True)]


def test_sender_refused_permanently_refuses_everyone() -> None:
    d = plan(attempt([A, B], [503, 503], mail=550, data=503, final=[]), [A, B])
    assert finals(d) == {A: State.REFUSED, B: State.REFUSED}
    assert d.sends == ()


def test_data_refused_temporarily_defers_those_accepted_at_rcpt() -> None:
    outcome = attempt([A, B, C, D], [250, 550, 450, TOO_MANY], data=451, final=[])
    assert isinstance(outcome, smtplib.SMTPDataError)
    d = plan(outcome, [A, B, C, D])
    assert finals(d) == {B: State.REFUSED}
    # Nobody was delivered: the one over the limit goes with the retry, not at once.
    assert sends(d) == [((A, C, D), NOW + 30.0, True)]


def test_final_reply_refused_permanently() -> None:
    d = plan(attempt([A, B], [250, 450], final=[(554, "5.7.1 spam")]), [A, B])
    assert finals(d) == {A: State.REFUSED}
    assert sends(d) == [((B,), NOW + 30.0, True)]


def test_server_closing_midway_through_the_recipients() -> None:
    """421 at the second RCPT, no reply to the third: nobody got the message."""
    outcome = attempt([A, B, C], [250, (421, "4.7.0 too many connections")], final=[])
    assert isinstance(outcome, smtplib.SMTPRecipientsRefused)
    d = plan(outcome, [A, B, C])
    assert finals(d) == {}
    assert sends(d) == [((A, B, C), NOW + 30.0, True)]
    assert d.throttled


def test_not_attempted_is_sent_again_whole_at_once_then_with_backoff() -> None:
    outcome = attempt([A, B], [], mail=None, data=None, final=[], lost=Lost.NOT_ATTEMPTED)
    assert isinstance(outcome, SMTPNotAttempted)
    first = plan(outcome, [A, B])
    assert sends(first) == [((A, B), NOW, False)]
    assert first.history.lost == 1
    second = plan(outcome, [A, B], history=first.history, now=NOW + 1)
    assert sends(second) == [((A, B), NOW + 1 + 30.0, True)]
    third = plan(attempt([A, B]), [A, B], history=second.history, now=NOW + 40)
    assert third.history.lost == 0 and finals(third) == {A: State.DELIVERED, B: State.DELIVERED}


def test_not_attempted_after_421_to_mail_ignores_the_rcpt_replies() -> None:
    outcome = SMTPNotAttempted("closed")
    outcome.result = SendResult(
        (RecipientResult(A, Reply(250, (b"ok",))),), Reply(421, (b"4.7.0 bye",))
    )
    d = plan(outcome, [A])
    assert d.states[0].state is State.NOT_ATTEMPTED
    assert d.throttled


def test_outcome_unknown_is_never_sent_again() -> None:
    outcome = attempt([A, B, C], [250, 450, 550], final=[], lost=Lost.UNKNOWN)
    d = plan(outcome, [A, B, C])
    assert finals(d) == {A: State.UNKNOWN, C: State.REFUSED}
    # B was refused at RCPT: it was not in the message, so it is safe to retry.
    assert sends(d) == [((B,), NOW + 30.0, True)]


@pytest.mark.parametrize("mail", [None, 250])
def test_outcome_unknown_before_the_rcpt_replies_covers_everyone(mail: int | None) -> None:
    """BDAT sends the content with the envelope: lost before (all) the RCPT replies came,
    every recipient without a reply may have been delivered."""
    outcome = attempt([A, B], [], mail=mail, data=None, final=[], lost=Lost.UNKNOWN)
    assert isinstance(outcome, SMTPOutcomeUnknown)
    d = plan(outcome, [A, B])
    assert finals(d) == {A: State.UNKNOWN, B: State.UNKNOWN}
    assert d.sends == ()


def test_outcome_unknown_amid_the_rcpt_replies() -> None:
    outcome = attempt([A, B, C], [450], data=None, final=[], lost=Lost.UNKNOWN)
    assert isinstance(outcome, SMTPOutcomeUnknown)
    d = plan(outcome, [A, B, C])
    assert finals(d) == {B: State.UNKNOWN, C: State.UNKNOWN}
    assert sends(d) == [((A,), NOW + 30.0, True)]


def test_outcome_unknown_lmtp_partial_replies_are_not_trusted() -> None:
    """The entry gives a recipient without its own reply the last one that came."""
    outcome = attempt([A, B], [250, 250], final=[451], lost=Lost.UNKNOWN, lmtp=True)
    d = plan(outcome, [A, B])
    assert finals(d) == {A: State.UNKNOWN, B: State.UNKNOWN}


def test_outcome_unknown_with_too_many_sends_the_rest_at_once() -> None:
    outcome = attempt([A, B], [250, TOO_MANY], final=[], lost=Lost.UNKNOWN)
    d = plan(outcome, [A, B])
    assert finals(d) == {A: State.UNKNOWN}
    assert sends(d) == [((B,), NOW, False)]


@pytest.mark.parametrize(
    ("error", "state", "throttled"),
    [
        (SMTPMessageTooLarge(10, 5), State.FAILED, False),
        (SMTPNotSupportedError("SMTPUTF8 needed"), State.FAILED, False),
        (SMTPPolicyError("TLS required"), State.FAILED, False),
        (ValueError("the caller's iterator failed"), State.FAILED, False),
        (SMTPAuthenticationError(535, b"5.7.8 bad credentials"), State.REFUSED, False),
        (SMTPConnectError(554, b"5.7.1 go away"), State.REFUSED, False),
        (SMTPConnectError(421, b"4.7.0 busy"), State.DEFERRED, True),
        (SMTPAuthenticationError(454, b"4.7.0 try later"), State.DEFERRED, True),
        (ConnectionRefusedError(111, "refused"), State.DEFERRED, True),
        (ConnectionResetError(104, "reset"), State.DEFERRED, True),
        (SMTPTimeoutError("timed out"), State.DEFERRED, False),
        (SMTPServerDisconnected("closed"), State.DEFERRED, False),
        (OSError("no route to host"), State.DEFERRED, False),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, BaseException) else str(x),
)
def test_errors_met_before_a_transaction(
    error: BaseException, state: State, throttled: bool
) -> None:
    d = plan(error, [A, B])
    assert [s.state for s in d.states] == [state, state]
    assert all(s.reason is error for s in d.states)
    assert d.throttled is throttled
    if state.final:
        assert finals(d) == {A: state, B: state} and d.sends == ()
    else:
        assert sends(d) == [((A, B), NOW + 30.0, True)]


def test_a_throttle_found_in_the_chain_of_causes() -> None:
    lost = SMTPNotAttempted("gone")
    lost.__cause__ = ConnectionResetError(104, "reset")
    assert is_throttle(lost)
    assert not is_throttle(SMTPNotAttempted("gone"))


def test_a_cycle_of_causes_ends() -> None:
    a, b = SMTPServerDisconnected("a"), SMTPServerDisconnected("b")
    a.__cause__, b.__cause__ = b, a
    assert not is_throttle(a)


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (421, "4.3.2 shutting down", True),
        (454, "4.7.0 TLS not available", True),
        (451, "4.7.1 rate limited", True),
        (451, "4.3.0 local error", False),
        (450, "4.2.1 try later", False),
        (452, "4.7.1 too fast", False),
        (550, "5.7.1 denied", False),
    ],
)
def test_throttling_replies(code: int, text: str, expected: bool) -> None:
    assert is_throttle(smtplib.SMTPDataError(code, text.encode())) is expected
    result = SendResult((RecipientResult(A, Reply(code, (text.encode(),))),), Reply(250, ()))
    assert is_throttle(result) is expected


def test_stdlib_recipients_refused_without_result() -> None:
    error = smtplib.SMTPRecipientsRefused({A: (550, b"5.1.1 unknown"), B: (421, b"bye")})
    d = plan(error, [A, B, C])
    assert finals(d) == {A: State.REFUSED}
    assert sends(d) == [((B, C), NOW + 30.0, True)]
    assert d.throttled


# ------------------------------------------------------------------------- expiry


def test_retries_run_out() -> None:
    schedule = RetrySchedule(max_retries=2)
    history = History(first=NOW)
    outcome = attempt([A, B], [250, 450])
    d = plan(outcome, [A, B], history=history, schedule=schedule)
    d = plan(attempt([B], [450]), [B], history=d.history, schedule=schedule, now=NOW + 30)
    assert sends(d) == [((B,), NOW + 30 + 60.0, True)]
    d = plan(attempt([B], [450]), [B], history=d.history, schedule=schedule, now=NOW + 90)
    assert finals(d) == {B: State.EXPIRED}
    assert d.finals[0].reason == Reply(450, (b"4.3.0 try later",))  # the last reply


def test_lifetime_runs_out() -> None:
    schedule = RetrySchedule(lifetime=100.0)
    history = History(first=NOW, retries=2)  # the next delay is 120 s: too late
    d = plan(attempt([A], [450], data=None, final=[]), [A], history=history, schedule=schedule)
    assert finals(d) == {A: State.EXPIRED}


def test_an_immediate_send_past_the_lifetime_expires() -> None:
    schedule = RetrySchedule(lifetime=100.0)
    d = plan(
        attempt([A, B], [250, TOO_MANY]),
        [A, B],
        history=History(first=NOW - 200),
        schedule=schedule,
    )
    assert finals(d) == {A: State.DELIVERED, B: State.EXPIRED}


# ------------------------------------------------------------------ the interface


def test_recipient_objects_are_kept_in_the_sends() -> None:
    bob = Recipient(B, notify=["FAILURE"])
    d = plan_next(attempt([A, B], [250, 450]), [A, bob], NOW, History(NOW), rand=lambda: 0.0)
    assert d.sends == (Send((bob,), NOW + 30.0, True),)
    assert d.finals[0].recipient == A


def test_outcome_for_other_recipients_is_refused() -> None:
    with pytest.raises(ValueError, match="not the one sent"):
        classify(attempt([A, B]), [A, C])
    with pytest.raises(ValueError, match="more than"):
        classify(attempt([A, B]), [A])


def test_a_single_address_is_refused() -> None:
    with pytest.raises(TypeError, match="sequence"):
        classify(attempt([A]), A)


def test_jitter_shortens_the_delay() -> None:
    d = plan_next(
        attempt([A], [450], data=None, final=[]), [A], NOW, History(NOW), rand=lambda: 0.5
    )
    assert d.sends[0].at == NOW + 27.0


def test_duplicate_addresses_each_get_a_fate() -> None:
    d = plan(attempt([A, A], [250, 450]), [A, A])
    assert finals(d) == {A: State.DELIVERED}
    assert sends(d) == [((A,), NOW + 30.0, True)]


# ------------------------------------------- accepted recipients never get a second copy

OUTCOMES: dict[str, Callable[[], BaseException | SendResult]] = {
    "all delivered": lambda: attempt([A, B, C]),
    "mixed": lambda: attempt([A, B, C], [250, 450, 550]),
    "too many": lambda: attempt([A, B, C], [250, TOO_MANY, TOO_MANY]),
    "lmtp mixed": lambda: attempt([A, B, C], final=[250, 451, 550], lmtp=True),
    "data refused 4xx": lambda: attempt([A, B, C], [250, 450, 250], data=451, final=[]),
    "final refused 5xx": lambda: attempt([A, B, C], final=[554]),
    "sender refused": lambda: attempt([A, B, C], [503] * 3, mail=451, data=503, final=[]),
    "421 midway": lambda: attempt([A, B, C], [250, 421], final=[]),
    "not attempted": lambda: attempt(
        [A, B, C], [], mail=None, data=None, final=[], lost=Lost.NOT_ATTEMPTED
    ),
    "unknown": lambda: attempt([A, B, C], [250, 450, 250], final=[], lost=Lost.UNKNOWN),
    "unknown amid rcpt": lambda: attempt([A, B, C], [250], data=None, final=[], lost=Lost.UNKNOWN),
    "unknown lmtp": lambda: attempt([A, B, C], final=[250], lost=Lost.UNKNOWN, lmtp=True),
    "refused connection": lambda: ConnectionRefusedError(111, "refused"),
}


@pytest.mark.parametrize("kind", OUTCOMES)
def test_no_accepted_recipient_is_sent_again(kind: str) -> None:
    outcome = OUTCOMES[kind]()
    if isinstance(outcome, SendResult):
        accepted = {r.address for r in outcome.accepted}
    elif isinstance(outcome, smtplib.SMTPServerDisconnected) and "unknown" in kind:
        accepted = {r.address for r in outcome.result.recipients if r.reply.is_positive}  # type: ignore[attr-defined]
    else:
        accepted = set()  # the message was not taken: nobody has it
    for lost in (0, 1):
        d = plan(outcome, [A, B, C], history=History(NOW, lost=lost))
        again = {r for s in d.sends for r in s.recipients}
        assert not again & accepted, (kind, again & accepted)
        assert {f.address for f in d.finals} | again == {A, B, C}
        assert not {f.address for f in d.finals} & again
