"""The outbox against a scripted seam and a clock the test moves: putting, the states,
retries, leases, crashes, control; and several processes claiming at once."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smtpx
from smtpx.outbox import FINAL, Outbox, RetryPolicy, Schedule, State

from ._fakes import Clock, ScriptedSeam

SRC = str(Path(smtpx.__file__).resolve().parents[1])
POLICY = RetryPolicy(
    default=Schedule(first=10.0, factor=2.0, maximum=40.0), jitter=0.0, max_lifetime=500.0
)
BODY = b"Subject: hello\r\n\r\nbody\r\n"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db", policy=POLICY, clock=clock, rng=random.Random(1)) as box:
        yield box


def states(outbox: Outbox, message: int) -> list[str]:
    return [r.state for r in outbox.show(message).recipients]


# ----------------------------------------------------------------------- putting


def test_put_adds_a_message_id_once_and_keeps_it(outbox: Outbox) -> None:
    first = outbox.put(BODY, "a@example.org", "b@example.org")
    content = outbox.content(first)
    info = outbox.show(first)
    assert content.startswith(b"Message-ID: <") and content.endswith(BODY)
    assert info.message_id.encode() in content and info.message_id.endswith("@example.org>")
    given_id = outbox.put(b"Message-ID: <x@y>\r\n" + BODY, "a@example.org", ["b@example.org"])
    assert outbox.content(given_id) == b"Message-ID: <x@y>\r\n" + BODY
    assert outbox.show(given_id).message_id == "<x@y>"


def test_put_of_an_email_message_takes_the_envelope_and_drops_bcc(outbox: Outbox) -> None:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "bob@example.org"
    msg["Bcc"] = "carol@example.org"
    msg["Subject"] = "hi"
    msg.set_content("hello")
    message = outbox.put(msg)
    info = outbox.show(message)
    assert info.sender == "alice@example.org"
    assert [r.address for r in info.recipients] == ["bob@example.org", "carol@example.org"]
    content = outbox.content(message)
    assert b"Bcc" not in content and b"carol" not in content
    assert info.message_id.encode() in content
    assert "Message-ID" not in msg  # the caller's object is left alone


def test_the_same_key_stores_one_message(outbox: Outbox) -> None:
    first = outbox.put(BODY, "a@example.org", ["b@example.org"], key="reset-42")
    again = outbox.put(BODY, "a@example.org", ["c@example.org"], key="reset-42")
    assert first == again
    ids = outbox.put_many([(BODY, "a@x.org", ["b@x.org"])] * 2, keys=["reset-42", "new"])
    assert ids[0] == first and ids[1] != first
    assert sum(outbox.counts().values()) == 2


@pytest.mark.parametrize(
    ("sender", "recipients", "error"),
    [
        ("a@example.org\r\nRCPT TO:<evil@x>", ["b@example.org"], ValueError),
        ("a@example.org", ["b@example.org\nDATA"], ValueError),
        ("a@example.org", ["b@exa\0mple.org"], ValueError),
        ("a@example.org", [], ValueError),
        (None, ["b@example.org"], ValueError),
        ("a@example.org", [42], TypeError),
        ("a@example.org", [smtpx.Recipient("b@x.org", orcpt="c@x\r\n")], ValueError),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    outbox: Outbox, sender: Any, recipients: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        outbox.put_many([(BODY, "ok@example.org", ["ok@example.org"]), (BODY, sender, recipients)])
    assert outbox.counts() == {}


def test_other_message_types_and_keys_are_refused(outbox: Outbox) -> None:
    with pytest.raises(TypeError, match="Message, bytes or str"):
        outbox.put(iter([BODY]), "a@x.org", ["b@x.org"])
    with pytest.raises(TypeError):
        outbox.put(BODY, "a@x.org", ["b@x.org"], key=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Outbox("postgresql://host/db")


def test_a_put_survives_the_process_being_killed_right_after(tmp_path: Path) -> None:
    """put() returned: the message is in the file even if the process dies at once."""
    path = tmp_path / "outbox.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from smtpx.outbox import Outbox
        box = Outbox({str(path)!r})
        box.put_many([(b"Subject: x\\r\\n\\r\\nx\\r\\n", "a@x.org", ["b@x.org"])] * 50)
        box.put(b"Subject: y\\r\\n\\r\\ny\\r\\n", "a@x.org", ["b@x.org"], key="last")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": SRC}, timeout=60
    )
    assert done.returncode == -9
    with Outbox(path) as box:
        assert box.counts() == {"queued": 51}


# ----------------------------------------------------------------------- states


def test_only_deferred_recipients_are_retried(outbox: Outbox, clock: Clock) -> None:
    answers = {"ok@x.org": 250, "later@x.org": 451, "no@x.org": 550}
    seam = ScriptedSeam(lambda a: answers[a])
    message = outbox.put(BODY, "a@x.org", list(answers))
    report = outbox.run(seam)
    assert report.recipients == {"delivered": 1, "deferred": 1, "refused": 1}
    assert states(outbox, message) == ["delivered", "deferred", "refused"]
    info = outbox.show(message)
    assert info.state == "deferred" and info.next_attempt == clock.now + 10.0
    assert outbox.run(seam).attempts == 0  # not due yet
    clock.advance(10.0)
    answers["later@x.org"] = 250
    outbox.run(seam)
    assert states(outbox, message) == ["delivered", "delivered", "refused"]
    assert outbox.show(message).state == "refused"  # the most troubling final state
    assert set(seam.received.values()) == {1}
    assert len(seam.received) == 2
    history = outbox.show(message).history
    assert [a.outcome for a in history] == ["sent", "sent"]
    second = json.loads(history[1].recipients)
    assert [r["address"] for r in second] == ["later@x.org"]


def test_backoff_doubles_then_the_message_expires(outbox: Outbox, clock: Clock) -> None:
    seam = ScriptedSeam(lambda a: 450)
    message = outbox.put(BODY, "a@x.org", ["b@x.org"])
    start = clock.now
    due = []
    while outbox.show(message).state != "expired":
        outbox.run(seam)
        info = outbox.show(message)
        if info.next_attempt is not None:
            due.append(info.next_attempt - clock.now)
            clock.now = info.next_attempt
        else:
            clock.advance(1.0)
        assert clock.now - start < 1000.0
    assert due[:4] == [10.0, 20.0, 40.0, 40.0]
    assert clock.now <= start + 500.0 + 1.0
    assert outbox.show(message).recipients[0].state == "expired"


def test_an_unknown_outcome_is_held_not_resent(outbox: Outbox, clock: Clock) -> None:
    seam = ScriptedSeam(lambda a: "unknown")
    message = outbox.put(BODY, "a@x.org", ["b@x.org"])
    outbox.run(seam)
    assert outbox.show(message).state == "outcome_unknown"
    clock.advance(400.0)  # within its lifetime (500 s here)
    assert outbox.run(seam).attempts == 0
    assert seam.items == 1
    assert outbox.retry([message]) == 0  # an ordinary retry leaves it alone
    assert outbox.retry([message], unknown=True) == 1
    seam.answer = lambda a: 250
    outbox.run(seam)
    assert outbox.show(message).state == "delivered"
    assert seam.items == 2  # a second copy, by the user's choice


def test_a_policy_may_resend_unknown_outcomes(tmp_path: Path, clock: Clock) -> None:
    policy = RetryPolicy(default=Schedule(first=5.0), jitter=0.0, resend_unknown=True)
    with Outbox(tmp_path / "o.db", policy=policy, clock=clock) as outbox:
        seam = ScriptedSeam(lambda a: "unknown")
        message = outbox.put(BODY, "a@x.org", ["b@x.org"])
        outbox.run(seam)
        assert outbox.show(message).state == "deferred"
        clock.advance(5.0)
        seam.answer = lambda a: 250
        outbox.run(seam)
        assert outbox.show(message).state == "delivered"


def test_not_attempted_messages_are_deferred_and_sent_later(outbox: Outbox, clock: Clock) -> None:
    seam = ScriptedSeam(lambda a: "not_attempted")
    message = outbox.put(BODY, "a@x.org", ["b@x.org"])
    outbox.run(seam)
    assert outbox.show(message).state == "deferred"
    assert seam.received == {}
    clock.advance(10.0)
    seam.answer = lambda a: 250
    outbox.run(seam)
    assert outbox.show(message).state == "delivered"


def test_a_seam_that_cannot_connect_defers_the_batch(outbox: Outbox, clock: Clock) -> None:
    def down(items: Iterator[Any]) -> list[Any]:
        raise ConnectionRefusedError(111, "Connection refused")

    ids = outbox.put_many([(BODY, "a@x.org", ["b@x.org"])] * 3)
    report = outbox.run(down)
    assert report.recipients == {"deferred": 3} and report.attempts == 0
    info = outbox.show(ids[0])
    assert info.history[0].outcome == "not_attempted"
    assert "Connection refused" in (info.history[0].text or "")


def test_priority_and_not_before(outbox: Outbox, clock: Clock) -> None:
    order: list[bytes] = []

    def seam(items: Iterator[Any]) -> list[Any]:
        inner = ScriptedSeam(lambda a: 250)
        listed = list(items)
        order.extend(content.split(b"\r\n\r\n")[1] for content, _, _ in listed)
        return inner(iter(listed))

    outbox.put(b"S: l\r\n\r\nlow", "a@x.org", ["b@x.org"])
    outbox.put(b"S: h\r\n\r\nhigh", "a@x.org", ["b@x.org"], priority=5)
    later = outbox.put(b"S: t\r\n\r\nlater", "a@x.org", ["b@x.org"], not_before=clock.now + 60)
    outbox.run(seam)
    assert order == [b"high", b"low"]
    assert outbox.show(later).state == "queued"
    clock.advance(60)
    outbox.run(seam)
    assert order[-1] == b"later"


def test_cancel_and_purge(outbox: Outbox, clock: Clock) -> None:
    keep, drop = outbox.put_many([(BODY, "a@x.org", ["b@x.org"])] * 2)
    assert outbox.cancel([drop]) == 1
    outbox.run(ScriptedSeam(lambda a: 250))
    assert outbox.counts() == {"delivered": 1, "cancelled": 1}
    assert outbox.purge(1) == 0  # not old enough
    clock.advance(2 * 86400)
    assert outbox.purge(1) == 1
    assert outbox.counts() == {"cancelled": 1}
    with pytest.raises(KeyError):
        outbox.show(keep)


# ----------------------------------------------------------------------- crashes


class Crash(BaseException):
    """Stands for SIGKILL inside one process: nothing after it runs."""


def crash_after(pulls: int) -> Any:
    def seam(items: Iterator[Any]) -> list[Any]:
        for _ in range(pulls):
            next(items)
        raise Crash

    return seam


def test_a_worker_dead_before_the_content_loses_nothing(outbox: Outbox, clock: Clock) -> None:
    message = outbox.put(BODY, "a@x.org", ["b@x.org"])
    with pytest.raises(Crash):
        outbox.run(crash_after(0), lease=30.0)
    assert outbox.show(message).state == "in_flight"
    assert outbox.run(ScriptedSeam(lambda a: 250)).attempts == 0  # the lease holds
    clock.advance(31.0)
    outbox.run(ScriptedSeam(lambda a: 250))
    info = outbox.show(message)
    assert info.state == "delivered"
    assert [a.outcome for a in info.history] == ["lease_expired", "sent"]


def test_a_worker_dead_while_sending_leaves_the_outcome_unknown(
    outbox: Outbox, clock: Clock
) -> None:
    ids = outbox.put_many([(BODY, "a@x.org", ["b@x.org"])] * 20)
    with pytest.raises(Crash):
        outbox.run(crash_after(1), lease=30.0)
    clock.advance(31.0)
    seam = ScriptedSeam(lambda a: 250)
    outbox.run(seam)
    got = {m: outbox.show(m).state for m in ids}
    # The pulled message and those marked with it (MARK_AHEAD) may have gone: held.
    assert got[ids[0]] == "outcome_unknown"
    unknown = [m for m, s in got.items() if s == "outcome_unknown"]
    assert unknown == ids[:8]
    assert all(got[m] == "delivered" for m in ids[8:])
    assert seam.items == 12


# ----------------------------------------------------------------------- properties

ANSWERS = [250, 250, 250, 251, 450, 451, 452, 421, 550, 553, "unknown", "not_attempted"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.randoms(use_true_random=False), st.integers(1, 6), st.integers(1, 4))
def test_every_recipient_ends_final_and_none_gets_two_copies(
    tmp_path_factory: pytest.TempPathFactory, rnd: random.Random, messages: int, batch: int
) -> None:
    clock = Clock()
    path = tmp_path_factory.mktemp("prop") / "outbox.db"
    with Outbox(path, policy=POLICY, clock=clock, rng=random.Random(0)) as outbox:
        for n in range(messages):
            rcpts = [f"r{i}@x.org" for i in range(rnd.randint(1, 4))]
            outbox.put(f"Subject: {n}\r\n\r\nbody\r\n".encode(), "a@x.org", rcpts)
        seam = ScriptedSeam(lambda a: rnd.choice(ANSWERS))
        for _ in range(200):
            outbox.run(seam, batch_size=batch)
            if not outbox.counts().keys() - {s.value for s in FINAL}:
                break
            clock.advance(rnd.choice([1.0, 10.0, 60.0]))
        by_state = outbox.recipient_counts()
        assert set(by_state) <= {s.value for s in FINAL}, by_state
        assert all(count == 1 for count in seam.received.values()), seam.received
        for message in range(1, messages + 1):
            info = outbox.show(message)
            content = outbox.content(message)
            for r in info.recipients:
                copies = seam.received[content, r.address]
                if r.state == State.DELIVERED.value:
                    assert copies == 1
                elif r.state != State.OUTCOME_UNKNOWN.value:
                    assert copies == 0


# ----------------------------------------------------------------------- processes

CLAIMER = """
import os, sys, time
from smtpx import RecipientResult, Reply, SendResult
from smtpx.outbox import Outbox

