"""``smtpx sink``: in-process in a thread, and as a subprocess."""

from __future__ import annotations

import argparse
import io
import mailbox
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import smtpx
from smtpx.cli import _sink
from smtpx.testing import SinkMessage

TIMEOUT = 60
RUNNER = (
    "import argparse, sys\n"
    "from smtpx.cli import _sink\n"
    "parser = argparse.ArgumentParser(prog='smtpx')\n"
    "_sink.register(parser.add_subparsers(dest='command'))\n"
    "sys.exit(_sink.run(parser.parse_args(['sink', *sys.argv[1:]])))\n"
)
LISTENING = re.compile(r"smtpx sink: listening on 127\.0\.0\.1:(\d+) ")
MESSAGE = "From: a@example.org\r\nTo: b@example.org\r\nSubject: {}\r\n\r\nFrom here on.\r\n"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="smtpx")
    _sink.register(top.add_subparsers(dest="command"))
    return top


class Running:
    """A sink run in a thread: its port, its stderr and stdout so far, its exit status."""

    def __init__(self, argv: list[str]) -> None:
        self.args = parser().parse_args(["sink", *argv])
        self.err = io.StringIO()
        self.out = io.BytesIO()
        self.stop = threading.Event()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.status = _sink.run(self.args, stop=self.stop, out=self.out, err=self.err)

    def start(self) -> int:
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = LISTENING.search(self.err.getvalue())
            if found:
                return int(found.group(1))
            if not self.thread.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"the sink did not start: {self.err.getvalue()!r}")

    def wait(self) -> int:
        self.thread.join(15)
        assert not self.thread.is_alive(), "the sink did not stop"
        assert self.status is not None
        return self.status


@contextmanager
def sink(*argv: str) -> Iterator[tuple[Running, int]]:
    running = Running(list(argv))
    port = running.start()
    try:
        yield running, port
    finally:
        running.stop.set()
        running.thread.join(15)


def send(port: int, subject: str, **kwargs: object) -> None:
    with smtpx.SMTP("127.0.0.1", port, "localhost", timeout=10) as client:
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE.format(subject), **kwargs)  # type: ignore[arg-type]


def test_count_and_maildir(tmp_path: Path) -> None:
    folder = tmp_path / "Maildir"
    with sink("--port", "0", "--count", "1", "--maildir", str(folder)) as (running, port):
        send(port, "first")
        assert running.wait() == 0
    err = running.err.getvalue()
    assert "(SMTP); Ctrl-C stops" in err
    assert "smtpx sink: #1 from <a@example.org> to <b@example.org>, " in err
    assert err.endswith("smtpx sink: stopped after 1 message\n")
    stored = list(mailbox.Maildir(folder))
    assert len(stored) == 1
    assert stored[0]["Subject"] == "first"
    assert stored[0]["Return-Path"] == "<a@example.org>"
    assert stored[0]["Delivered-To"] == "b@example.org"
    assert stored[0].get_payload() == "From here on.\n"
    assert running.out.getvalue() == b""  # nothing on stdout without --stdout


def test_mbox_and_stdout(tmp_path: Path) -> None:
    path = tmp_path / "mbox"
    with sink("--port", "0", "--count", "2", "--mbox", str(path), "--stdout") as (running, port):
        send(port, "one")
        send(port, "two")
        assert running.wait() == 0
    box = mailbox.mbox(path)
    try:
        messages = list(box)
        assert [m["Subject"] for m in messages] == ["one", "two"]
        assert messages[0].get_from().startswith("a@example.org ")
    finally:
        box.close()
    out = running.out.getvalue()
    assert out.count(b"\nFrom a@example.org ") + out.startswith(b"From a@example.org ") == 2
    assert b"\n>From here on.\n" in out  # mbox quoting of a body line
    assert b"\r\n" not in out


def test_stop_event_and_timeout() -> None:
    with sink("--port", "0") as (running, port):
        send(port, "x")
        running.stop.set()
        assert running.wait() == 0
    started = time.monotonic()
    with sink("--port", "0", "--timeout", "0.5") as (running, _):
        assert running.wait() == 0
    assert time.monotonic() - started < 5
    with sink("--port", "0", "--timeout", "0.5", "--count", "2") as (running, port):
        send(port, "only one")
        assert running.wait() == 1
    assert "smtpx sink: timed out after 1 of 2 messages" in running.err.getvalue()


def test_starttls_auth_and_ca_out(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    argv = ["--port", "0", "--count", "1", "--starttls", "--require-starttls"]
    argv += ["--auth", "alice:s3cret", "--ca-out", str(ca)]
    with sink(*argv) as (running, port):
        assert f"smtpx sink: CA certificate in {ca}\n" in running.err.getvalue()
        context = ssl.create_default_context(cafile=str(ca))
        with smtpx.SMTP("127.0.0.1", port, "localhost", timeout=10) as client:
            client.ehlo()
            assert not client.has_extn("auth")  # AUTH only after TLS
            assert client.mail("a@example.org")[0] == 530  # TLS required
            client.starttls(context=context)
            client.login("alice", "s3cret")
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE.format("tls"))
        assert running.wait() == 0
    assert "(SMTP, STARTTLS required, AUTH PLAIN LOGIN)" in running.err.getvalue()
    assert ", TLS, AUTH alice\n" in running.err.getvalue()
    assert "s3cret" not in running.err.getvalue()


def test_implicit_tls_with_a_temporary_ca_file() -> None:
    with sink("--port", "0", "--count", "1", "--implicit-tls") as (running, port):
        found = re.search(r"CA certificate in (\S+)\n", running.err.getvalue())
        assert found
        ca = Path(found.group(1))
        context = ssl.create_default_context(cafile=str(ca))
        with smtpx.SMTP_SSL("127.0.0.1", port, "localhost", timeout=10, context=context) as c:
            c.sendmail("a@example.org", ["b@example.org"], MESSAGE.format("smtps"))
        assert running.wait() == 0
    assert not ca.exists()  # the temporary CA file goes with the server


