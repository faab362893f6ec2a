"""Session fixtures: the real servers (Postfix, Dovecot LMTP, Haraka, Postfix submission
with Dovecot SASL) and an embedded SASL server, each started once per test session.

Each server starts on first use, runs from its own temp dir on loopback ports
and is stopped (and reaped) at the end of the session. Missing server software
skips the tests on a developer machine and FAILS them in CI (``CI`` set): a
green CI run must mean the real servers were exercised.

Set ``SMTPX_KEEP_SERVER_DIRS=1`` to keep the servers' work dirs (config, logs,
maildirs) after the session for debugging.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

import smtpx

from .servers import (
    BaseServer,
    DovecotLMTPServer,
    EmbeddedSaslServer,
    HarakaServer,
    PostfixServer,
    RedisServer,
    ServerUnavailable,
    SubmissionServer,
)

ServerT = TypeVar("ServerT", bound=BaseServer | EmbeddedSaslServer)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _serve(start: Callable[[], ServerT], what: str) -> Iterator[ServerT]:
    try:
        server = start()
    except ServerUnavailable as exc:
        unavailable = str(exc)
    else:
        unavailable = ""
    if unavailable:
        if _in_ci():
            pytest.fail(
                f"{what} is required in CI but cannot run here: {unavailable}", pytrace=False
            )
        pytest.skip(f"{what} unavailable: {unavailable}")
    # ServerStartError propagates: an installed server that does not start is a
    # failure everywhere, and its message carries the server's logs.
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postfix() -> Iterator[PostfixServer]:
    """A running Postfix: ``.host``, ``.port``, ``.smtps_port``, ``.client_context()``,
    ``.mailbox(address).wait_for(token)``; see ``servers/postfix.py``."""
    yield from _serve(PostfixServer.start, "Postfix")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotLMTPServer]:
    """A running Dovecot LMTP: ``.host``, ``.port``, ``.socket_path``,
    ``.client_context()``, ``.mailbox(address)``; see ``servers/dovecot.py``."""
    yield from _serve(DovecotLMTPServer.start, "Dovecot LMTP")


@pytest.fixture(scope="session")
def haraka() -> Iterator[HarakaServer]:
    """A running Haraka (PIPELINING, but 503 to commands pipelined after end of DATA):
    ``.host``, ``.port``, ``.mailbox(address)``, ``.transcript(client_port)``; see
    ``servers/haraka.py``."""
    yield from _serve(HarakaServer.start, "Haraka")


@pytest.fixture(scope="session")
def submission() -> Iterator[SubmissionServer]:
    """Postfix submission with Dovecot SASL and an OAuth2 introspection endpoint.

    ``.host``; ports ``.port`` (STARTTLS required, AUTH only after it),
    ``.smtps_port``, ``.optional_tls_port`` (AUTH offered before STARTTLS too),
    ``.plaintext_auth_port`` (AUTH, no STARTTLS), ``.no_tls_port`` (neither);
    ``.users`` (user -> password, one non-ASCII password, one UTF-8 name),
    ``.mechanisms``, ``.oauth_user``, ``.oauth_token``, ``.introspection.calls``,
    ``.client_context()``, ``.mailbox(address)``; see ``servers/submission.py``.
    """
    yield from _serve(SubmissionServer.start, "Postfix with Dovecot SASL")


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """A running Redis (the Celery tests' broker): ``.host``, ``.port``, ``.url``; see
    ``servers/redis.py``."""
    yield from _serve(RedisServer.start, "Redis")


@pytest.fixture(scope="session")
def embedded_sasl() -> Iterator[EmbeddedSaslServer]:
    """aiosmtpd with SCRAM-SHA-1/256(-PLUS) and EXTERNAL: ``.host``, ``.port``
    (STARTTLS), ``.smtps_port``, ``.users``, ``.cert_user``, ``.mechanisms``,
    ``.channel_bindings``, ``.client_context(certificate=...)``,
    ``.attempts_snapshot()``; see ``servers/embedded_sasl.py``."""
    yield from _serve(EmbeddedSaslServer.start, "the embedded SASL server")


@pytest.fixture(params=["tcp", "unix"])
def lmtp(request: pytest.FixtureRequest, dovecot: DovecotLMTPServer) -> Iterator[smtpx.LMTP]:
    """An LMTP session with Dovecot over TCP, or over its unix socket (host as a path)."""
    if request.param == "tcp":
        client = smtpx.LMTP(dovecot.host, dovecot.port, timeout=10.0)
    else:
        client = smtpx.LMTP(dovecot.socket_path, timeout=10.0)
    with client:
        yield client