path, out = sys.argv[1], sys.argv[2]

def seam(items):
    time.sleep(0.005)  # a little network time, so that the processes overlap
    entries = []
    with open(out, "a") as seen:
        for content, sender, recipients in items:
            seen.write(content.split(b"\\r\\n\\r\\n")[1].decode() + "\\n")
            ok = Reply(250, (b"ok",))
            entries.append(SendResult(tuple(RecipientResult(r, ok) for r in recipients), ok))
    return entries

while not os.path.exists(path + ".go"):  # all start together
    time.sleep(0.01)
with Outbox(path) as box:
    box.run(seam, batch_size=5, wait_deferred=True, poll=0.05, duration=60)
"""


def test_several_processes_never_claim_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    total = 400
    with Outbox(path) as box:
        box.put_many([(f"S: x\r\n\r\n{n}".encode(), "a@x.org", ["b@x.org"]) for n in range(total)])
    outs = [tmp_path / f"seen-{i}.txt" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(path), str(out)],
            env={**os.environ, "PYTHONPATH": SRC},
        )
        for out in outs
    ]
    Path(f"{path}.go").touch()
    for proc in procs:
        assert proc.wait(timeout=90) == 0
    seen = [line for out in outs if out.exists() for line in out.read_text().split()]
    assert sorted(seen, key=int) == [str(n) for n in range(total)]  # each exactly once
    assert sum(1 for out in outs if out.exists() and out.read_text()) >= 2  # all took part
    with Outbox(path) as box:
        assert box.counts() == {"delivered": total}
