"""The pytest plugin (smtpx.pytest_plugin), run in fresh pytest processes with pytester.

The plugin is found through the ``pytest11`` entry point, which exists once smtpx is
installed (``pip install -e .``, as scripts/test.sh does). ``test_the_entry_point_...``
fails without it; the other tests load the module by name when the entry point is
missing, so they check the fixtures either way (naming it while the entry point also
loads it would register the module twice, which pluggy refuses).

The runs are subprocesses, as a user's are: pytester's in-process runs unload the modules
each run imported, and cryptography (under trustme) cannot be imported twice.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import smtpx.pytest_plugin

REGISTERED = bool(entry_points(group="pytest11", name="smtpx"))
PLUGIN = () if REGISTERED else ("-p", "smtpx.pytest_plugin")
# Inner runs as strict as the outer one, and without writing a cache.
STRICT = ("-W", "error", "-p", "no:cacheprovider")
TIMEOUT = 120.0

FIXTURES = (
    "smtp_server",
    "smtp_server_starttls",
    "smtp_server_tls",
    "smtp_server_auth",
    "lmtp_server",
    "smtp_server_factory",
    "smtp_server_session",
    "smtp_server_starttls_session",
    "smtp_server_tls_session",
    "smtp_server_auth_session",
    "lmtp_server_session",
)


# A conftest for inner runs: how many server threads are left once pytest is done.
THREADS_AT_EXIT = """
import pathlib
import threading

def pytest_unconfigure(config):
    names = [t.name for t in threading.enumerate() if t.name.startswith("smtpx-sink-server")]
    pathlib.Path(str(config.rootpath), "threads.txt").write_text(str(len(names)))
