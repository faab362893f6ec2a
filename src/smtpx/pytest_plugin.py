"""The pytest plugin: fixtures with an embedded SMTP/LMTP server, ``smtp_server`` and friends.

Installed with smtpx, registered through the ``pytest11`` entry point (``-p no:smtpx``
turns it off). Each fixture gives a started ``smtpx.testing.SinkServer`` on 127.0.0.1:

=============================  ========================================================
fixture                        server
=============================  ========================================================
``smtp_server``                plain SMTP (``smtp://``; connect with ``policy="compat"``)
``smtp_server_starttls``       SMTP with STARTTLS (``smtp+starttls://``)
``smtp_server_tls``            SMTP over implicit TLS (``smtps://``)
``smtp_server_auth``           STARTTLS and AUTH PLAIN/LOGIN for ``AUTH_USERNAME`` with
                               ``AUTH_PASSWORD`` (both in its ``url``)
``lmtp_server``                LMTP (``lmtp://``)
``smtp_server_factory``        a function: ``smtp_server_factory(**SinkServer options)``
=============================  ========================================================

Each exists per test (above) and per session (``smtp_server_session``,
``smtp_server_starttls_session``, ``smtp_server_tls_session``, ``smtp_server_auth_session``,
``lmtp_server_session``): one server for the whole run, whose received messages and
scripted faults are cleared before each test.

Example (a test file; nothing to import):

.. code-block:: python

    import smtpx
    from smtpx.testing import Fault

    def test_welcome_mail(smtp_server_auth):
        server = smtp_server_auth
        with smtpx.connect(server.url, context=server.client_context()) as client:
            client.deliver(b"Subject: hi\\r\\n\\r\\nhi\\r\\n", "app@example.org", ["bob@x.org"])
        [message] = server.wait_for_messages(1)
        assert message.parse()["Subject"] == "hi"

    def test_second_recipient_deferred(smtp_server):
        smtp_server.fault(Fault(at="RCPT", nth=2, reply="452 4.5.3 Too many recipients"))
        ...

The module imports only pytest: the server (aiosmtpd, trustme: the ``testing`` extra) is
imported when a fixture is first used, so an installation without the extra leaves pytest
working and the fixture says what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from smtpx.testing import SinkServer

__all__ = [
    "AUTH_PASSWORD",
    "AUTH_USERNAME",
    "ServerFactory",
    "lmtp_server",
    "lmtp_server_session",
    "smtp_server",
    "smtp_server_auth",
    "smtp_server_auth_session",
    "smtp_server_factory",
    "smtp_server_session",
    "smtp_server_starttls",
    "smtp_server_starttls_session",
    "smtp_server_tls",
    "smtp_server_tls_session",
]

#: The user ``smtp_server_auth`` accepts (an address, as providers use: "@" is
#: percent-encoded in the server's ``url``).
AUTH_USERNAME = "user@example.org"
#: Its password (a test server's, known to every test: not a secret).
AUTH_PASSWORD = "s3cret"  # noqa: S105

_KINDS: dict[str, dict[str, Any]] = {
    "plain": {},
    "starttls": {"starttls": True},
    "tls": {"implicit_tls": True},
    "auth": {"starttls": True, "auth": {AUTH_USERNAME: AUTH_PASSWORD}},
    "lmtp": {"lmtp": True},
}

# The session servers of a run, reset before each test (pytest_runtest_setup below).
_SESSION_SERVERS = pytest.StashKey[list["SinkServer"]]()


class ServerFactory(Protocol):
    """``smtp_server_factory``: start a ``SinkServer`` with these options."""

    def __call__(self, **options: Any) -> SinkServer: ...


def _start(options: dict[str, Any]) -> SinkServer:
    # Imported here, not at the top: see the module's docstring.
    try:
        from smtpx.testing import SinkServer
    except ImportError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        # Outside the except block, so the report is the message alone: it names the
        # extra to install, and a traceback through smtpx.testing would add nothing.
        pytest.fail(missing, pytrace=False)

    server = SinkServer(**options)
    server.start()
    return server


def _serve(kind: str) -> Iterator[SinkServer]:
    server = _start(_KINDS[kind])
    try:
        yield server
    finally:
        server.stop()


def _serve_session(request: pytest.FixtureRequest, kind: str) -> Iterator[SinkServer]:
    servers = request.config.stash.setdefault(_SESSION_SERVERS, [])
    server = _start(_KINDS[kind])
    servers.append(server)
    try:
        yield server
    finally:
        servers.remove(server)
        server.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the test's fixtures are set up, so a session server is clean when the test
    # (or a function-scoped fixture of its own) first sees it.
    for server in item.config.stash.get(_SESSION_SERVERS, []):
        server.reset()


# -- one server per test ---------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SinkServer]:
    """A plain SMTP sink server (``smtp://``) for this test."""
    yield from _serve("plain")


@pytest.fixture
def smtp_server_starttls() -> Iterator[SinkServer]:
    """An SMTP sink server offering STARTTLS (``smtp+starttls://``) for this test."""
    yield from _serve("starttls")


@pytest.fixture
def smtp_server_tls() -> Iterator[SinkServer]:
    """An SMTP sink server over implicit TLS (``smtps://``) for this test."""
    yield from _serve("tls")


@pytest.fixture
def smtp_server_auth() -> Iterator[SinkServer]:
    """A sink server with STARTTLS and AUTH for ``AUTH_USERNAME``/``AUTH_PASSWORD``."""
    yield from _serve("auth")


@pytest.fixture
def lmtp_server() -> Iterator[SinkServer]:
    """An LMTP sink server (``lmtp://``) for this test."""
    yield from _serve("lmtp")


@pytest.fixture
def smtp_server_factory() -> Iterator[ServerFactory]:
    """Start sink servers with any ``SinkServer`` options; all stop after the test.

    Example: ``smtp_server_factory(lmtp=True, faults=[Fault(at="CONTENT", drop=True)])``.
    """
    with ExitStack() as servers:

        def make(**options: Any) -> SinkServer:
            server = _start(options)
            servers.callback(server.stop)
            return server

        yield make


# -- one server per session, cleaned before each test -------------------------------


@pytest.fixture(scope="session")
def smtp_server_session(request: pytest.FixtureRequest) -> Iterator[SinkServer]:
    """A plain SMTP sink server for the whole run, reset before each test."""
    yield from _serve_session(request, "plain")


@pytest.fixture(scope="session")
def smtp_server_starttls_session(request: pytest.FixtureRequest) -> Iterator[SinkServer]:
    """A STARTTLS sink server for the whole run, reset before each test."""
    yield from _serve_session(request, "starttls")


@pytest.fixture(scope="session")
def smtp_server_tls_session(request: pytest.FixtureRequest) -> Iterator[SinkServer]:
    """An implicit-TLS sink server for the whole run, reset before each test."""
    yield from _serve_session(request, "tls")


@pytest.fixture(scope="session")
def smtp_server_auth_session(request: pytest.FixtureRequest) -> Iterator[SinkServer]:
    """A STARTTLS and AUTH sink server for the whole run, reset before each test."""
    yield from _serve_session(request, "auth")


@pytest.fixture(scope="session")
def lmtp_server_session(request: pytest.FixtureRequest) -> Iterator[SinkServer]:
    """An LMTP sink server for the whole run, reset before each test."""
    yield from _serve_session(request, "lmtp")
