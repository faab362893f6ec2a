"""Bad arguments: a one-line error and a usage hint, exit status 2, never a traceback."""

from __future__ import annotations

import pytest

from smtpx.cli import COMMANDS, build_parser, main

from .conftest import run_main, run_process

BAD = [
    ["send", "--port", "notaport", "--host", "h"],
    ["send", "--port", "70000", "--host", "h"],
    ["send", "--tls", "sometimes", "--host", "h"],
    ["send", "--timeout", "-1", "--host", "h"],
    ["send", "--repeat", "0", "--host", "h"],
    ["send", "--stop-after", "data", "--host", "h"],
    ["send", "--ret", "EVERYTHING", "--host", "h"],
    ["send", "--no-such-option"],
    ["send"],  # no server
    ["send", "--host", "h", "--to", "b@example.org"],  # no --from to compose
    ["send", "--host", "h", "--from", "a@example.org"],  # no recipient
    ["send", "--url", "http://example.org", "--to", "b@example.org"],
    ["send", "--url", "smtp://u:secret@example.org", "--to", "b@example.org"],
    ["send", "--url", "smtps://example.org", "--host", "h"],
    ["send", "--url", "smtps://example.org", "--tls", "starttls"],
    ["send", "--host", "h", "--lmtp", "--tls", "implicit"],
    ["send", "--host", "h", "--password", "hunter2", "--user", "u"],
    ["send", "--host", "h", "--password-env", "X"],  # no user
    ["send", "--host", "h", "--user", "u", "--password-env", "X", "--password-cmd", "y"],
    ["send", "--host", "h", "--from", "a@x.org", "--to", "b@x.org", "--header", "NoColon"],
    ["send", "--host", "h", "--from", "a@x.org", "--to", "b@x.org", "--header", "To: c@x.org"],
    ["send", "--host", "h", "--from", "a@x.org", "--to", "b@x.org", "--inline", "logo"],
    ["send", "--host", "h", "--from", "a@x.org", "--to", "b@x.org", "--notify", "SOMETIMES"],
    ["send", "--host", "h", "--from", "a@x.org", "--to", "b@x.org", "--subject", "a\nBcc: x"],
    ["send", "--host", "h", "--raw", "-", "--body", "x"],
    ["send", "--host", "h", "--eml-dir", ".", "--repeat", "2"],
    ["send", "--host", "h", "--insecure-no-verify", "--cafile", "x.pem", "--to", "b@x.org"],
    ["sendmail", "-b", "s"],
    ["sendmail", "-R", "NONE", "b@example.org"],
    ["sendmail", "-N", "sometimes", "b@example.org"],
    ["sendmail", "--frobnicate"],
    ["demo", "extra"],
    ["bogus"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) or "none" for a in BAD])
def test_bad_arguments_in_process(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTPX_CONFIG", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent")
    ran = run_main(argv, capsys=capsys, monkeypatch=monkeypatch, stdin=b"Subject: x\n\nx\n")
    assert ran.code == 2, ran.err
    assert "Traceback" not in ran.err
    lines = ran.err.splitlines()
    assert len(lines) == 2, ran.err
    assert ": error: " in lines[0]
    assert lines[1].startswith("Try 'smtpx") and lines[1].endswith(" --help'.")
    assert "hunter2" not in ran.err and "secret" not in ran.err


def test_bad_arguments_as_a_subprocess() -> None:
    ran = run_process(["send", "--password", "hunter2", "--host", "h", "--user", "u"])
    assert ran.code == 2
    assert ran.err.splitlines() == [
        "smtpx send: error: --password is refused: a command line is visible to other users "
        "of this machine (ps); use the prompt, --password-env, --password-cmd or --password-file",
        "Try 'smtpx send --help'.",
    ]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    _, runners = build_parser()
    assert {"demo", "send", "sendmail"} <= set(runners)
    for command in runners:
        assert main([command, "--help"]) == 0
        assert f"usage: smtpx {command}" in capsys.readouterr().out


def test_the_command_list_names_modules() -> None:
    assert COMMANDS[:3] == ("_demo", "_send", "_sendmail")
    assert set(COMMANDS) >= {"_probe", "_sink"}
