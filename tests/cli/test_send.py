"""``smtpx send`` against the embedded server: STARTTLS, AUTH, the message options, the
transcript, JSON, exit codes per phase, batches; in-process and as a subprocess."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from smtpx.testing import SinkServer

from .conftest import PASSWORD, PW_ENV, USER, Ran, run_main, run_process, secret_forms


def parsed(server: SinkServer, count: int = 1) -> list[email.message.EmailMessage]:
    received = server.wait_for_messages(count, timeout=10)
    return [
        email.message_from_bytes(m.content, policy=email.policy.default)  # type: ignore[misc]
        for m in received
    ]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def go(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Ran:
        return run_main(
            argv, capsys=capsys, monkeypatch=monkeypatch, stdin=stdin, env={**PW_ENV, **(env or {})}
        )

    return go


def test_attachment_through_starttls_and_auth_in_process(
    run, base: list[str], server: SinkServer, tmp_path: Path
) -> None:
    attachment = tmp_path / "report.pdf"
    attachment.write_bytes(b"%PDF-1.4 fake\x00\xff")
    ran = run(
        [
            *base,
            "--from",
            "Alice <alice@example.org>",
            "--to",
            "bob@example.org",
            "--cc",
            "carol@example.org",
            "--bcc",
            "dave@example.org",
            "--subject",
            "Report",
            "--body",
            "See attached.",
            "--attach",
            str(attachment),
            "-H",
            "X-Trace: 42",
        ]
    )
    assert ran.code == 0, ran.err
    assert "accepted" in ran.out and "bob@example.org" in ran.out
    (received,) = server.wait_for_messages(1, timeout=10)
    assert received.tls and received.auth_login == USER
    assert received.mail_from == "alice@example.org"
    assert sorted(received.rcpt_tos) == ["bob@example.org", "carol@example.org", "dave@example.org"]
    (msg,) = parsed(server)
    assert msg["Subject"] == "Report" and msg["X-Trace"] == "42"
    assert msg["Bcc"] is None  # blind copies stay blind
    (part,) = list(msg.iter_attachments())
    assert part.get_filename() == "report.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == b"%PDF-1.4 fake\x00\xff"
    assert msg.get_body(("plain",)).get_content().rstrip() == "See attached."


def test_verbose_transcript_as_a_subprocess_shows_directions_not_the_password(
    base: list[str], server: SinkServer
) -> None:
    ran = run_process(
        [*base, "-v", "--from", "alice@example.org", "--to", "bob@example.org", "--body", "hi"],
        env=PW_ENV,
    )
    assert ran.code == 0, ran.err
    assert "Traceback" not in ran.err
    for line in (
        ">> STARTTLS",
        "<< 220 Ready to start TLS",
        "-- TLS started: TLS",
        ">> AUTH PLAIN ********",
        "<< 235 2.7.0 Authentication successful",
        ">> [content: ",
        "<< 221",
    ):
        assert line in ran.err, line
    for form in secret_forms(USER, PASSWORD):
        assert form not in ran.out + ran.err
    assert server.wait_for_messages(1, timeout=10)[0].tls


def test_json_has_every_recipient(run, base: list[str], cafile: str) -> None:
    with SinkServer(
        starttls=True, auth={USER: PASSWORD}, refuse_at_rcpt=["nobody@example.org"]
    ) as other:
        (Path(cafile).parent / "other.pem").write_bytes(other.ca_pem)
        argv = [
            *base,
            "--json",
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--to",
            "nobody@example.org",
            "--body",
            "x",
        ]
        argv[argv.index("--port") + 1] = str(other.port)
        argv[argv.index("--cafile") + 1] = str(Path(cafile).parent / "other.pem")
        ran = run(argv)
    assert ran.code == 11, ran.err  # some recipients refused
    report = json.loads(ran.out)
    assert report["ok"] is False and report["exit_code"] == 11
    (message,) = report["messages"]
    by_address = {r["address"]: r for r in message["recipients"]}
    assert by_address["bob@example.org"]["status"] == "accepted"
    assert by_address["nobody@example.org"]["status"] == "refused"
    assert by_address["nobody@example.org"]["code"] == 550


def test_every_recipient_refused_exits_9(run, base: list[str], cafile: str) -> None:
    with SinkServer(
        starttls=True, auth={USER: PASSWORD}, refuse_at_rcpt=["nobody@example.org"]
    ) as other:
        (Path(cafile).parent / "other2.pem").write_bytes(other.ca_pem)
        argv = [*base, "--from", "a@example.org", "--to", "nobody@example.org", "--body", "x"]
        argv[argv.index("--port") + 1] = str(other.port)
        argv[argv.index("--cafile") + 1] = str(Path(cafile).parent / "other2.pem")
        ran = run(argv)
    assert ran.code == 9
    assert ran.err.startswith("smtpx send: error: rcpt: ") and ran.err.count("\n") == 1


def test_wrong_password_exits_7(run, base: list[str], server: SinkServer) -> None:
    ran = run(
        [*base, "--from", "a@example.org", "--to", "b@example.org", "--body", "x"],
        env={"SMTPX_TEST_PW": "wrong"},
    )
    assert ran.code == 7
    assert "auth: SMTPAuthenticationError: (535" in ran.err
    assert server.messages == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_exits_4(run) -> None:
    ran = run(
        [
            "send",
            "--host",
            "127.0.0.1",
            "--port",
            str(_closed_port()),
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--timeout",
            "5",
        ]
    )
    assert ran.code == 4
    assert ran.err.startswith("smtpx send: error: connect: ") and "Traceback" not in ran.err


def test_untrusted_certificate_exits_6_and_insecure_switch_passes(
    run, base: list[str], server: SinkServer
) -> None:
    argv = [*base, "--from", "a@example.org", "--to", "b@example.org", "--body", "x"]
    at = argv.index("--cafile")
    untrusted = argv[:at] + argv[at + 2 :]
    ran = run(untrusted)
    assert ran.code == 6
    assert "CERTIFICATE_VERIFY_FAILED" in ran.err
    assert server.messages == []
    ran = run([*untrusted, "--insecure-no-verify"])
    assert ran.code == 0, ran.err
    assert "warning: certificate checks are off" in ran.err


def test_tls_modes_against_a_server_without_starttls(run) -> None:
    with SinkServer(auth={USER: PASSWORD}, auth_require_tls=False) as plain:
        where = ["--host", plain.host, "--port", str(plain.port), "--timeout", "5"]
        envelope = ["--from", "a@example.org", "--to", "b@example.org", "--body", "x"]
        required = run(["send", *where, *envelope])  # --tls starttls is the default
        assert required.code == 6 and "does not offer STARTTLS" in required.err
        login = ["--user", USER, "--password-env", "SMTPX_TEST_PW"]
        downgraded = run(["send", *where, "--tls", "starttls-if-offered", *login, *envelope])
        assert downgraded.code == 7 and "not sent in the clear" in downgraded.err
        assert plain.messages == []
        anonymous = run(["send", *where, "--tls", "starttls-if-offered", *envelope])
        assert anonymous.code == 0, anonymous.err
        chosen = run(["send", *where, "--tls", "none", *login, "--auth", "PLAIN", *envelope])
        assert chosen.code == 0, chosen.err
        received = plain.wait_for_messages(2, timeout=10)
        assert [m.auth_login for m in received] == [None, USER]


@pytest.mark.parametrize("phase", ["connect", "ehlo", "starttls", "auth", "mail", "rcpt"])
def test_stop_after_each_phase_sends_nothing(
    run, base: list[str], server: SinkServer, phase: str
) -> None:
    ran = run(
        [*base, "-v", "--stop-after", phase, "--from", "a@example.org", "--to", "b@example.org"]
    )
    assert ran.code == 0, ran.err
    assert f"stopped after {phase}" in ran.err
    marks = {
        "connect": "<< 220",
        "ehlo": "<< 250",
        "starttls": "-- TLS started",
        "auth": "<< 235",
        "mail": ">> mail from:<a@example.org>",
        "rcpt": ">> rcpt to:<b@example.org>",
    }
    assert marks[phase] in ran.err
    later = ["connect", "ehlo", "starttls", "auth", "mail", "rcpt"]
    for after in later[later.index(phase) + 1 :]:
        assert marks[after] not in ran.err, after
    assert ">> data" not in ran.err.lower()
    assert "<< 221" in ran.err  # QUIT, politely
    if phase == "rcpt":
        assert "b@example.org" in ran.out and "accepted" in ran.out
    assert server.messages == []


def test_raw_message_from_stdin_loses_its_bcc(run, base: list[str], server: SinkServer) -> None:
    raw = (
        b"From: a@example.org\nTo: b@example.org\nBcc: hidden@example.org,\n"
        b" other@example.org\nSubject: raw\n\nbody line\n"
    )
    ran = run([*base, "--raw", "-"], stdin=raw)
    assert ran.code == 0, ran.err
    (received,) = server.wait_for_messages(1, timeout=10)
    assert sorted(received.rcpt_tos) == ["b@example.org", "hidden@example.org", "other@example.org"]
    assert b"hidden" not in received.content and b"other@" not in received.content
    assert b"Subject: raw\r\n\r\nbody line\r\n" in received.content


def test_repeat_and_eml_dir_send_batches(
    run, base: list[str], server: SinkServer, tmp_path: Path
) -> None:
    envelope = ["--from", "a@example.org", "--to", "b@example.org"]
    ran = run([*base, *envelope, "--subject", "again", "--repeat", "3", "--json"])
    assert ran.code == 0, ran.err
    assert len(json.loads(ran.out)["messages"]) == 3
    ids = {m["Message-ID"] for m in parsed(server, 3)}
    assert len(ids) == 3  # each copy is its own message
    server.clear_messages()
    for number in range(4):
        (tmp_path / f"{number}.eml").write_bytes(
            f"From: a@example.org\nTo: n{number}@example.org\nSubject: {number}\n\nx\n".encode()
        )
    (tmp_path / "skip.txt").write_text("not a message")
    ran = run([*base, "--eml-dir", str(tmp_path)])
    assert ran.code == 0, ran.err
    assert "sent 4 of 4 message(s)" in ran.out
    received = server.wait_for_messages(4, timeout=10)
    # Through the pool, on up to 4 connections: in any order, each once.
    assert sorted(list(m.rcpt_tos) for m in received) == [[f"n{n}@example.org"] for n in range(4)]


def test_lmtp_over_plaintext(run) -> None:
    with SinkServer(lmtp=True, refuse_after_data=["late@example.org"]) as lmtp:
        ran = run(
            [
                "send",
                "--lmtp",
                "--tls",
                "none",
                "--host",
                lmtp.host,
                "--port",
                str(lmtp.port),
                "--from",
                "a@example.org",
                "--to",
                "b@example.org",
                "--to",
                "late@example.org",
                "--json",
                "--timeout",
                "5",
            ]
        )
        assert ran.code == 11, ran.err
        recipients = json.loads(ran.out)["messages"][0]["recipients"]
        assert [(r["address"], r["status"]) for r in recipients] == [
            ("b@example.org", "accepted"),
            ("late@example.org", "refused"),
        ]


def test_password_sources(run, base: list[str], server: SinkServer, tmp_path: Path) -> None:
    at = base.index("--password-env")
    without = base[:at] + base[at + 2 :]
    envelope = ["--from", "a@example.org", "--to", "b@example.org", "--body", "x"]
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o644)
    ran = run([*without, "--password-file", str(secret), *envelope])
    assert ran.code == 3 and "can be read by others" in ran.err
    secret.chmod(0o600)
    assert run([*without, "--password-file", str(secret), *envelope]).code == 0
    command = f"{sys.executable} -c \"print('{PASSWORD}')\""
    ran = run([*without, "--password-cmd", command, *envelope])
    assert ran.code == 0, ran.err
    ran = run([*without, "--password-cmd", f"{sys.executable} -c 'raise SystemExit(3)'", *envelope])
    assert ran.code == 3 and "exited with status 3" in ran.err
    assert len(server.wait_for_messages(2, timeout=10)) == 2


def test_account_from_the_config_file(run, server: SinkServer, cafile: str, tmp_path: Path) -> None:
    config = tmp_path / "accounts.toml"
    config.write_text(
        'default = "sink"\n[accounts.sink]\n'
        f'url = "smtp+starttls://{server.host}:{server.port}"\n'
        f'username = "{USER}"\npassword_env = "SMTPX_TEST_PW"\n'
        f'from = "Alice <alice@example.org>"\ncafile = "{cafile}"\n'
    )
    ran = run(["send", "--to", "b@example.org", "--body", "x"], env={"SMTPX_CONFIG": str(config)})
    assert ran.code == 0, ran.err
    (received,) = server.wait_for_messages(1, timeout=10)
    assert received.mail_from == "alice@example.org" and received.auth_login == USER
    ran = run(
        ["send", "--account", "nope", "--to", "b@example.org"], env={"SMTPX_CONFIG": str(config)}
    )
    assert ran.code == 3 and "no account 'nope'" in ran.err and "(accounts: sink)" in ran.err
    config.write_text('[accounts.bad]\nurl = "smtp://x"\npassword = "oops"\n')
    ran = run(
        ["send", "--account", "bad", "--to", "b@example.org"], env={"SMTPX_CONFIG": str(config)}
    )
    assert ran.code == 3 and "no password in the config file" in ran.err


def test_rich_and_plain_output(base: list[str], server: SinkServer) -> None:
    argv = [*base, "--from", "a@example.org", "--to", "b@example.org", "--body", "x"]
    plain = run_process(argv, env={**PW_ENV, "SMTPX_PLAIN": "1"})
    assert plain.code == 0, plain.err
    assert plain.out.splitlines()[1].split() == ["recipient", "status", "code", "reply"]
    try:
        import rich  # noqa: F401
    except ImportError:
        pytest.fail("the cli extra (rich) is part of the test dependencies") if os.environ.get(
            "CI"
        ) else pytest.skip("rich is not installed here")
    fancy = run_process(argv, env=PW_ENV)
    assert fancy.code == 0, fancy.err
    assert "recipient" in fancy.out and "b@example.org" in fancy.out
    assert "━" in fancy.out or "┃" in fancy.out  # a rich table, not the plain one
