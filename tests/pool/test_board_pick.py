"""``Board.pick``: the connection decision both pool drivers make, on a fake clock."""

from __future__ import annotations

from smtpx._pool import Action, Limits, PoolPolicy
from smtpx._pool._board import Board
from smtpx._pool._job import Job


def board(max_connections: int = 2) -> Board:
    return Board([PoolPolicy(limits=Limits(max_connections=max_connections))])


def job(index: int, now: float) -> Job:
    return Job(index, b"Subject: x\r\n\r\nx\r\n", "a@example.org", ["b@example.org"], now)


def test_closed_and_empty_is_done() -> None:
    pick = board().pick(0.0, closed=True, opening=0)
    assert pick.done and pick.lease is None and pick.retire == []


def test_nothing_due_waits_without_a_lease() -> None:
    pick = board().pick(0.0, closed=False, opening=0)
    assert not pick.done and pick.lease is None and pick.charged is None


def test_a_due_message_opens_a_connection_once() -> None:
    b = board()
    b.add(job(0, 0.0))
    first = b.pick(0.0, closed=False, opening=0)
    assert first.lease is not None and first.lease.action is Action.OPEN
    # One message waiting and one connection already being opened: no second one.
    again = b.pick(0.0, closed=False, opening=1)
    assert again.lease is None


def test_two_messages_may_open_two_connections() -> None:
    b = board()
    b.add(job(0, 0.0))
    b.add(job(1, 0.0))
    first = b.pick(0.0, closed=False, opening=0)
    second = b.pick(0.0, closed=False, opening=1)
    assert first.lease is not None and second.lease is not None
    assert first.lease.slot is not second.lease.slot
    # The limit (2) is reached: a third pick leases nothing.
    b.add(job(2, 0.0))
    assert b.pick(0.0, closed=False, opening=2).lease is None
