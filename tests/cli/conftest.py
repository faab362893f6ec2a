"""Helpers for the command-line tests: an embedded server with STARTTLS and AUTH, and
runs of ``smtpx`` in-process (``main(argv)``) and as a subprocess (``python -m smtpx``)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtpx.cli import main
from smtpx.testing import SinkServer

USER = "alice"
PASSWORD = "cli-test: Tr0ub4dor&3 horse"
TIMEOUT = 60  # seconds for a whole subprocess run; every socket wait inside is shorter


@dataclass
class Ran:
    code: int
    out: str
    err: str


def secret_forms(user: str, password: str) -> list[str]:
    """The password as it could leak: in clear, and base64 in every SASL framing."""
    raw = password.encode("utf-8")
    blobs = [raw, b"\0" + user.encode() + b"\0" + raw]
    forms = [password] + [base64.b64encode(blob).decode("ascii") for blob in blobs]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = 4 if shift else 0
        forms.append(encoded[start : (shift + len(raw)) // 3 * 4])
    return forms


def run_main(
    argv: list[str],
    *,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> Ran:
    """``main(argv)`` in this process, with *stdin* and extra environment *env*."""
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def run_process(argv: list[str], *, stdin: bytes = b"", env: dict[str, str] | None = None) -> Ran:
    """``python -bb -W error -m smtpx ARGV`` with this checkout's source first on the path."""
    environ = dict(os.environ, **(env or {}))
    src = str(Path(__file__).resolve().parents[2] / "src")
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [src, environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-bb", "-W", "error", "-m", "smtpx", *argv],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        env=environ,
        check=False,
    )
    return Ran(done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8"))


@pytest.fixture(scope="module")
def sink() -> Iterator[SinkServer]:
    """STARTTLS and AUTH (PLAIN, LOGIN only after TLS), with a throwaway CA."""
    with SinkServer(starttls=True, auth={USER: PASSWORD}) as server:
        yield server


@pytest.fixture
def server(sink: SinkServer) -> SinkServer:
    sink.clear_messages()
    return sink


@pytest.fixture(scope="module")
def cafile(sink: SinkServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(sink.ca_pem)
    return str(path)


@pytest.fixture
def base(server: SinkServer, cafile: str) -> list[str]:
    """``send`` to the sink with STARTTLS required, its CA, and the password from $PW."""
    return [
        "send",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--cafile",
        cafile,
        "--user",
        USER,
        "--password-env",
        "SMTPX_TEST_PW",
        "--timeout",
        "10",
    ]


PW_ENV = {"SMTPX_TEST_PW": PASSWORD}
