"""The outbox on Celery, for real: a private Redis as the broker, two ``celery worker``
processes sending into Postfix, one of them SIGKILLed mid-run.  Every message must end
delivered, refused, deferred or outcome unknown, and Postfix's maildir must hold each
delivered message once, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

import smtpx
from smtpx.outbox._celery import CeleryOutbox

from .servers import PostfixServer, RedisServer
from .test_outbox_postfix import SENDER, message, settle, url

pytestmark = pytest.mark.integration

SRC = str(Path(smtpx.__file__).resolve().parents[1])
# The whole test stays well under a minute: workers start in ~2 s, the killed worker's
# task comes back after the visibility timeout (4 s) plus one restore sweep (1 s), its
# message's lease is 3 s.
DEADLINE = 50.0
# The sweep re-publishes a pending message's task this late: more than the longest
# countdown (2 s) plus a worker's time to reach a task in this test's queue.
SWEEP_GRACE = 8.0
TOTAL = 120

# The workers' module (and the producer's): the same CeleryOutbox on both sides.
APP = """
import os
from celery import Celery
from smtpx.outbox._celery import CeleryOutbox

app = Celery("smtpx_celery_test", broker=os.environ["SMTPX_TEST_BROKER"])
app.conf.update(
    # A task unacknowledged for 4 s is delivered again (a killed worker's); the sweep
    # that puts it back runs every second.  Countdowns stay below 2 s (hops).
    broker_transport_options={
        "visibility_timeout": 4,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        # The restore sweep's lock, if a killed worker held it, frees itself in 3 s.
        "unacked_mutex_expire": 3,
    },
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
mail = CeleryOutbox(
    app,
    os.environ["SMTPX_TEST_OUTBOX"],
    url=os.environ["SMTPX_TEST_SMTP"],
    cafile=os.environ["SMTPX_TEST_CAFILE"],
    timeout=10,
    lease=3.0,
)
"""


def worker(tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_app",
                "worker",
                "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
                "-n",
                f"{name}@%h",
            ],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")


def ready(tmp_path: Path, name: str) -> bool:
    return f"{name}@" in log(tmp_path, name) and " ready." in log(tmp_path, name)


def succeeded(tmp_path: Path, name: str) -> int:
    """Tasks the worker finished (its INFO log has a line for each)."""
    return log(tmp_path, name).count("] succeeded in ")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_two_celery_workers_one_killed_mid_run_send_nothing_twice(
    tmp_path: Path, postfix: PostfixServer, redis: RedisServer
) -> None:
    run = f"celery-{uuid.uuid4().hex}"
    (tmp_path / "celery_app.py").write_text(APP)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, str(tmp_path)]),
        "SMTPX_TEST_BROKER": redis.url,
        "SMTPX_TEST_OUTBOX": str(tmp_path / "outbox.db"),
        "SMTPX_TEST_SMTP": url(postfix),
        "SMTPX_TEST_CAFILE": str(postfix.ca_file),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("SMTPX_TEST_")})
    sys.path.insert(0, str(tmp_path))
    try:
        import celery_app  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
        for key in [k for k in env if k.startswith("SMTPX_TEST_")]:
            os.environ.pop(key, None)
    mail: CeleryOutbox = celery_app.mail
    started = time.monotonic()
    workers = [worker(tmp_path, env, "w1"), worker(tmp_path, env, "w2")]
    killed_after = None
    swept, next_sweep = 0, 0.0
    try:
        # Both workers ready before the messages: they share the run.
        while not all(ready(tmp_path, name) for name in ("w1", "w2")):
            assert time.monotonic() - started < DEADLINE / 2, "the workers did not start"
            assert all(p.poll() is None for p in workers), log(tmp_path, "w1") + log(tmp_path, "w2")
            time.sleep(0.1)
        ids = mail.put_many(
            [(message(run, n), SENDER, ["alice@example.test"]) for n in range(TOTAL)]
        )
        refused = mail.put(message(run, TOTAL), SENDER, [postfix.unknown_user])
        deferred = mail.put(message(run, TOTAL + 1), SENDER, [postfix.deferred_user])
        while time.monotonic() - started < DEADLINE:
            counts = mail.outbox.counts()
            # Killed mid-run: once it has sent a share of the messages, in the middle of
            # whatever it is doing then (a solo worker spends its time in its tasks).
            if killed_after is None and succeeded(tmp_path, "w1") >= TOTAL // 6:
                assert workers[0].poll() is None, log(tmp_path, "w1")
                os.killpg(workers[0].pid, signal.SIGKILL)
                workers[0].wait(10)
                killed_after = succeeded(tmp_path, "w1")
            if killed_after is not None and not {"queued", "in_flight"} & set(counts):
                break
            if time.monotonic() > next_sweep:
                # What Celery beat does in production (sweep_task): a task the broker
                # lost with the killed worker (Redis's BRPOP takes it off the list before
                # the worker records it as unacknowledged) is published again.
                swept += mail.sweep(grace=SWEEP_GRACE)
                next_sweep = time.monotonic() + 1.0
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        assert workers[1].poll() is None, log(tmp_path, "w2")
    finally:
        for process in workers:
            stop(process)
        celery_app.app.close()
    assert killed_after is not None, "the first worker was never killed\n" + log(tmp_path, "w1")
    states = {m: mail.outbox.show(m).state for m in ids}
    counts = Counter(states.values())
    assert set(counts) <= {"delivered", "outcome_unknown", "deferred"}, (counts, elapsed)
    assert mail.outbox.show(refused).state == "refused"
    assert mail.outbox.show(deferred).state == "deferred"
    got = settle(postfix, run, counts["delivered"])
    copies = {n: got[str(n), "alice@example.test"] for n in range(TOTAL)}
    duplicates = sum(1 for c in copies.values() if c > 1)
    lost = sum(1 for n, m in enumerate(ids) if states[m] == "delivered" and copies[n] == 0)
    print(
        f"\nCELERY: 2 workers, 1 SIGKILLed after {killed_after} of its tasks ({TOTAL} messages);"
        f" {dict(counts)}; {swept} tasks published again by the sweep;"
        f" {duplicates} duplicates, {lost} lost, {elapsed:.1f} s"
    )
    assert duplicates == 0 and lost == 0
    # Something deferred only when a connection went down with the killed worker.
    assert counts["deferred"] <= 2
