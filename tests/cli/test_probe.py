"""``smtpx probe``: against the embedded sink server and scripted servers, in-process and
as a subprocess."""

from __future__ import annotations

import argparse
import datetime
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx.cli import _probe
from smtpx.testing import SinkServer

TIMEOUT = 60
# Runs the probe's register()/run() as the smtpx command will, in a fresh interpreter.
RUNNER = (
    "import argparse, sys\n"
    "from smtpx.cli import _probe\n"
    "parser = argparse.ArgumentParser(prog='smtpx')\n"
    "_probe.register(parser.add_subparsers(dest='command'))\n"
    "sys.exit(_probe.run(parser.parse_args(['probe', *sys.argv[1:]])))\n"
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="smtpx")
    _probe.register(top.add_subparsers(dest="command"))
    return top


def probe(*argv: str) -> tuple[int, str]:
    """Run the probe in-process; return its exit status and stdout."""
    out = io.StringIO()
    code = _probe.run(parser().parse_args(["probe", *argv]), out)
    return code, out.getvalue()


def probe_json(*argv: str) -> tuple[int, dict[str, object]]:
    code, out = probe(*argv, "--json", "--timeout", "5")
    return code, json.loads(out)


def run_subprocess(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-bb", "-W", "error", "-c", RUNNER, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture
def ca_file(tmp_path: Path) -> Callable[[SinkServer], str]:
    def write(server: SinkServer) -> str:
        path = tmp_path / "ca.pem"
        path.write_bytes(server.ca_pem)
        return str(path)

    return write


# ---------------------------------------------------------------- the embedded server


def test_starttls_with_trusted_ca(ca_file: Callable[[SinkServer], str]) -> None:
    with SinkServer(starttls=True, auth={"alice": "pw"}) as server:
        code, report = probe_json(f"{server.host}:{server.port}", "--ca-file", ca_file(server))
    assert code == 0
    assert report["probe_version"] == 1
    assert report["error"] is None
    assert report["target"] == {
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "auto",
        "lmtp": False,
    }
    assert report["greeting"]["code"] == 220
    before, after, tls = report["ehlo"], report["ehlo_after_tls"], report["tls"]
    assert before["starttls"] and "STARTTLS" in before["extensions"]
    assert before["size"] == 32 * 1024 * 1024
    # aiosmtpd hides AUTH until TLS when it requires TLS for it.
    assert before["auth"] is None
    assert after["auth"] == ["LOGIN", "PLAIN"] and not after["starttls"]
    assert tls["mode"] == "starttls" and tls["verified"] and tls["chain_trusted"]
    assert tls["hostname"] == "127.0.0.1" and tls["hostname_match"]
    assert tls["version"].startswith("TLS")
    leaf, root = tls["chain"]  # the verified chain ends at the trusted root
    assert "IP:127.0.0.1" in leaf["sans"] and "DNS:localhost" in leaf["sans"]
    assert leaf["issuer"] == root["subject"] == root["issuer"]
    assert leaf["expires_in_days"] > 300_000  # trustme certificates run to the year 3000
    checks = report["checks"]
    assert list(checks) == [
        "starttls_offered",
        "auth_not_in_plaintext",
        "tls_certificate_trusted",
        "tls_hostname_match",
        "tls_certificate_current",
        "pipelining_honoured",
        "bare_lf_rejected",
    ]
    assert {name: check["result"] for name, check in checks.items()} == {
        "starttls_offered": "pass",
        "auth_not_in_plaintext": "pass",
        "tls_certificate_trusted": "pass",
        "tls_hostname_match": "pass",
        "tls_certificate_current": "pass",
        "pipelining_honoured": "skip",  # aiosmtpd does not advertise PIPELINING
        "bare_lf_rejected": "skip",
    }
    assert server.messages == []  # the probe sent no mail


def test_untrusted_certificate_is_reported_and_strict_fails() -> None:
    with SinkServer(starttls=True) as server:
        code, report = probe_json(f"{server.host}:{server.port}")
        strict, _ = probe_json(f"{server.host}:{server.port}", "--strict")
    assert code == 0 and strict == 1
    tls = report["tls"]
    assert not tls["verified"] and not tls["chain_trusted"]
    assert "certificate" in tls["verify_error"] or "issuer" in tls["verify_error"]
    # OpenSSL stopped at the untrusted chain; the probe checked the name itself.
    assert tls["hostname_match"]
    assert len(tls["chain"]) == 1  # what the server sent: the leaf only
    assert report["ehlo_after_tls"] is not None  # the probe went on over TLS
    assert report["checks"]["tls_certificate_trusted"]["result"] == "fail"
    assert report["checks"]["tls_hostname_match"]["result"] == "pass"


def test_hostname_mismatch(ca_file: Callable[[SinkServer], str]) -> None:
    with SinkServer(starttls=True) as server:
        code, report = probe_json(
            f"{server.host}:{server.port}",
            "--ca-file",
            ca_file(server),
            "--tls-name",
            "mail.example.org",
        )
    assert code == 0
    tls = report["tls"]
    assert tls["chain_trusted"] and not tls["hostname_match"]
    assert tls["hostname"] == "mail.example.org"
    assert report["checks"]["tls_hostname_match"]["result"] == "fail"
    assert report["checks"]["tls_certificate_trusted"]["result"] == "pass"


def test_implicit_tls_url(ca_file: Callable[[SinkServer], str]) -> None:
    with SinkServer(implicit_tls=True, auth={"alice": "pw"}) as server:
        code, report = probe_json(
            f"smtps://{server.host}:{server.port}", "--ca-file", ca_file(server), "--strict"
        )
    assert code == 0, report["checks"]
    assert report["target"]["tls"] == "implicit"
    assert report["tls"]["mode"] == "implicit" and report["tls"]["verified"]
    assert report["ehlo"]["auth"] == ["LOGIN", "PLAIN"]
    assert report["ehlo_after_tls"] is None
    assert report["checks"]["starttls_offered"]["result"] == "skip"
    assert report["checks"]["auth_not_in_plaintext"]["result"] == "pass"


def test_auth_offered_in_plaintext_fails_the_check() -> None:
    with SinkServer(auth={"alice": "pw"}) as server:
        code, report = probe_json(f"{server.host}:{server.port}")
        strict, _ = probe_json(f"{server.host}:{server.port}", "--strict")
    assert code == 0 and strict == 1
    checks = report["checks"]
    assert checks["auth_not_in_plaintext"] == {
        "result": "fail",
        "detail": "AUTH LOGIN PLAIN is offered before TLS",
    }
    assert checks["starttls_offered"]["result"] == "fail"
    assert report["tls"] is None
    assert checks["tls_certificate_trusted"]["result"] == "skip"


def test_tls_none_stays_in_plaintext() -> None:
    with SinkServer(starttls=True) as server:
        code, report = probe_json(f"{server.host}:{server.port}", "--tls", "none")
    assert code == 0
    assert report["tls"] is None and report["ehlo_after_tls"] is None
    assert report["checks"]["starttls_offered"]["result"] == "pass"


def test_tls_starttls_required_but_not_offered() -> None:
    with SinkServer() as server:
        code, report = probe_json(f"smtp+starttls://{server.host}:{server.port}")
    assert code == 0
    assert report["tls"] == {"mode": "starttls", "error": "STARTTLS is not offered"}
    assert report["checks"]["tls_certificate_trusted"]["result"] == "skip"


def test_lmtp() -> None:
    with SinkServer(lmtp=True) as server:
        code, report = probe_json(f"lmtp://{server.host}:{server.port}")
    assert code == 0 and report["target"]["lmtp"]
    assert report["ehlo"]["code"] == 250 and report["ehlo"]["esmtp"]


def test_send_test_reports_an_accepted_bare_lf() -> None:
    with SinkServer() as server:
        code, report = probe_json(
            f"{server.host}:{server.port}",
            "--send-test",
            "--rcpt",
            "bob@example.org",
            "--from",
            "probe@example.org",
        )
        received = server.wait_for_messages(1)[0]
    assert code == 0
    check = report["checks"]["bare_lf_rejected"]
    assert check["result"] == "fail" and check["detail"].startswith("accepted (250")
    assert received.rcpt_tos == ("bob@example.org",) and received.mail_from == "probe@example.org"
    # The bare LF reached the server as a bare LF.
    assert b"a bare LF:\nthis line follows it.\r\n" in received.content
    token = check["detail"].rsplit(" ", 1)[1]
    assert token.encode() in received.content


def test_human_output() -> None:
    with SinkServer(starttls=True) as server:
        code, out = probe(f"{server.host}:{server.port}", "--timeout", "5")
    assert code == 0
    assert out.startswith(f"server          127.0.0.1:{server.port} (SMTP, TLS: auto)\n")
    assert "greeting        220 localhost" in out
    assert "verified        no (unable to get local issuer certificate)" in out
    assert "host name       127.0.0.1: matches" in out
    assert "  pass  starttls_offered" in out
    assert "  fail  tls_certificate_trusted" in out


# ---------------------------------------------------------------- scripted servers


class ScriptedServer:
    """A one-thread SMTP server that answers from a function: the behaviours the
    embedded server cannot show (a broken PIPELINING, a bare LF refused)."""

    def __init__(
        self,
        greeting: bytes = b"220 scripted ESMTP\r\n",
        extensions: tuple[str, ...] = ("PIPELINING",),
        *,
        drop_pipelined: bool = False,
        reorder: bool = False,
        refuse_bare_lf: bool = False,
        extra_reply: bool = False,
    ) -> None:
        self.greeting = greeting
        self.extensions = extensions
        self.drop_pipelined = drop_pipelined
        self.reorder = reorder
        self.refuse_bare_lf = refuse_bare_lf
        self.extra_reply = extra_reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self.thread.join(10)

    def _reply(self, line: bytes) -> bytes:
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            lines = ["scripted", *self.extensions]
            return b"".join(
                f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n".encode()
                for i, text in enumerate(lines)
            )
        if verb == b"MAIL":
            return b"250 2.1.0 Ok\r\n"
        if verb == b"RCPT":
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            return b"354 go ahead\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n"
        return b"250 2.0.0 Ok\r\n"

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            conn.sendall(self.greeting)
            buffer = b""
            in_data = False
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                if in_data:
                    if b"\r\n.\r\n" not in buffer:
                        continue
                    content, _, buffer = buffer.partition(b"\r\n.\r\n")
                    bare = b"\n" in content.replace(b"\r\n", b"")
                    refused = self.refuse_bare_lf and bare
                    conn.sendall(b"550 5.6.0 bare LF\r\n" if refused else b"250 2.0.0 queued\r\n")
                    in_data = False
                    continue
                lines = buffer.split(b"\r\n")
                buffer = lines.pop()
                if self.drop_pipelined and len(lines) > 1:
                    lines = lines[:1]  # the classic bug: what came with it is lost
                replies = [self._reply(line) for line in lines]
                if self.reorder and len(replies) > 1:
                    replies.reverse()
                if self.extra_reply and len(replies) > 1:
                    replies.append(b"250 2.0.0 Ok\r\n")  # one reply too many
                conn.sendall(b"".join(replies))
                if any(line.upper() == b"DATA" for line in lines):
                    in_data = True
                if any(line.upper() == b"QUIT" for line in lines):
                    return


def test_pipelining_honoured() -> None:
    with ScriptedServer() as server:
        code, report = probe_json(f"127.0.0.1:{server.port}", "--tls", "none")
    assert code == 0
    check = report["checks"]["pipelining_honoured"]
    assert check["result"] == "pass", check
    assert "250 250 250 250" in check["detail"]


def test_pipelining_with_lost_commands_fails() -> None:
    with ScriptedServer(drop_pipelined=True) as server:
        code, report = probe_json(f"127.0.0.1:{server.port}", "--timeout", "1", "--strict")
    assert code == 1
    check = report["checks"]["pipelining_honoured"]
    assert check["result"] == "fail"
    assert check["detail"].startswith("1 of 4 replies to a pipelined group")
    assert report["error"] is None


def test_pipelining_out_of_order_fails() -> None:
    with ScriptedServer(reorder=True) as server:
        code, report = probe_json(f"127.0.0.1:{server.port}", "--send-test", "--rcpt", "b@x.org")
    assert code == 0
    check = report["checks"]["pipelining_honoured"]
    assert check["result"] == "fail" and "out of order" in check["detail"]


def test_pipelining_with_extra_replies_fails() -> None:
    with ScriptedServer(extra_reply=True) as server:
        code, report = probe_json(f"127.0.0.1:{server.port}")
    assert code == 0
    check = report["checks"]["pipelining_honoured"]
    assert check == {"result": "fail", "detail": "more replies than commands after a group of 4"}


def test_send_test_reports_a_refused_bare_lf() -> None:
    with ScriptedServer(refuse_bare_lf=True) as server:
        code, report = probe_json(f"127.0.0.1:{server.port}", "--send-test", "--rcpt", "b@x.org")
    assert code == 0, report["checks"]
    assert report["checks"]["bare_lf_rejected"] == {
        "result": "pass",
        "detail": "rejected: 550 5.6.0 bare LF",
    }


def test_refused_session_exits_3() -> None:
    with ScriptedServer(greeting=b"554 5.7.1 no service for you\r\n") as server:
        code, report = probe_json(f"127.0.0.1:{server.port}")
    assert code == 3
    assert report["greeting"] == {"code": 554, "text": "5.7.1 no service for you"}
    assert report["error"] == "the server refused the session: 554 5.7.1 no service for you"


def test_control_characters_from_the_server_are_escaped() -> None:
    with ScriptedServer(greeting=b"220 evil \x1b[2J\x07 ESMTP\r\n") as server:
        code, out = probe(f"127.0.0.1:{server.port}", "--timeout", "5")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "220 evil \\x1b[2J\\x07 ESMTP" in out


def test_connection_refused_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    code, out = probe(f"127.0.0.1:{port}", "--timeout", "5")
    assert code == 3
    assert out.startswith(f"server          127.0.0.1:{port}") and "greeting" not in out
    err = capsys.readouterr().err
    assert err.startswith(f"smtpx probe: error: cannot connect to 127.0.0.1:{port}: ")
    assert err.count("\n") == 1
    code, report = probe_json(f"127.0.0.1:{port}")
    assert code == 3 and report["greeting"] is None and "cannot connect" in report["error"]


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["host:99999"], "bad port"),
        (["ftp://host"], "unknown server URL scheme"),
        (["host", "--timeout", "0"], "above 0"),
        (["host", "--tls", "sometimes"], "invalid choice"),
        (["host", "--ehlo", "a\rb"], "CR, LF and NUL"),
        ([], "required"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["probe", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: smtpx probe")
    assert err.splitlines()[-1].startswith("smtpx probe: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["host", "--send-test"], "--send-test needs --rcpt"),
        (["host", "--rcpt", "a@b.org"], "--rcpt is only used with --send-test"),
        (["host", "--ca-file", "/nonexistent/ca.pem"], "cannot load --ca-file"),
        (["lmtp://host", "--tls", "implicit"], "LMTP has no implicit TLS"),
    ],
)
def test_inconsistent_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = probe(*argv)
    assert code == 2 and out == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_subprocess_json_and_bad_arguments(tmp_path: Path) -> None:
    with SinkServer(starttls=True) as server:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(server.ca_pem)
        result = run_subprocess(f"{server.host}:{server.port}", "--ca-file", str(ca), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["tls"]["verified"] is True
    bad = run_subprocess("host:0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[-1] == "smtpx probe: error: argument SERVER: bad port '0'"
    missing = run_subprocess("127.0.0.1:1", "--timeout", "5")
    assert missing.returncode == 3 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_parse_target() -> None:
    assert vars(_probe.parse_target("mx.example.org")) == {
        "host": "mx.example.org",
        "port": 25,
        "tls": "auto",
        "lmtp": False,
        "unix": False,
    }
    assert _probe.parse_target("[::1]:587").host == "::1"
    assert _probe.parse_target("[::1]").port == 25
    assert _probe.parse_target("2001:db8::1").host == "2001:db8::1"
    assert _probe.parse_target("smtps://mx.example.org").tls == "implicit"
    assert _probe.parse_target("lmtp+unix:///run/lmtp").unix
    for bad in ("", "a:b:c", "[::1", "[::1]x", ":25", "host:"):
        with pytest.raises(ValueError):
            _probe.parse_target(bad)


# ---------------------------------------------------------------- certificates


@pytest.fixture(scope="module")
def certificates() -> Iterator[list[bytes]]:
    ca = trustme.CA(organization_name="Probe Tests")
    leaf = ca.issue_cert("mail.example.org", "*.example.net", "192.0.2.7", "2001:db8::1")
    yield [blob.bytes() for blob in (leaf.cert_chain_pems[0], ca.cert_pem)]


def test_parse_certificate_agrees_with_cryptography(certificates: list[bytes]) -> None:
    for pem in certificates:
        reference = x509.load_pem_x509_certificate(pem)
        der = reference.public_bytes(Encoding.DER)
        facts = _probe.parse_certificate(der)
        assert facts.not_after == reference.not_valid_after_utc
        assert facts.not_before == reference.not_valid_before_utc
        assert facts.subject == ", ".join(
            f"{attribute.rfc4514_attribute_name}={attribute.value}"
            for attribute in reference.subject
        )
        assert facts.issuer.startswith("O=Probe Tests")
    leaf = _probe.parse_certificate(
        x509.load_pem_x509_certificate(certificates[0]).public_bytes(Encoding.DER)
    )
    assert leaf.sans == [
        "DNS:mail.example.org",
        "DNS:*.example.net",
        "IP:192.0.2.7",
        "IP:2001:db8::1",
    ]
    assert _probe.hostname_matches("MAIL.example.org.", leaf.sans)
    assert _probe.hostname_matches("mx.example.net", leaf.sans)
    assert _probe.hostname_matches("2001:db8:0::1", leaf.sans)
    assert not _probe.hostname_matches("example.net", leaf.sans)
    assert not _probe.hostname_matches("a.mx.example.net", leaf.sans)
    assert not _probe.hostname_matches("192.0.2.8", leaf.sans)
    # A wildcard covers one whole label, and never a top-level domain alone.
    assert not _probe.hostname_matches(".example.net", leaf.sans)
    assert not _probe.hostname_matches("a.com", ["DNS:*.com"])


def test_truncated_certificates_raise_value_error(certificates: list[bytes]) -> None:
    der = x509.load_pem_x509_certificate(certificates[0]).public_bytes(Encoding.DER)
    for end in range(len(der)):
        with pytest.raises(ValueError):
            _probe.parse_certificate(der[:end])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_value_error(data: bytes) -> None:
    try:
        _probe.parse_certificate(b"\x30" + bytes([len(data)]) + data if len(data) < 128 else data)
    except ValueError:
        pass


def test_expiry_days() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    facts = _probe.CertificateFacts(
        "CN=x", "CN=y", [], now - datetime.timedelta(days=10), now + datetime.timedelta(days=3)
    )
    assert facts.as_dict(now)["expires_in_days"] == 3
    assert facts.as_dict(now + datetime.timedelta(days=5))["expires_in_days"] == -2
    assert facts.as_dict(now - datetime.timedelta(days=11))["not_yet_valid"] is True
