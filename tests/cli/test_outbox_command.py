"""``smtpx outbox``: the outbox's commands through the ``smtpx`` dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smtpx.cli import main
from smtpx.outbox import Outbox


def test_status_through_the_dispatcher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(str(path))
    outbox.put(b"Subject: hi\r\n\r\nhello\r\n", "a@example.org", ["b@example.org"])
    outbox.close()
    assert main(["outbox", str(path), "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["messages"] == {"queued": 1}


def test_missing_action_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtpx", "outbox", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Try 'smtpx outbox --help'." in done.stderr
