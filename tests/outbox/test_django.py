"""``OutboxEmailBackend``: Django's mail API puts into the outbox, after the commit of the
caller's transaction, never after a rollback.  Django itself runs on an in-memory SQLite
database; the outbox is a file in the test's directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings

BACKEND = "smtpx.outbox._django.OutboxEmailBackend"
# Django 6.1 names the backend in MAILERS (EMAIL_BACKEND is deprecated there).
MAILER = (
    {"MAILERS": {"default": {"BACKEND": BACKEND}}}
    if django.VERSION >= (6, 1)
    else {"EMAIL_BACKEND": BACKEND}
)

if not settings.configured:
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=[],
        DEFAULT_CHARSET="utf-8",
        USE_TZ=True,
        **MAILER,
    )
    django.setup()

from django.core import mail  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from smtpx.outbox import Outbox  # noqa: E402
from smtpx.outbox._django import OutboxEmailBackend  # noqa: E402


@pytest.fixture
def path(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "outbox.db")
    with override_settings(SMTPX_OUTBOX=path, **MAILER):
        yield path


def queued(path: str) -> list[int]:
    with Outbox(path) as outbox:
        return [m.id for m in outbox.list()]


def test_outside_a_transaction_the_message_is_queued_at_once(path: str) -> None:
    sent = mail.send_mail("Hello", "Body", "Shop <shop@example.org>", ["Bob <bob@example.org>"])
    assert sent == 1
    with Outbox(path) as outbox:
        (info,) = outbox.list()
        assert info.state == "queued" and info.sender == "shop@example.org"
        shown = outbox.show(info.id)
        assert [r.address for r in shown.recipients] == ["bob@example.org"]
        content = outbox.content(info.id)
    assert b"Subject: Hello\r\n" in content and b"\r\n\r\nBody" in content
    # Django's Message-ID is the one every attempt sends.
    assert f"Message-ID: {info.message_id}".encode() in content


def test_bcc_is_in_the_envelope_not_in_the_headers(path: str) -> None:
    message = mail.EmailMessage(
        "Hi", "Body", "shop@example.org", ["to@example.org"], bcc=["hidden@example.org"]
    )
    assert message.send() == 1
    with Outbox(path) as outbox:
        (info,) = outbox.list()
        addresses = [r.address for r in outbox.show(info.id).recipients]
        content = outbox.content(info.id)
    assert addresses == ["to@example.org", "hidden@example.org"]
    assert b"hidden@example.org" not in content


def test_inside_a_transaction_the_message_waits_for_the_commit(path: str) -> None:
    with transaction.atomic():
        mail.send_mail("Order 1", "Thanks", "shop@example.org", ["bob@example.org"])
        assert queued(path) == []  # not before the commit
    assert len(queued(path)) == 1


def test_a_rolled_back_transaction_queues_nothing(path: str) -> None:
    class Failed(Exception):
        pass

    with pytest.raises(Failed), transaction.atomic():
        mail.send_mail("Order 2", "Thanks", "shop@example.org", ["bob@example.org"])
        raise Failed
    assert queued(path) == []


def test_a_rolled_back_savepoint_drops_only_its_own_messages(path: str) -> None:
    with transaction.atomic():
        mail.send_mail("kept", "Body", "shop@example.org", ["bob@example.org"])
        try:
            with transaction.atomic():
                mail.send_mail("dropped", "Body", "shop@example.org", ["bob@example.org"])
                raise RuntimeError("the inner block fails")
        except RuntimeError:
            pass
    with Outbox(path) as outbox:
        (info,) = outbox.list()
        assert b"Subject: kept" in outbox.content(info.id)


def test_a_bad_address_raises_in_the_callers_code(path: str) -> None:
    with pytest.raises(ValueError), transaction.atomic():
        mail.send_mail("x", "y", "shop@example.org", ["bob@example.org\r\nRCPT TO:<e@vil>"])
    quiet = OutboxEmailBackend(fail_silently=True)
    bad = mail.EmailMessage("x", "y", "shop@example.org", ["bob@example.org\nRCPT TO:<e@vil>"])
    assert quiet.send_messages([bad]) == 0
    assert queued(path) == []


def test_an_outbox_object_and_many_messages(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        connection = OutboxEmailBackend(outbox=outbox)
        messages = [
            mail.EmailMessage(f"n{n}", "b", "shop@example.org", ["bob@example.org"])
            for n in range(3)
        ]
        empty = mail.EmailMessage("nobody", "b", "shop@example.org", [])
        assert connection.send_messages([*messages, empty]) == 3
        assert outbox.counts() == {"queued": 3}


def test_without_a_setting_the_backend_says_so() -> None:
    with override_settings(SMTPX_OUTBOX=None), pytest.raises(ImproperlyConfigured):
        OutboxEmailBackend()
    with pytest.raises(ImproperlyConfigured, match="put_many"):
        OutboxEmailBackend(outbox=42).send_messages(
            [mail.EmailMessage("s", "b", "shop@example.org", ["bob@example.org"])]
        )
