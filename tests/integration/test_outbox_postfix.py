"""The outbox into Postfix: a drain checked in the maildirs, and the CRASH test: a worker
process SIGKILLed at random moments while it drains a few hundred messages, restarted
until the outbox is empty; then every message is accounted for in the maildirs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

import smtpx
from smtpx.outbox import Outbox

from .servers import PostfixServer

pytestmark = pytest.mark.integration

SRC = str(Path(smtpx.__file__).resolve().parents[1])
SENDER = "outbox@client.test"
DELIVERY_TIMEOUT = 30.0


def url(postfix: PostfixServer) -> str:
    return f"smtp+starttls://{postfix.host}:{postfix.port}"


def tally(postfix: PostfixServer, run: str) -> Counter[tuple[str, str]]:
    """(message number, mailbox) -> copies delivered, for this run's messages."""
    found: Counter[tuple[str, str]] = Counter()
    for address in ("alice@example.test", "bob@example.test"):
        for message in postfix.mailbox(address).find(run):
            subject = next(line for line in message.split(b"\n") if line.startswith(b"Subject:"))
            found[subject.split()[-1].decode(), address] += 1
    return found


def settle(postfix: PostfixServer, run: str, want: int) -> Counter[tuple[str, str]]:
    """Wait until Postfix has delivered *want* copies (it delivers after its 250)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        got = tally(postfix, run)
        if sum(got.values()) >= want or time.monotonic() > deadline:
            time.sleep(0.3)  # anything more (a duplicate) would show up now
            return tally(postfix, run)
        time.sleep(0.1)


def message(run: str, n: int) -> bytes:
    return f"From: <{SENDER}>\r\nSubject: {run} {n}\r\n\r\nmessage {n}\r\n".encode()


def test_a_worker_drains_into_postfix(tmp_path: Path, postfix: PostfixServer) -> None:
    run = f"outbox-{uuid.uuid4().hex}"
    with Outbox(tmp_path / "o.db") as outbox:
        ok = outbox.put_many(
            [
                (message(run, n), SENDER, ["alice@example.test", "bob@example.test"])
                for n in range(20)
            ]
        )
        mixed = outbox.put(
            message(run, 20),
            SENDER,
            ["alice@example.test", postfix.unknown_user, postfix.deferred_user],
        )
        report = outbox.run(url=url(postfix), cafile=str(postfix.ca_file), timeout=10)
        assert report.recipients == {"delivered": 41, "refused": 1, "deferred": 1}
        info = outbox.show(mixed)
        assert [r.state for r in info.recipients] == ["delivered", "refused", "deferred"]
        assert info.recipients[2].code == 450 and info.recipients[2].enhanced == "4.2.0"
        assert info.state == "deferred" and info.next_attempt is not None
        assert all(outbox.show(m).queue_id for m in ok)  # "queued as ..." kept
    got = settle(postfix, run, 41)
    assert len(got) == 41 and set(got.values()) == {1}


WORKER = """
import sys
from smtpx.outbox import Outbox
path, url, cafile = sys.argv[1:4]
with Outbox(path) as box:
    box.run(url=url, cafile=cafile, timeout=10, batch_size=20, lease=2.0,
            wait_deferred=True, poll=0.2, duration=float(sys.argv[4]))
"""


def test_crash_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, postfix: PostfixServer
) -> None:
    """CRASH: 400 messages, 5 SIGKILLs at random moments, restarts until the outbox is
    empty; the maildirs must hold each delivered message once, nothing for one never
    sent, at most one copy of one whose outcome is unknown."""
    total, kills_wanted = 400, 5
    run = f"crash-{uuid.uuid4().hex}"
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        ids = outbox.put_many(
            [(message(run, n), SENDER, ["alice@example.test"]) for n in range(total)]
        )
    rnd = random.Random(int(os.environ.get("SMTPX_CRASH_SEED", time.time_ns())))
    env = {**os.environ, "PYTHONPATH": SRC}
    argv = [sys.executable, "-c", WORKER, str(path), url(postfix), str(postfix.ca_file)]
    kills = 0
    started = time.monotonic()
    while kills < kills_wanted:
        worker = subprocess.Popen([*argv, "30"], env=env)
        time.sleep(rnd.uniform(0.3, 0.7))  # a worker needs ~0.3 s to import and connect
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(timeout=30)
        with Outbox(path) as outbox:
            if not set(outbox.counts()) - {"delivered", "outcome_unknown"}:
                break
    final = subprocess.run([*argv, "40"], env=env, timeout=60)
    assert final.returncode == 0
    with Outbox(path) as outbox:
        states = {m: outbox.show(m).state for m in ids}
    counts = Counter(states.values())
    assert set(counts) <= {"delivered", "outcome_unknown"}, counts
    got = settle(postfix, run, counts["delivered"])
    copies = {n: got[str(n), "alice@example.test"] for n in range(total)}
    duplicates = sum(1 for c in copies.values() if c > 1)
    lost = sum(1 for n, m in enumerate(ids) if states[m] == "delivered" and copies[n] == 0)
    unknown_delivered = sum(
        1 for n, m in enumerate(ids) if states[m] == "outcome_unknown" and copies[n] == 1
    )
    print(
        f"\nCRASH: {kills} kills, {total} messages, {counts['delivered']} delivered,"
        f" {counts['outcome_unknown']} outcome unknown ({unknown_delivered} of them in the"
        f" maildir), {duplicates} duplicates, {lost} lost,"
        f" {time.monotonic() - started:.1f} s"
    )
    assert duplicates == 0 and lost == 0
    assert kills >= 1