"""


@pytest.fixture(autouse=True)
def _child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inner runs find entry-point plugins as a user's pytest does, and import what this
    # process imports (this sys.path: the same smtpx, the same metadata, so REGISTERED
    # holds there too).
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path for path in sys.path if path))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*STRICT, *args, timeout=TIMEOUT)


def test_the_entry_point_registers_the_plugin(pytester: pytest.Pytester) -> None:
    found = entry_points(group="pytest11", name="smtpx")
    assert found, "no pytest11 entry point named smtpx: install the package (pip install -e .)"
    [entry] = found
    assert entry.value == "smtpx.pytest_plugin"
    assert entry.load() is smtpx.pytest_plugin
    pytester.makepyfile(
        """
        def test_it(smtp_server):
            assert smtp_server.port > 0
        """
    )
    # No -p: the entry point alone brings the fixtures in.
    run(pytester).assert_outcomes(passed=1)
    # And "-p no:smtpx" (the entry point's name) turns it off.
    result = run(pytester, "-p", "no:smtpx")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'smtp_server' not found*"])


def test_fixtures_are_listed_with_their_docs(pytester: pytest.Pytester) -> None:
    result = run(pytester, *PLUGIN, "--fixtures")
    assert result.ret == 0
    text = result.stdout.str()
    for name in FIXTURES:
        assert f"{name} [" in text or f"{name} --" in text, name
    result.stdout.fnmatch_lines(["*A plain SMTP sink server*", "*reset before each test*"])


def test_each_fixture_in_a_fresh_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            r"""
            import smtplib

            import smtpx
            from smtpx.pytest_plugin import AUTH_PASSWORD, AUTH_USERNAME
            from smtpx.testing import Fault, SinkServer

            BODY = b"Subject: hi\r\n\r\nhello\r\n"
            SENDER = "app@example.org"

            def test_plain(smtp_server):
                assert isinstance(smtp_server, SinkServer)
                assert smtp_server.host == "127.0.0.1"
                assert smtp_server.url == f"smtp://127.0.0.1:{smtp_server.port}"
                with smtpx.connect(smtp_server.url, policy="compat", timeout=10) as client:
                    client.deliver(BODY, SENDER, ["bob@example.org"])
                [message] = smtp_server.wait_for_messages(1)
                assert message.rcpt_tos == ("bob@example.org",)
                assert message.content == BODY
                assert not message.tls

            def test_starttls(smtp_server_starttls):
                server = smtp_server_starttls
                assert server.url == f"smtp+starttls://127.0.0.1:{server.port}"
                with smtpx.connect(server.url, context=server.client_context(), timeout=10) as c:
                    c.deliver(BODY, SENDER, ["bob@example.org"])
                assert server.wait_for_messages(1)[0].tls

            def test_implicit_tls(smtp_server_tls):
                server = smtp_server_tls
                assert server.url == f"smtps://127.0.0.1:{server.port}"
                with smtpx.connect(server.url, context=server.client_context(), timeout=10) as c:
                    c.deliver(BODY, SENDER, ["bob@example.org"])
                assert server.wait_for_messages(1)[0].tls

            def test_auth(smtp_server_auth):
                server = smtp_server_auth
                assert server.url == (
                    f"smtp+starttls://user%40example.org:s3cret@127.0.0.1:{server.port}"
                )
                with smtpx.connect(server.url, context=server.client_context(), timeout=10) as c:
                    c.deliver(BODY, SENDER, ["bob@example.org"])
                with smtplib.SMTP(server.host, server.port, timeout=10) as c:
                    c.starttls(context=server.client_context())
                    c.login(AUTH_USERNAME, AUTH_PASSWORD)
                    c.sendmail(SENDER, ["carol@example.org"], BODY)
                logins = [m.auth_login for m in server.wait_for_messages(2)]
                assert logins == [AUTH_USERNAME, AUTH_USERNAME]

            def test_lmtp(lmtp_server):
                assert lmtp_server.url == f"lmtp://127.0.0.1:{lmtp_server.port}"
                with smtpx.connect(lmtp_server.url, policy="compat", timeout=10) as client:
                    result = client.deliver(BODY, SENDER, ["bob@example.org", "eve@example.org"])
                assert [r.data_reply.code for r in result.recipients] == [250, 250]
                assert lmtp_server.wait_for_messages(1)[0].rcpt_tos == (
                    "bob@example.org", "eve@example.org"
                )

            def test_factory(smtp_server_factory):
                picky = smtp_server_factory(refuse_at_rcpt={"eve@example.org"})
                broken = smtp_server_factory(
                    lmtp=True, faults=[Fault(at="CONTENT", drop=True)]
                )
                assert picky.port != broken.port
                with smtpx.connect(picky.url, policy="compat", timeout=10) as client:
                    result = client.deliver(BODY, SENDER, ["bob@example.org", "eve@example.org"])
                assert [r.address for r in result.refused] == ["eve@example.org"]
                with smtpx.connect(broken.url, policy="compat", timeout=10) as client:
                    try:
                        client.deliver(BODY, SENDER, ["bob@example.org"])
                    except smtpx.SMTPOutcomeUnknown:
                        pass
                    else:
                        raise AssertionError("the drop after the content was not seen")

            def test_a_fault_on_a_fixture(smtp_server):
                smtp_server.fault(Fault(at="RCPT", nth=2, reply="452 4.5.3 Too many recipients"))
                with smtpx.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
                    result = client.deliver(BODY, SENDER, ["bob@example.org", "eve@example.org"])
                assert [r.status for r in result.recipients] == ["accepted", "deferred"]
                assert smtp_server.fired_faults == [
                    Fault(at="RCPT", nth=2, reply="452 4.5.3 Too many recipients")
                ]
            """
        )
    )
    pytester.makeconftest(THREADS_AT_EXIT)
    result = run(pytester, *PLUGIN)
    result.assert_outcomes(passed=7)
    assert (pytester.path / "threads.txt").read_text() == "0"  # every server stopped


def test_session_servers_are_shared_and_reset_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            r"""
            import pytest
            import smtpx
            from smtpx.testing import Fault

            BODY = b"Subject: hi\r\n\r\nhello\r\n"
            SENDER = "app@example.org"
            seen = {}

            @pytest.fixture(scope="session")
            def mail_url(smtp_server_auth_session):
                # An application's own session fixture may hold a session server.
                return smtp_server_auth_session.url

            def send(server, url=None, policy="strict"):
                context = server.client_context() if url else None
                with smtpx.connect(
                    url or server.url, policy=policy, context=context, timeout=10
                ) as client:
                    return client.deliver(BODY, SENDER, ["bob@example.org"])

            def test_one(smtp_server_session, smtp_server_auth_session, mail_url):
                seen["ports"] = (smtp_server_session.port, smtp_server_auth_session.port)
                send(smtp_server_session, policy="compat")
                send(smtp_server_auth_session, url=mail_url)
                smtp_server_session.fault(Fault(at="RCPT", reply="550 5.1.1 No", times=None))
                assert len(smtp_server_session.messages) == 1
                assert len(smtp_server_auth_session.messages) == 1

            def test_two(smtp_server_session, smtp_server_auth_session):
                ports = (smtp_server_session.port, smtp_server_auth_session.port)
                assert ports == seen["ports"]  # the same servers
                assert smtp_server_session.messages == []  # received mail cleared
                assert smtp_server_auth_session.messages == []
                assert smtp_server_session.pending_faults == []  # faults cleared
                send(smtp_server_session, policy="compat")  # and not firing
                assert len(smtp_server_session.wait_for_messages(1)) == 1

            def test_the_other_session_servers(
                smtp_server_starttls_session, smtp_server_tls_session, lmtp_server_session
            ):
                assert smtp_server_starttls_session.url.startswith("smtp+starttls://")
                assert smtp_server_tls_session.url.startswith("smtps://")
                assert lmtp_server_session.url.startswith("lmtp://")
                for server in (smtp_server_starttls_session, smtp_server_tls_session):
                    send(server, url=server.url)
                    assert server.messages[0].tls
                send(lmtp_server_session, policy="compat")
                assert len(lmtp_server_session.messages) == 1

            def test_a_fourth_test_sees_none_of_it(lmtp_server_session, smtp_server_session):
                assert lmtp_server_session.messages == smtp_server_session.messages == []
            """
        )
    )
    pytester.makeconftest(THREADS_AT_EXIT)
    result = run(pytester, *PLUGIN)
    result.assert_outcomes(passed=4)
    assert (pytester.path / "threads.txt").read_text() == "0"  # session servers stopped


def test_without_the_testing_extra_pytest_still_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_unrelated():
            # Loading the plugin imported neither the server nor its dependencies.
            assert "smtpx.pytest_plugin" in sys.modules
            assert "smtpx.testing" not in sys.modules
            assert sys.modules.get("aiosmtpd") is None

        def test_uses_the_server(smtp_server):
            pass
        """
    )
    # A fresh interpreter where aiosmtpd cannot be imported, as without the extra.
    code = (
        "import sys; sys.modules['aiosmtpd'] = None\n"
        "import pytest\n"
        f"sys.exit(pytest.main({[*STRICT, *PLUGIN]!r}))\n"
    )
    result = pytester.run(sys.executable, "-c", code, timeout=TIMEOUT)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.re_match_lines(
        [r"smtpx\.testing needs aiosmtpd: install the extra with pip install 'smtpx\[testing\]'"]
    )
    assert "direct cause" not in result.stdout.str()  # the message alone


# -- docs/testing.md ---------------------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
TEST_FILES = [block for block in BLOCKS if "def test_" in block]


def test_the_guide_has_examples() -> None:
    assert len(TEST_FILES) >= 3
    assert len(BLOCKS) > len(TEST_FILES)  # and the annotated Fault(...) block


@pytest.mark.parametrize("source", TEST_FILES, ids=lambda s: re.findall(r"def (test_\w+)", s)[0])
def test_the_guide_examples_pass(pytester: pytest.Pytester, source: str) -> None:
    pytester.makepyfile(source)
    result = run(pytester, *PLUGIN)
    result.assert_outcomes(passed=source.count("\ndef test_"))


def test_the_guide_fault_example_is_valid() -> None:
    [block] = [block for block in BLOCKS if "def test_" not in block]
    namespace: dict[str, object] = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)
