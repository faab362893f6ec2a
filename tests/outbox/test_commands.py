"""``smtpx outbox ...`` through its ``register``/``run`` pair, on a real outbox file."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from smtpx.outbox import Outbox
from smtpx.outbox._commands import register, run
from smtpx.testing import SinkServer


def call(*argv: str) -> str:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    assert run(parser.parse_args(list(argv)), out) == 0
    return out.getvalue()


def test_status_list_show_retry_cancel_purge_worker(tmp_path: Path) -> None:
    path = str(tmp_path / "o.db")
    with Outbox(path) as outbox:
        first, second = outbox.put_many([(b"Subject: x\r\n\r\nx\r\n", "a@x.org", ["b@x.org"])] * 2)
    assert json.loads(call("outbox", path, "status"))["messages"] == {"queued": 2}
    assert call("outbox", path, "cancel", str(second)) == "1 messages cancelled\n"
    assert [line.split("\t")[1] for line in call("outbox", path, "list").splitlines()] == [
        "cancelled",
        "queued",
    ]
    with SinkServer() as server:
        report = json.loads(
            call("outbox", path, "worker", "--url", f"smtp://127.0.0.1:{server.port}")
        )
        # The strict policy refuses a server without TLS: nothing sent, deferred.
        assert report["recipients"] == {"deferred": 1}
        assert server.messages == []
    shown = json.loads(call("outbox", path, "show", str(first)))
    assert shown["state"] == "deferred" and shown["recipients"][0]["state"] == "deferred"
    assert call("outbox", path, "retry") == "1 messages due now\n"
    assert call("outbox", path, "purge", "--days", "0", "--state", "cancelled") == (
        "1 messages purged\n"
    )