def test_auth_without_tls() -> None:
    argv = ["--port", "0", "--count", "1", "--starttls", "--auth", "bob:pw", "--auth-without-tls"]
    with sink(*argv) as (running, port):
        with smtpx.SMTP("127.0.0.1", port, "localhost", timeout=10) as client:
            with pytest.warns(smtpx.InsecureWarning):  # the sink offers STARTTLS too
                client.login("bob", "pw")
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE.format("plain auth"))
        assert running.wait() == 0
    assert ", AUTH bob\n" in running.err.getvalue()


def test_lmtp() -> None:
    with sink("--port", "0", "--count", "1", "--lmtp", "--stdout") as (running, port):
        with smtpx.LMTP("127.0.0.1", port, "localhost", timeout=10) as client:
            refused = client.sendmail("a@example.org", ["b@example.org", "c@example.org"], "hi\r\n")
        assert refused == {}
        assert running.wait() == 0
    assert "(LMTP)" in running.err.getvalue()
    assert "to <b@example.org>, <c@example.org>" in running.err.getvalue()


def test_fixed_port_and_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = parser().parse_args(["sink", "--port", str(port)])
        assert _sink.run(args) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"smtpx sink: error: cannot listen on 127.0.0.1:{port}: Address already in use"
        )
        assert err.count("\n") == 1
    with sink("--port", str(port), "--count", "1") as (running, bound):
        assert bound == port
        send(port, "fixed")
        assert running.wait() == 0


def test_unusable_maildir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    args = parser().parse_args(["sink", "--port", "0", "--maildir", str(blocker / "Maildir")])
    assert _sink.run(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("smtpx sink: error: cannot use the Maildir ") and err.count("\n") == 1


def test_default_port_is_2525() -> None:
    assert parser().parse_args(["sink"]).port == 2525


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "not a port number"),
        (["--port", "-1"], "not a port number"),
        (["--count", "0"], "at least 1"),
        (["--timeout", "nan"], "positive number"),
        (["--auth", "alice"], "USER:PASSWORD"),
        (["--starttls", "--implicit-tls"], "not allowed with argument"),
        (["--hostname", "a b"], "not a host name"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["sink", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("smtpx sink: error: ") and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--require-starttls"], "--require-starttls needs --starttls"),
        (["--ca-out", "ca.pem"], "--ca-out needs --starttls or --implicit-tls"),
        (["--auth-without-tls"], "--auth-without-tls needs --auth"),
        (["--auth", "a:1", "--auth", "a:2"], "the same user twice"),
    ],
)
def test_inconsistent_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sink.run(parser().parse_args(["sink", *argv])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def subprocess_sink(*argv: str) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-bb", "-W", "error", "-c", RUNNER, *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()  # the first status line names the port
    found = LISTENING.match(line)
    if not found:
        process.kill()
        raise AssertionError(f"unexpected first line {line!r}: {process.communicate()}")
    return process, int(found.group(1))


def test_subprocess_count_one() -> None:
    process, port = subprocess_sink("--port", "0", "--count", "1", "--stdout")
    try:
        send(port, "through a subprocess")
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Subject: through a subprocess\n" in out
    assert "smtpx sink: #1 from <a@example.org>" in err and "Traceback" not in err


def test_subprocess_sigterm() -> None:
    process, port = subprocess_sink("--port", "0")
    try:
        send(port, "before the signal")
        time.sleep(0.5)  # the poll loop prints the envelope
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert err.endswith("smtpx sink: stopped after 1 message\n")


def test_subprocess_bad_arguments() -> None:
    command = [sys.executable, "-bb", "-W", "error", "-c", RUNNER, "--count", "zero"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "smtpx sink: error: argument --count: give a whole number of at least 1, not 'zero'"
    )


def test_control_characters_in_the_envelope_are_escaped() -> None:
    # Whether a server takes such an address depends on its parser (aiosmtpd's differs
    # between Python versions), so the envelope line is checked directly.
    message = SinkMessage("a\x1b[2J@example.org", ("b\x07@example.org",), b"hi\r\n", tls=True)
    line = _sink._envelope(message)
    assert line == "from <a\\x1b[2J@example.org> to <b\\x07@example.org>, 4 bytes, TLS"


def test_scripted_faults() -> None:
    """``--fault`` scripts the embedded server's faults (smtpx.testing.Fault), every time."""
    rcpts = ["b@example.org", "c@example.org"]
    with sink("--port", "0", "--fault", "RCPT#2 452 4.5.3 Too many recipients") as (_, port):
        for _ in range(2):
            with smtpx.SMTP("127.0.0.1", port, "localhost", timeout=10) as client:
                result = client.deliver(MESSAGE.format("faults"), "a@example.org", rcpts)
            assert [(r.address, r.status) for r in result.recipients] == [
                ("b@example.org", "accepted"),
                ("c@example.org", "deferred"),
            ]
    with sink("--port", "0", "--fault", "CONTENT drop") as (_, port):
        client = smtpx.SMTP("127.0.0.1", port, "localhost", timeout=10)
        with client, pytest.raises(smtpx.SMTPOutcomeUnknown):
            client.deliver(MESSAGE.format("dropped"), "a@example.org", rcpts[:1])


@pytest.mark.parametrize("spec", ["NOWHERE 550 no", "RCPT#x 450 later", "RCPT", "MAIL 250 ok"])
def test_bad_fault_specs_are_usage_errors(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["sink", "--fault", spec])
    assert exited.value.code == 2
    assert "bad --fault" in capsys.readouterr().err
