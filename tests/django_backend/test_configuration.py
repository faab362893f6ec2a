"""The backend's reading of Django's settings, and its contract, without a server: the
pool is replaced by a recorder (``FakePool``) that answers as the real one does."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage

import smtpx.django
from smtpx.django import _backend

from .conftest import Mail


@dataclass
class FakeResult:
    """The shape of ``smtpx.PoolResult`` the backend reads."""

    delivered: list[str]
    refused: list[str] = field(default_factory=list)
    attempts: list[Any] = field(default_factory=list)
    recipients: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakePool:
    urls: Any
    options: dict[str, Any]
    answers: list[FakeResult] = field(default_factory=list)
    batches: list[list[Any]] = field(default_factory=list)
    closed: bool = False

    def send_many(self, items: list[Any]) -> list[FakeResult]:
        self.batches.append(items)
        if not self.answers:
            return [FakeResult(delivered=list(item[2])) for item in items]
        answers, self.answers = self.answers[: len(items)], self.answers[len(items) :]
        return answers

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[FakePool]:
    made: list[FakePool] = []

    def make(urls: tuple[str, ...], options: dict[str, Any]) -> FakePool:
        pool = FakePool(urls[0] if len(urls) == 1 else list(urls), options)
        made.append(pool)
        return pool

    monkeypatch.setattr(_backend, "_make_pool", make)
    smtpx.django.close_pools()
    yield made
    smtpx.django.close_pools()


def message(to: list[str], **kwargs: Any) -> EmailMessage:
    return EmailMessage("Subject", "Body\n", "App <app@client.test>", to, **kwargs)


# ------------------------------------------------------------------ settings -> pool


def test_plain_settings_map_to_an_smtp_url_under_the_compat_policy(
    mail: Mail, pools: list[FakePool]
) -> None:
    mail.configure(host="mail.example.test", port=2525)
    backend = mail.backend()
    assert backend.urls == ("smtp://mail.example.test:2525",)
    assert backend.options["policy"] == "compat"
    assert backend.options["retry"] is None
    assert "username" not in backend.options  # no AUTH without both user and password


def test_tls_settings_and_credentials(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(
        host="mx.example.test", port=587, use_tls=True, username="u", password="p w", timeout=7.5
    )
    backend = mail.backend()
    assert backend.urls == ("smtp+starttls://mx.example.test:587",)
    assert (backend.options["username"], backend.options["password"]) == ("u", "p w")
    assert backend.options["timeout"] == 7.5
    assert "p w" not in repr(backend)


def test_ssl_settings_and_an_ipv6_host(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="::1", port=465, use_ssl=True)
    assert mail.backend().urls == ("smtps://[::1]:465",)


def test_tls_and_ssl_together_are_refused(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="mx.example.test", port=25, use_tls=True, use_ssl=True)
    with pytest.raises(ImproperlyConfigured, match="exclude each other"):
        mail.backend()


def test_smtpx_options_url_policy_and_pool(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(
        url="smtps://app:s%40cret@mx.example.test", policy="strict", max_connections=2, rate=5.0
    )
    backend = mail.backend()
    assert backend.urls == ("smtps://app:s%40cret@mx.example.test",)
    assert backend.options["policy"] == "strict"
    assert (backend.options["max_connections"], backend.options["rate"]) == (2, 5.0)
    assert "cret" not in repr(backend)
    assert backend.open() is True
    assert pools[0].urls == "smtps://app:s%40cret@mx.example.test"
    assert pools[0].options["max_connections"] == 2


def test_a_list_of_urls_is_failover(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(url=["smtp://a.example.test", "smtp://b.example.test"])
    mail.backend().open()
    assert pools[0].urls == ["smtp://a.example.test", "smtp://b.example.test"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"url": "http://x.example.test"}, "unknown server URL scheme"),
        ({"url": "smtp://x.example.test", "policy": "lax"}, "policy must be"),
        ({"url": "smtp://x.example.test", "max_conections": 2}, "max_conections"),
        ({"host": "x.example.test\r\nRCPT TO:<a@b>", "port": 25}, "invalid host"),
    ],
)
def test_bad_configuration_is_refused_before_any_connection(
    mail: Mail, pools: list[FakePool], options: dict[str, Any], error: str
) -> None:
    if mail.kind == "settings" and "max_conections" in options:
        error = "unknown SMTPX_EMAIL_OPTIONS"
    mail.configure(**options)
    with pytest.raises(ImproperlyConfigured, match=error):
        mail.backend()
    assert pools == []


def test_one_pool_per_configuration_shared_by_backends(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="mx.example.test", port=25)
    first, second = mail.backend(), mail.backend()
    assert first.send_messages([message(["a@example.test"])]) == 1
    assert second.send_messages([message(["b@example.test"])]) == 1
    assert len(pools) == 1 and len(pools[0].batches) == 2
    mail.configure(host="other.example.test", port=25)
    assert mail.backend().send_messages([message(["c@example.test"])]) == 1
    assert len(pools) == 2


def test_open_close_and_the_context_manager(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="mx.example.test", port=25)
    backend = mail.backend()
    assert backend.open() is True
    assert backend.open() is False
    backend.close()
    with backend as opened:
        assert opened is backend
        assert opened.send_messages([message(["a@example.test"])]) == 1
    assert not pools[0].closed  # the connections outlive the backend: reused by the next
    smtpx.django.close_pools()
    assert pools[0].closed


# ------------------------------------------------------------------ messages


def test_envelope_from_from_email_and_recipients_with_bcc(
    mail: Mail, pools: list[FakePool]
) -> None:
    mail.configure(host="mx.example.test", port=25)
    msg = message(
        ["To <to@example.test>"],
        cc=["cc@example.test"],
        bcc=["hidden@example.test"],
        headers={"From": "Someone Else <else@example.test>"},
    )
    assert mail.backend().send_messages([msg]) == 1
    ((content, sender, recipients),) = pools[0].batches[0]
    assert sender == "app@client.test"  # the envelope: from_email, as Django does
    assert recipients == ["to@example.test", "cc@example.test", "hidden@example.test"]
    assert b"\r\nFrom: Someone Else <else@example.test>\r\n" in b"\r\n" + content
    assert b"hidden@" not in content
    assert b"\n" not in content.replace(b"\r\n", b"")
    assert msg.smtpx_result.delivered == recipients


def test_idna_domain_and_a_quoted_local_part(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="mx.example.test", port=25)
    to = ["user@bücher.example", '"john doe"@example.test']
    assert mail.backend().send_messages([message(to)]) == 1
    assert pools[0].batches[0][0][2] == ["user@xn--bcher-kva.example", '"john doe"@example.test']


@pytest.mark.parametrize(
    "bad", ["a@example.test, b@example.test", "a@example.test\r\nBcc: x@evil.test", ""]
)
def test_invalid_addresses_raise_value_error_even_when_silent(
    mail: Mail, pools: list[FakePool], bad: str
) -> None:
    mail.configure(host="mx.example.test", port=25)
    backend = mail.backend()
    backend.fail_silently = True
    msg = message([bad or "x@example.test"])
    if not bad:
        msg.from_email = ""
    with pytest.raises(ValueError, match="invalid address"):
        backend.send_messages([msg])
    assert pools == [] or pools[0].batches == []


def test_messages_without_recipients_are_skipped(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="mx.example.test", port=25)
    backend = mail.backend()
    assert backend.send_messages([]) == 0
    assert backend.send_messages([message([])]) == 0
    assert pools == []


def test_count_partial_failures_and_the_first_error_raised(
    mail: Mail, pools: list[FakePool]
) -> None:
    mail.configure(host="mx.example.test", port=25)
    backend = mail.backend()
    refusal = smtplib.SMTPRecipientsRefused({"c@example.test": (550, b"5.1.1 unknown")})
    backend.open()
    pools[0].answers = [
        FakeResult(delivered=["a@example.test"], refused=["b@example.test"]),
        FakeResult(delivered=[], refused=["c@example.test"], attempts=[refusal]),
        FakeResult(delivered=["d@example.test"]),
    ]
    messages = [
        message(["a@example.test", "b@example.test"]),
        message(["c@example.test"]),
        message(["d@example.test"]),
    ]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
        backend.send_messages(messages)
    assert raised.value is refusal
    # The whole batch went, and every message has its result.
    assert [m.smtpx_result.delivered for m in messages] == [
        ["a@example.test"],
        [],
        ["d@example.test"],
    ]
    backend.fail_silently = True
    pools[0].answers = [
        FakeResult(delivered=["a@example.test"], refused=["b@example.test"]),
        FakeResult(delivered=[], refused=["c@example.test"], attempts=[refusal]),
        FakeResult(delivered=["d@example.test"]),
    ]
    assert backend.send_messages(messages) == 2


def test_a_failure_without_an_exception_attempt_is_reported_by_reply(
    mail: Mail, pools: list[FakePool]
) -> None:
    mail.configure(host="mx.example.test", port=25)
    backend = mail.backend()
    backend.open()
    fate = type("Fate", (), {"reason": smtpx.Reply(450, (b"4.2.0 try later",)), "state": None})
    pools[0].answers = [FakeResult(delivered=[], recipients={"a@example.test": fate})]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
        backend.send_messages([message(["a@example.test"])])
    assert raised.value.recipients == {"a@example.test": (450, b"4.2.0 try later")}


def test_fail_silently_covers_errors_raised_by_the_pool(
    mail: Mail, pools: list[FakePool], monkeypatch: pytest.MonkeyPatch
) -> None:
    mail.configure(host="mx.example.test", port=25)
    backend = mail.backend()
    backend.open()

    def broken(items: list[Any]) -> list[Any]:
        raise smtplib.SMTPServerDisconnected("gone")

    monkeypatch.setattr(pools[0], "send_many", broken)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        backend.send_messages([message(["a@example.test"])])
    backend.fail_silently = True
    assert backend.send_messages([message(["a@example.test"])]) == 0


def test_a_forked_child_forgets_the_parents_pools(mail: Mail, pools: list[FakePool]) -> None:
    mail.configure(host="mx.example.test", port=25)
    mail.backend().open()
    assert len(_backend._pools) == 1
    _backend._forget_pools()  # what os.register_at_fork runs in the child
    assert _backend._pools == {}
    assert not pools[0].closed  # the parent's: not the child's to close


def test_the_backend_modules_hold_no_doctest() -> None:
    # tests/protocol/test_doctests.py leaves smtpx.django out (it needs Django): an
    # example added here would never run.
    import inspect

    assert ">>>" not in inspect.getsource(smtpx.django)
    assert ">>>" not in inspect.getsource(_backend)
