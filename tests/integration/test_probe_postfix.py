"""``smtpx probe`` against Postfix (the plain instance and the submission ports) and Dovecot."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from smtpx.cli import _probe

from .servers import DovecotLMTPServer, PostfixServer, SubmissionServer

pytestmark = pytest.mark.integration

TIMEOUT = 60
RUNNER = (
    "import argparse, sys\n"
    "from smtpx.cli import _probe\n"
    "parser = argparse.ArgumentParser(prog='smtpx')\n"
    "_probe.register(parser.add_subparsers(dest='command'))\n"
    "sys.exit(_probe.run(parser.parse_args(['probe', *sys.argv[1:]])))\n"
)


def probe_json(*argv: str) -> tuple[int, dict[str, Any]]:
    top = argparse.ArgumentParser(prog="smtpx")
    _probe.register(top.add_subparsers(dest="command"))
    out = io.StringIO()
    code = _probe.run(top.parse_args(["probe", *argv, "--json", "--timeout", "10"]), out)
    return code, json.loads(out.getvalue())


def results(report: dict[str, Any]) -> dict[str, str]:
    return {name: check["result"] for name, check in report["checks"].items()}


def test_postfix_starttls(postfix: PostfixServer) -> None:
    code, report = probe_json(
        f"{postfix.host}:{postfix.port}", "--ca-file", str(postfix.tls.ca_file), "--strict"
    )
    assert code == 0, report["checks"]
    assert report["greeting"]["code"] == 220 and "Postfix" in report["greeting"]["text"]
    before, after = report["ehlo"], report["ehlo_after_tls"]
    assert before["hostname"] == "localhost.test"
    assert before["size"] == after["size"] == postfix.message_size_limit
    assert before["pipelining"] and before["starttls"] and not after["starttls"]
    assert before["auth"] is None and after["auth"] is None
    assert "CHUNKING" in after["extensions"]
    tls = report["tls"]
    assert tls["mode"] == "starttls" and tls["verified"] and tls["hostname_match"]
    assert "IP:127.0.0.1" in tls["chain"][0]["sans"]
    assert tls["chain"][-1]["subject"].startswith("O=smtpx integration tests")
    assert results(report) == {
        "starttls_offered": "pass",
        "auth_not_in_plaintext": "pass",
        "tls_certificate_trusted": "pass",
        "tls_hostname_match": "pass",
        "tls_certificate_current": "pass",
        "pipelining_honoured": "pass",
        "bare_lf_rejected": "skip",
    }


def test_postfix_implicit_tls_untrusted(postfix: PostfixServer) -> None:
    code, report = probe_json(f"smtps://{postfix.host}:{postfix.smtps_port}")
    assert code == 0
    tls = report["tls"]
    assert tls["mode"] == "implicit" and not tls["verified"] and not tls["chain_trusted"]
    assert tls["hostname_match"]
    assert report["greeting"]["code"] == 220
    assert results(report)["tls_certificate_trusted"] == "fail"
    assert results(report)["pipelining_honoured"] == "pass"


def test_postfix_accepts_a_bare_lf(postfix: PostfixServer) -> None:
    # Postfix 3.7 accepts a bare LF by default (smtpd_forbid_bare_newline = no), and
    # exempts $mynetworks, which this client is in.
    rcpt = "alice@example.test"
    code, report = probe_json(
        f"{postfix.host}:{postfix.port}",
        "--ca-file",
        str(postfix.tls.ca_file),
        "--send-test",
        "--rcpt",
        rcpt,
        "--from",
        "probe@example.test",
    )
    assert code == 0
    check = report["checks"]["bare_lf_rejected"]
    assert check["result"] == "fail" and check["detail"].startswith("accepted (250")
    token = check["detail"].rsplit(" ", 1)[1]
    mailbox = postfix.mailbox(rcpt)
    deadline = time.monotonic() + 30
    while not mailbox.find(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    delivered = mailbox.find(token)
    assert len(delivered) == 1
    assert b"The next line ends with a bare LF:\n" in delivered[0]


def test_submission_ports(submission: SubmissionServer) -> None:
    host, ca = submission.host, str(submission.tls.ca_file)
    code, report = probe_json(f"{host}:{submission.port}", "--ca-file", ca, "--strict")
    assert code == 0, report["checks"]
    assert report["ehlo"]["auth"] is None
    assert set(report["ehlo_after_tls"]["auth"]) >= {"PLAIN", "LOGIN"}

    code, report = probe_json(f"{host}:{submission.optional_tls_port}", "--ca-file", ca)
    assert code == 0
    assert report["checks"]["auth_not_in_plaintext"]["result"] == "fail"
    assert report["checks"]["starttls_offered"]["result"] == "pass"
    assert "PLAIN" in report["ehlo"]["auth"]

    code, report = probe_json(f"{host}:{submission.plaintext_auth_port}", "--strict")
    assert code == 1
    assert results(report)["auth_not_in_plaintext"] == "fail"
    assert results(report)["starttls_offered"] == "fail"
    assert report["tls"] is None

    code, report = probe_json(f"smtps://{host}:{submission.smtps_port}", "--ca-file", ca)
    assert code == 0 and report["tls"]["verified"]
    assert "PLAIN" in report["ehlo"]["auth"]


def test_subprocess_against_postfix(postfix: PostfixServer) -> None:
    command = [sys.executable, "-bb", "-W", "error", "-c", RUNNER]
    command += [f"smtp://{postfix.host}:{postfix.port}", "--ca-file", str(postfix.tls.ca_file)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "greeting        220 localhost.test ESMTP Postfix" in result.stdout
    assert "verified        yes" in result.stdout
    assert "  pass  pipelining_honoured" in result.stdout


def test_dovecot_lmtp_over_a_unix_socket(dovecot: DovecotLMTPServer) -> None:
    code, report = probe_json(f"lmtp+unix://{dovecot.socket_path}")
    assert code == 0, (report["error"], report["tls"])
    assert report["target"] == {
        "host": str(dovecot.socket_path),
        "port": None,
        "tls": "auto",
        "lmtp": True,
    }
    assert report["greeting"]["code"] == 220 and "Dovecot" in report["greeting"]["text"]
    assert report["ehlo"]["esmtp"] and report["ehlo"]["starttls"]
    tls = report["tls"]
    assert tls["mode"] == "starttls" and not tls["verified"]  # no --ca-file
    assert tls["hostname"] is None and tls["hostname_match"] is None
    checks = results(report)
    assert checks["tls_hostname_match"] == "skip"
    assert checks["tls_certificate_trusted"] == "fail"
    assert checks["pipelining_honoured"] == "pass"

    code, report = probe_json(
        f"lmtp+unix://{dovecot.socket_path}", "--ca-file", str(dovecot.tls.ca_file)
    )
    assert code == 0 and report["tls"]["verified"] and report["tls"]["chain_trusted"]
