"""``smtpx send`` and ``smtpx sendmail`` against Postfix: STARTTLS and AUTH through Postfix
submission with Dovecot SASL, DSN options through the plain Postfix; each message is read
back from the recipient's maildir."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .servers import PostfixServer, SubmissionServer, new_token

pytestmark = pytest.mark.integration

ALICE = "alice@example.test"
SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Ran:
    code: int
    out: str
    err: str


def run_process(argv: list[str], *, stdin: bytes = b"", env: dict[str, str] | None = None) -> Ran:
    """``python -m smtpx ARGV`` with this checkout's source first on the path."""
    environ = dict(os.environ, **(env or {}))
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-bb", "-W", "error", "-m", "smtpx", *argv],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=environ,
        check=False,
    )
    return Ran(done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8"))


def test_send_with_an_attachment_through_starttls_and_auth(
    submission: SubmissionServer, tmp_path: Path
) -> None:
    token = new_token()
    attachment = tmp_path / "report.pdf"
    attachment.write_bytes(b"%PDF-1.4 " + token.encode())
    ran = run_process(
        [
            "send",
            "--host",
            submission.host,
            "--port",
            str(submission.port),
            "--cafile",
            str(submission.ca_file),
            "--user",
            ALICE,
            "--password-env",
            "PW",
            "--from",
            f"Alice <{ALICE}>",
            "--to",
            ALICE,
            "--subject",
            f"cli {token}",
            "--body",
            "See attached.",
            "--attach",
            str(attachment),
            "-v",
            "--timeout",
            "10",
        ],
        env={"PW": submission.password(ALICE), "SMTPX_PLAIN": "1"},
    )
    print(ran.err)  # the transcript, for whoever reads the test log
    assert ran.code == 0, ran.err
    for line in (">> STARTTLS", "-- TLS started: TLS", ">> AUTH ", "<< 235 ", " queued as "):
        assert line in ran.err, line
    assert submission.password(ALICE) not in ran.err + ran.out
    delivered = submission.mailbox(ALICE).wait_for(token, sender=ALICE)
    msg = email.message_from_bytes(delivered, policy=email.policy.default)
    (part,) = msg.iter_attachments()
    assert part.get_filename() == "report.pdf"
    assert part.get_content() == b"%PDF-1.4 " + token.encode()
    assert "queued as" in ran.out


def test_send_wrong_password_exits_7(submission: SubmissionServer) -> None:
    ran = run_process(
        [
            "send",
            "--host",
            submission.host,
            "--port",
            str(submission.port),
            "--cafile",
            str(submission.ca_file),
            "--user",
            ALICE,
            "--password-env",
            "PW",
            "--from",
            ALICE,
            "--to",
            ALICE,
            "--timeout",
            "10",
        ],
        env={"PW": "not-the-password"},
    )
    assert ran.code == 7 and "535" in ran.err


def test_send_json_with_dsn_and_stop_after_rcpt(postfix: PostfixServer) -> None:
    token = new_token()
    common = [
        "send",
        "--host",
        postfix.host,
        "--port",
        str(postfix.port),
        "--cafile",
        str(postfix.ca_file),
        "--from",
        "sender@client.test",
        "--to",
        ALICE,
        "--timeout",
        "10",
    ]
    ran = run_process([*common, "--stop-after", "rcpt", "--json"])
    assert ran.code == 0, ran.err
    assert '"status": "accepted"' in ran.out
    ran = run_process(
        [
            *common,
            "--subject",
            token,
            "--notify",
            "SUCCESS,FAILURE",
            "--ret",
            "HDRS",
            "--envid",
            token,
            "-v",
            "--json",
        ]
    )
    assert ran.code == 0, ran.err
    assert "NOTIFY=SUCCESS,FAILURE" in ran.err and "RET=HDRS" in ran.err
    assert '"queue_id": "' in ran.out
    postfix.mailbox(ALICE).wait_for(token, sender="sender@client.test")


def test_sendmail_through_postfix(postfix: PostfixServer, tmp_path: Path) -> None:
    token = new_token()
    config = tmp_path / "accounts.toml"
    config.write_text(
        f'default = "pf"\n[accounts.pf]\nurl = "smtp+starttls://{postfix.host}:{postfix.port}"\n'
        f'from = "sender@client.test"\ncafile = "{postfix.ca_file}"\n'
    )
    ran = run_process(
        ["sendmail", "-t", "-oi"],
        stdin=f"To: {ALICE}\nSubject: {token}\n\nfrom cron\n.\n".encode(),
        env={"SMTPX_CONFIG": str(config)},
    )
    assert ran.code == 0, ran.err
    delivered = postfix.mailbox(ALICE).wait_for(token, sender="sender@client.test")
    assert b"from cron" in delivered and b"Message-ID: <" in delivered
