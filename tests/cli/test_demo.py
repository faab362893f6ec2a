"""``smtpx demo`` and the ``smtpx`` command line."""

from __future__ import annotations

import base64
import smtplib
import subprocess
import sys

import pytest

import smtpx
from smtpx.cli import main
from smtpx.cli._demo import DEMO_PASSWORD, DEMO_USER

TIMEOUT = 60


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-bb", "-W", "error"]
    command += ["-c", code] if code is not None else ["-m", "smtpx", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def secret_forms(user: str, password: str) -> list[str]:
    """The password as it could leak: in clear, and base64 in every SASL framing."""
    raw = password.encode("utf-8")
    blobs = [
        raw,
        b"\0" + user.encode() + b"\0" + raw,  # PLAIN (RFC 4616)
        user.encode() + b"\0" + user.encode() + b"\0" + raw,  # PLAIN with authzid
    ]
    forms = [password] + [base64.b64encode(blob).decode("ascii") for blob in blobs]
    # Any other framing: the base64 characters made of password bytes only,
    # for each of the three positions the password can start at in a triplet.
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = 4 if shift else 0
        forms.append(encoded[start : (shift + len(raw)) // 3 * 4])
    assert all(len(form) >= 16 for form in forms)
    return forms


def test_demo_runs_and_shows_the_session() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    transcript, _, received = out.partition("message as received by the server")
    assert received, out
    assert "ehlo localhost" in transcript.lower()
    assert "STARTTLS" in transcript
    assert "220 Ready to start TLS" in transcript
    assert "AUTH PLAIN" in transcript or "AUTH LOGIN" in transcript
    assert "235 2.7.0 Authentication successful" in transcript
    assert "quit" in transcript.lower()
    assert "MAIL FROM:<alice@example.org>" in received
    assert "RCPT TO:<bob@example.org>" in received
    assert "over TLS: yes; authenticated as: alice" in received
    assert "Subject: Hello from smtpx" in received
    assert "This message went through STARTTLS and AUTH." in received


def test_demo_never_prints_the_password() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    for form in secret_forms(DEMO_USER, DEMO_PASSWORD):
        assert form not in result.stdout
        assert form not in result.stderr


def test_demo_refuses_to_print_a_leaking_transcript(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The standard library's smtplib prints AUTH in clear at debuglevel 1;
    # the demo's own guard must catch that.
    class StdlibSMTP(smtplib.SMTP):
        def connect(self, host: str = "localhost", port: int = 0, source_address: None = None):  # type: ignore[no-untyped-def, override]
            # smtplib checks TLS against the constructor's host only; the demo uses
            # connect(), as smtpx allows.
            self._host = host
            return super().connect(host, port, source_address)

    monkeypatch.setattr(smtpx, "SMTP", StdlibSMTP, raising=False)
    assert main(["demo"]) == 1
    out, err = capsys.readouterr()
    assert err == "smtpx demo: error: the transcript would reveal the password; not printing it\n"
    for form in secret_forms(DEMO_USER, DEMO_PASSWORD):
        assert form not in out + err


def test_demo_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(smtpx, "SMTP", refuse, raising=False)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err == "smtpx demo: error: ConnectionRefusedError: [Errno 111] Connection refused\n"


def test_demo_without_the_testing_extra() -> None:
    code = (
        "import sys; sys.modules['aiosmtpd'] = None\n"
        "from smtpx.cli import main\n"
        "raise SystemExit(main(['demo']))\n"
    )
    result = run(code=code)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "pip install 'smtpx[testing]'" in result.stderr


def test_no_arguments_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: smtpx" in result.stderr
    assert "demo" in result.stderr


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["bogus"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("smtpx ")
