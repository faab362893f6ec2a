"""``smtpx sendmail``: the sendmail interface, configured by an account, with sysexits."""

from __future__ import annotations

import email
import email.policy
import socket
from pathlib import Path

import pytest

from smtpx.testing import SinkServer

from .conftest import PASSWORD, PW_ENV, USER, Ran, run_main, run_process


@pytest.fixture
def config(server: SinkServer, cafile: str, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "accounts.toml"
    path.write_text(
        'default = "sink"\n[accounts.sink]\n'
        f'url = "smtp+starttls://{server.host}:{server.port}"\n'
        f'username = "{USER}"\npassword_env = "SMTPX_TEST_PW"\n'
        f'from = "Cron Daemon <cron@example.org>"\ncafile = "{cafile}"\n'
    )
    return {"SMTPX_CONFIG": str(path), **PW_ENV}


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config):  # type: ignore[no-untyped-def]
    def go(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Ran:
        return run_main(
            ["sendmail", *argv],
            capsys=capsys,
            monkeypatch=monkeypatch,
            stdin=stdin,
            env={**config, **(env or {})},
        )

    return go


def test_recipients_as_arguments_and_headers_added(run, server: SinkServer) -> None:
    ran = run(["-i", "bob@example.org"], stdin=b"Subject: backup\n\ndone\n.\nstill here\n")
    assert ran.code == 0, ran.err
    (received,) = server.wait_for_messages(1, timeout=10)
    assert received.tls and received.auth_login == USER
    assert received.mail_from == "cron@example.org"
    assert list(received.rcpt_tos) == ["bob@example.org"]
    msg = email.message_from_bytes(received.content, policy=email.policy.default)
    assert msg["From"] == "Cron Daemon <cron@example.org>"
    assert msg["Date"] and msg["Message-ID"].endswith("@example.org>")
    assert b"done\r\n..\r\nstill here" not in received.content  # dot-stuffing is undone
    assert msg.get_content().replace("\r\n", "\n") == "done\n.\nstill here\n"


def test_dash_t_reads_recipients_and_removes_bcc(run, server: SinkServer) -> None:
    message = (
        b"From: Me <me@example.org>\nTo: to@example.org\nCc: cc@example.org\n"
        b"Bcc: secret@example.org\nSubject: t\n\nbody\n"
    )
    ran = run(["-t", "-oi", "-f", "bounce@example.org", "extra@example.org"], stdin=message)
    assert ran.code == 0, ran.err
    (received,) = server.wait_for_messages(1, timeout=10)
    assert received.mail_from == "bounce@example.org"
    assert sorted(received.rcpt_tos) == sorted(
        ["extra@example.org", "to@example.org", "cc@example.org", "secret@example.org"]
    )
    assert b"secret@" not in received.content
    assert b"From: Me <me@example.org>\r\n" in received.content  # kept as written


def test_a_lone_dot_ends_the_message_without_i(run, server: SinkServer) -> None:
    ran = run(["-F", "Backup Job", "bob@example.org"], stdin=b"Subject: s\n\nfirst\n.\nlost\n")
    assert ran.code == 0, ran.err
    (received,) = server.wait_for_messages(1, timeout=10)
    assert b"first\r\n" in received.content and b"lost" not in received.content
    assert b"From: Backup Job <cron@example.org>" in received.content


def test_refused_recipient_exits_67(run, cafile: str, tmp_path: Path) -> None:
    with SinkServer(starttls=True, auth={USER: PASSWORD}, refuse_at_rcpt=["no@example.org"]) as s:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(s.ca_pem)
        ran = run(
            ["--url", f"smtp+starttls://{s.host}:{s.port}", "--cafile", str(ca), "no@example.org"],
            stdin=b"Subject: x\n\nx\n",
        )
    assert ran.code == 67
    assert ran.err.startswith("smtpx sendmail: error: rcpt: ")


def test_unreachable_server_is_tempfail_75(run) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ran = run(
        ["--host", "127.0.0.1", "--port", str(port), "--timeout", "5", "b@example.org"],
        stdin=b"Subject: x\n\nx\n",
    )
    assert ran.code == 75 and "connect:" in ran.err


def test_no_configuration_is_78(run, tmp_path: Path) -> None:
    env = {"SMTPX_CONFIG": "", "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    ran = run(["b@example.org"], stdin=b"Subject: x\n\nx\n", env=env)
    assert ran.code == 78 and "no server" in ran.err


def test_empty_message_is_65(run) -> None:
    ran = run(["b@example.org"], stdin=b"")
    assert ran.code == 65 and "no message on stdin" in ran.err


def test_as_a_subprocess_with_the_environment_only(server: SinkServer, cafile: str) -> None:
    env = {
        "SMTPX_URL": f"smtp+starttls://{server.host}:{server.port}",
        "SMTPX_USERNAME": USER,
        "SMTPX_PASSWORD": PASSWORD,
        "SMTPX_CAFILE": cafile,
        "SMTPX_FROM": "env@example.org",
        "SMTPX_CONFIG": "/nonexistent/accounts.toml",
    }
    ran = run_process(
        ["sendmail", "-oi", "-t"], stdin=b"To: bob@example.org\nSubject: env\n\nhello\n", env=env
    )
    # SMTPX_CONFIG names a file that is not there: that is a configuration error...
    assert ran.code == 78 and "does not exist" in ran.err
    del env["SMTPX_CONFIG"]
    ran = run_process(
        ["sendmail", "-oi", "-t", "-v"],
        stdin=b"To: bob@example.org\nSubject: env\n\nhello\n",
        env={**env, "XDG_CONFIG_HOME": "/nonexistent"},
    )
    assert ran.code == 0, ran.err
    assert ">> AUTH PLAIN ********" in ran.err and PASSWORD not in ran.err
    (received,) = server.wait_for_messages(1, timeout=10)
    assert received.mail_from == "env@example.org" and received.auth_login == USER
