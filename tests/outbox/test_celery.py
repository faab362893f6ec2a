"""``CeleryOutbox`` without a broker: what a task does with its ticket, the store's claim
and "sending" mark, when a worker dies, when the broker delivers a task twice, and what
``sweep`` finds.  Publishing is recorded instead of sent; the clock is the test's.
(The run with Redis and real worker processes is ``tests/integration/test_outbox_celery.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from smtpx.outbox import RetryPolicy, Schedule
from smtpx.outbox._celery import DEFAULT_MAX_COUNTDOWN, CeleryOutbox

from ._fakes import Clock, ScriptedSeam

SENDER = "app@example.org"
POLICY = RetryPolicy(default=Schedule(first=300.0, factor=2.0, maximum=4000.0), jitter=0.0)


class Died(BaseException):
    """A worker killed in the middle of a task (nothing after it runs)."""


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[int, int, float]] = []
        self.fail = False

    def __call__(self, message: int, ticket: int, countdown: float) -> None:
        if self.fail:
            raise Died("the process died before the publish")
        self.published.append((message, ticket, countdown))

    def take(self) -> list[tuple[int, int, float]]:
        taken, self.published = self.published, []
        return taken


def body(n: int) -> bytes:
    return f"Subject: celery-{n}\r\n\r\nmessage {n}\r\n".encode()


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("smtpx-tests", broker="memory://", set_as_current=False)
    yield app
    app.close()


def make(
    app: Celery, tmp_path: Path, seam: Any, clock: Clock, **options: Any
) -> tuple[CeleryOutbox, Recorder]:
    mail = CeleryOutbox(
        app, tmp_path / "o.db", sender=lambda: seam, policy=POLICY, clock=clock, **options
    )
    recorder = Recorder()
    mail._publish = recorder  # type: ignore[method-assign]
    return mail, recorder


def test_put_publishes_one_task_and_the_task_delivers(app: Celery, tmp_path: Path) -> None:
    clock, seam = Clock(), ScriptedSeam(lambda a: 250)
    mail, published = make(app, tmp_path, seam, clock)
    first = mail.put(body(1), SENDER, ["a@example.org"], key="k1")
    again = mail.put(body(1), SENDER, ["a@example.org"], key="k1")
    assert first == again
    assert published.take() == [(first, 1, 0.0)]  # one task for one stored message
    assert mail.handle(first, 1) == "delivered"
    assert published.take() == []  # nothing more to do
    assert seam.items == 1
    # A second delivery of the same task by the broker finds it delivered: no second copy.
    assert mail.handle(first, 1) == "delivered"
    assert seam.items == 1
    assert mail.outbox.counts() == {"delivered": 1}


def test_the_task_is_registered_late_acknowledged_and_requeued_on_worker_loss(
    app: Celery, tmp_path: Path
) -> None:
    mail, _ = make(app, tmp_path, ScriptedSeam(lambda a: 250), Clock())
    task = app.tasks[mail.task.name]
    assert task.name == "smtpx.outbox.send"
    assert task.acks_late is True and task.reject_on_worker_lost is True
    assert app.tasks[mail.sweep_task.name].name == "smtpx.outbox.send.sweep"


def test_a_deferred_recipient_gets_a_later_task_with_the_next_ticket(
    app: Celery, tmp_path: Path
) -> None:
    clock = Clock()
    seam = ScriptedSeam(lambda a: 451 if a == "slow@example.org" else 250)
    mail, published = make(app, tmp_path, seam, clock)
    message = mail.put(body(2), SENDER, ["a@example.org", "slow@example.org"])
    published.take()
    assert mail.handle(message, 1) == "deferred"
    assert published.take() == [(message, 2, 300.0)]  # the policy's first delay
    # The old ticket is stale now: a redelivered copy of the first task does nothing.
    assert mail.handle(message, 1) == "stale"
    clock.advance(300.0)
    seam.answer = lambda a: 250
    assert mail.handle(message, 2) == "delivered"
    # Only the deferred recipient was sent again.
    copies = {address: n for (_, address), n in seam.received.items()}
    assert copies == {"a@example.org": 1, "slow@example.org": 1}


def test_a_wait_longer_than_the_countdown_cap_hops(app: Celery, tmp_path: Path) -> None:
    clock, seam = Clock(), ScriptedSeam(lambda a: 250)
    mail, published = make(app, tmp_path, seam, clock, max_countdown=100.0)
    message = mail.put(body(3), SENDER, ["a@example.org"], not_before=clock.now + 250.0)
    assert published.take() == [(message, 1, 100.0)]
    clock.advance(100.0)
    assert mail.handle(message, 1) == "waiting"
    assert published.take() == [(message, 2, 100.0)]
    clock.advance(100.0)
    assert mail.handle(message, 2) == "waiting"
    assert published.take() == [(message, 3, 50.0)]
    clock.advance(50.0)
    assert mail.handle(message, 3) == "delivered"
    assert seam.items == 1


def test_the_countdown_stays_below_the_brokers_visibility_timeout(
    app: Celery, tmp_path: Path
) -> None:
    seam = ScriptedSeam(lambda a: 250)
    mail, _ = make(app, tmp_path / "a", seam, Clock())
    assert mail.max_countdown == DEFAULT_MAX_COUNTDOWN
    app.conf.broker_transport_options = {"visibility_timeout": 600}
    (tmp_path / "b").mkdir()
    capped, _ = make(app, tmp_path / "b", seam, Clock(), task_name="other.send")
    assert capped.max_countdown == 300.0


class DyingSeam:
    """Pulls the item (the store marks it "sending") and dies: after the content went
    (*sent*) or right before writing it."""

    def __init__(self, sent: bool) -> None:
        self.sent = sent
        self.copies = 0

    def __call__(self, items: Iterator[Any]) -> list[Any]:
        next(items)
        if self.sent:
            self.copies += 1
        raise Died("SIGKILL")


@pytest.mark.parametrize("content_went", [True, False])
def test_a_task_run_again_after_its_worker_died_never_resends(
    app: Celery, tmp_path: Path, content_went: bool
) -> None:
    """The worker dies after marking the message "sending"; the broker delivers the task
    again (acks_late).  The rerun waits for the lease, then finds the message outcome
    unknown: held, whether or not the content really went."""
    clock = Clock()
    dying = DyingSeam(sent=content_went)
    mail, published = make(app, tmp_path, dying, clock, lease=60.0)
    message = mail.put(body(4), SENDER, ["a@example.org"])
    published.take()
    with pytest.raises(Died):
        mail.handle(message, 1)
    assert mail.outbox.counts() == {"in_flight": 1}
    # Redelivered while the lease runs: it looks again when the lease is over.
    assert mail.handle(message, 1) == "held"
    ((again, ticket, countdown),) = published.take()
    assert (again, ticket) == (message, 2) and countdown == pytest.approx(61.0)
    clock.advance(countdown)
    assert mail.handle(message, 2) == "outcome_unknown"
    assert published.take() == []
    assert dying.copies == (1 if content_went else 0)
    info = mail.outbox.show(message)
    assert info.state == "outcome_unknown"
    assert info.history[-1].outcome == "lease_expired"


def test_a_worker_that_died_before_pulling_the_message_lets_it_be_sent(
    app: Celery, tmp_path: Path
) -> None:
    """Died before the "sending" mark: nothing can have gone, so it is sent after the lease."""
    clock = Clock()

    def die(items: Iterator[Any]) -> list[Any]:
        raise Died("SIGKILL before the first pull")

    seam = ScriptedSeam(lambda a: 250)
    current: list[Any] = [die]
    mail = CeleryOutbox(
        app,
        tmp_path / "o.db",
        sender=lambda: lambda items: current[0](items),
        policy=POLICY,
        clock=clock,
        lease=60.0,
    )
    published = Recorder()
    mail._publish = published  # type: ignore[method-assign]
    message = mail.put(body(5), SENDER, ["a@example.org"])
    published.take()
    with pytest.raises(Died):
        mail.handle(message, 1)
    current[0] = seam
    assert mail.handle(message, 1) == "held"
    ((_, ticket, countdown),) = published.take()
    clock.advance(countdown)
    assert mail.handle(message, ticket) == "delivered"
    assert seam.items == 1


def test_sweep_publishes_what_a_crash_left_without_a_task(app: Celery, tmp_path: Path) -> None:
    clock, seam = Clock(), ScriptedSeam(lambda a: 250)
    mail, published = make(app, tmp_path, seam, clock, grace=600.0)
    published.fail = True
    with pytest.raises(Died):
        mail.put(body(6), SENDER, ["a@example.org"])  # stored; the publish never happened
    published.fail = False
    (message,) = [m.id for m in mail.outbox.list()]
    assert mail.sweep() == 0  # not late yet: its task may still be on its way
    clock.advance(601.0)
    assert mail.sweep() == 1
    ((found, ticket, countdown),) = published.take()
    assert (found, countdown) == (message, 0.0)
    assert mail.handle(message, ticket) == "delivered"
    clock.advance(601.0)
    assert mail.sweep() == 0  # delivered: nothing to publish
    # A message stored by a plain Outbox (no ticket yet) is found too.
    plain = mail.outbox.put(body(7), SENDER, ["a@example.org"])
    clock.advance(601.0)
    assert mail.sweep() == 1
    assert published.take()[0][:2] == (plain, 1)


def test_retry_of_an_unknown_outcome_publishes_a_task(app: Celery, tmp_path: Path) -> None:
    clock = Clock()
    seam = ScriptedSeam(lambda a: "unknown")
    mail, published = make(app, tmp_path, seam, clock)
    message = mail.put(body(8), SENDER, ["a@example.org"])
    published.take()
    assert mail.handle(message, 1) == "outcome_unknown"
    assert published.take() == []
    seam.answer = lambda a: 250
    assert mail.retry([message], unknown=True) == 1
    ((found, ticket, countdown),) = published.take()
    assert (found, ticket, countdown) == (message, 2, 0.0)
    assert mail.handle(message, 2) == "delivered"


def test_bad_arguments_are_refused(app: Celery, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"celery\.Celery"):
        CeleryOutbox(object(), tmp_path / "o.db", url="smtp://localhost")
    with pytest.raises(ValueError, match="url or a sender"):
        CeleryOutbox(app, tmp_path / "o.db")
    with pytest.raises(ValueError, match="positive"):
        CeleryOutbox(app, tmp_path / "o.db", url="smtp://localhost", lease=0)
    mail, _ = make(app, tmp_path, ScriptedSeam(lambda a: 250), Clock())
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        mail.put(body(9), SENDER, ["a@example.org\r\nRCPT TO:<x@y>"])
    assert mail.outbox.counts() == {}
