"""smtpx.Pool against scripted servers (the failure table, tests/pool/scenarios.py) and the
embedded sink server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import smtpx
from smtpx.testing import SinkServer

from . import scenarios
from .scenarios import MESSAGE, SENDER, SyncFacade


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.__name__)
def test_failure_table(scenario: Callable[[scenarios.Make], None]) -> None:
    scenario(SyncFacade)


def test_many_threads_share_a_pool() -> None:
    """Eight threads sending through one pool: every message arrives once."""
    with SinkServer() as server:
        with smtpx.Pool(f"smtp://{server.host}:{server.port}", policy="compat") as pool:
            errors: list[BaseException] = []

            def worker(n: int) -> None:
                try:
                    for i in range(10):
                        assert pool.send(MESSAGE, SENDER, [f"t{n}-{i}@x.org"]).ok
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            assert not errors
        got = sorted(r for m in server.wait_for_messages(80) for r in m.rcpt_tos)
    assert got == sorted(f"t{n}-{i}@x.org" for n in range(8) for i in range(10))


def test_email_message_envelope_and_message_id() -> None:
    """An EmailMessage: the envelope from its headers, the result named by Message-ID."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "me@x.org"
    message["To"] = "a@x.org, b@x.org"
    message["Message-ID"] = "<1@x.org>"
    message.set_content("hi")
    with SinkServer() as server:
        with smtpx.Pool(f"smtp://{server.host}:{server.port}", policy="compat") as pool:
            result = pool.send(message)
        (got,) = server.wait_for_messages(1)
    assert result.message_id == "<1@x.org>" and result.delivered == ["a@x.org", "b@x.org"]
    assert got.mail_from == "me@x.org"


def test_bad_arguments_raise_at_once() -> None:
    with pytest.raises(ValueError, match="unknown server URL scheme"):
        smtpx.Pool("http://example.org")
    with pytest.raises(TypeError, match="unexpected connect option"):
        smtpx.Pool("smtp://127.0.0.1:25", pasword="x")
    with pytest.raises(ValueError, match="max_connections"):
        smtpx.Pool("smtp://127.0.0.1:25", max_connections=0)
    pool = smtpx.Pool("smtp://127.0.0.1:25", policy="compat")
    with pytest.raises(ValueError, match="no recipients"):
        pool.submit(MESSAGE, SENDER, [])
    with pytest.raises(ValueError, match="recipients are needed"):
        pool.submit(MESSAGE)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(MESSAGE, SENDER, ["a@x.org"])


def test_strict_policy_refuses_plaintext_server() -> None:
    """The connect options apply: under the strict policy a server without STARTTLS is
    refused, and the message fails (no retry can help)."""
    with SinkServer() as server, smtpx.Pool(f"smtp://{server.host}:{server.port}") as pool:
        result = pool.send(MESSAGE, SENDER, ["a@x.org"])
    assert result.failed == ["a@x.org"]
    assert isinstance(result.attempts[0], smtpx.SMTPPolicyError)
    assert server.messages == []
