"""Properties of ``plan_next`` over any outcome the engine can give: every recipient ends
in exactly one place, and a recipient the server may have taken is never sent again, over
a whole run of attempts until every recipient is final."""

from __future__ import annotations

import smtplib

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx._engine import Lost
from smtpx._exceptions import SMTPOutcomeUnknown
from smtpx._pool import History, RetrySchedule, State, plan_next
from smtpx._results import Recipient, SendResult

from .attempts import Code, attempt

RCPT_REPLIES = [
    250,
    251,
    450,
    (452, "4.5.3 too many recipients"),
    (452, "4.2.2 mailbox full"),
    (552, "5.5.3 too many recipients"),
    (451, "4.7.1 slow down"),
    550,
    421,
    503,
]
FINAL_REPLIES = [250, 250, 451, (452, "4.2.2 full"), 554, (421, "4.7.0 bye")]
ERRORS = [
    ConnectionRefusedError(111, "refused"),
    TimeoutError("timed out"),
    smtplib.SMTPConnectError(421, b"4.7.0 busy"),
    smtplib.SMTPAuthenticationError(535, b"5.7.8 no"),
    ValueError("content failed"),
]


@st.composite
def outcomes(draw: st.DrawFn, recipients: list[str]) -> BaseException | SendResult:
    """Any entry ``deliver_many`` gives for a transaction to *recipients*, or an error met
    before it."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(ERRORS))
    lost = draw(st.sampled_from([None, None, Lost.NOT_ATTEMPTED, Lost.UNKNOWN]))
    lmtp = draw(st.booleans())
    n = len(recipients)
    mail = draw(st.sampled_from([250, 250, 250, 451, 550, 421] + ([None] if lost else [])))
    if mail != 250:
        # After a refused MAIL the pipelined RCPTs and DATA get 503; nothing is sent.
        rcpts = [503] * draw(st.integers(0 if lost else n, n))
        return attempt(recipients, rcpts, mail=mail, data=503, final=[], lost=lost, lmtp=lmtp)
    rcpts = draw(st.lists(st.sampled_from(RCPT_REPLIES), min_size=0 if lost else n, max_size=n))
    data = draw(st.sampled_from([354, 354, 451, 554, None]))  # None: BDAT, no DATA reply
    accepted = sum(c in (250, 251) for c in rcpts)
    final: list[Code]
    if data not in (354, None) or not accepted or lost is Lost.NOT_ATTEMPTED:
        final = []  # no content was sent, so no reply after it
    elif lost is None:
        # A transaction that ended: its final replies came (LMTP: one per accepted).
        size = accepted if lmtp else 1
        final = draw(st.lists(st.sampled_from(FINAL_REPLIES), min_size=size, max_size=size))
    else:
        final = draw(st.lists(st.sampled_from(FINAL_REPLIES), max_size=accepted - 1))
    return attempt(recipients, rcpts, mail=mail, data=data, final=final, lost=lost, lmtp=lmtp)


def may_have_taken(outcome: BaseException | SendResult, recipients: list[str]) -> set[str]:
    """The recipients the server may have delivered to, read from the entry itself."""
    if isinstance(outcome, SendResult):
        return {r.address for r in outcome.accepted}
    result = getattr(outcome, "result", None)
    if isinstance(outcome, SMTPOutcomeUnknown):
        if not isinstance(result, SendResult):
            return set(recipients)
        answered = {r.address for r in result.recipients}
        return {r.address for r in result.recipients if r.reply.is_positive} | (
            set(recipients) - answered
        )
    if isinstance(result, SendResult):
        # LMTP: a recipient's own positive reply after the content is a delivery, even
        # when the entry is an error (a BDAT chunk refused before the last one).
        return {
            r.address
            for r in result.recipients
            if r.data_reply is not None and r.data_reply.is_positive
        }
    return set()


ADDRESSES = [f"r{i}@example.org" for i in range(6)]


def address(recipient: str | Recipient) -> str:
    return recipient if isinstance(recipient, str) else recipient.address


@given(data=st.data(), n=st.integers(1, 6), lost=st.integers(0, 2), retries=st.integers(0, 9))
def test_one_attempt_places_every_recipient_once(
    data: st.DataObject, n: int, lost: int, retries: int
) -> None:
    recipients = ADDRESSES[:n]
    outcome = data.draw(outcomes(recipients))
    history = History(first=0.0, retries=retries, lost=lost)
    now = data.draw(st.floats(0.0, 5000.0))
    d = plan_next(outcome, recipients, now, history, rand=lambda: 0.3)
    sent_again = [address(r) for s in d.sends for r in s.recipients]
    done = [f.address for f in d.finals]
    assert sorted(sent_again + done) == sorted(recipients)  # each exactly once
    assert all(f.state.final for f in d.finals)
    assert not set(sent_again) & may_have_taken(outcome, recipients)
    assert len(d.states) == n and [s.address for s in d.states] == recipients
    for s in d.sends:
        assert s.at >= now and s.recipients
        if s.retry:
            assert s.at <= history.first + RetrySchedule().lifetime
    assert d.history.retries in (retries, retries + 1)
    assert d.history.retries <= max(retries, RetrySchedule().max_retries)


@settings(max_examples=200)
@given(data=st.data(), n=st.integers(1, 6))
def test_a_run_of_attempts_ends_with_every_recipient_final_and_no_second_copy(
    data: st.DataObject, n: int
) -> None:
    schedule = RetrySchedule(first=1.0, cap=4.0, max_retries=5, lifetime=60.0)
    recipients = ADDRESSES[:n]
    queue: list[tuple[list[str], float]] = [(recipients, 0.0)]
    history = History(first=0.0)
    taken: set[str] = set()
    final: dict[str, State] = {}
    for _ in range(200):  # bounded: the plan must end well before
        if not queue:
            break
        queue.sort(key=lambda item: item[1])
        group, now = queue.pop(0)
        outcome = data.draw(outcomes(group))
        twice = may_have_taken(outcome, group) & taken
        assert not twice, f"sent again to {twice}"
        taken |= may_have_taken(outcome, group)
        d = plan_next(outcome, group, now, history, schedule, rand=lambda: 0.5)
        history = d.history
        for f in d.finals:
            assert f.address not in final
            final[f.address] = f.state
        queue += [([address(r) for r in s.recipients], s.at) for s in d.sends]
    assert not queue, "the plan did not end"
    assert set(final) == set(recipients)
    for who, state in final.items():
        assert (state in (State.DELIVERED, State.UNKNOWN)) is (who in taken), (who, state)
