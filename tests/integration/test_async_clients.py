"""The asyncio classes against the same real servers as the blocking ones: aiosmtpd
in-process, Postfix and Dovecot LMTP.  Every message is read back where it was delivered
and compared with what was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

import smtpx
from smtpx.testing import SinkServer

from .servers import DovecotLMTPServer, PostfixServer, make_message, new_token

pytestmark = pytest.mark.integration

SENDER = "sender@client.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
TIMEOUT = 10.0
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# ------------------------------------------------------------------------- aiosmtpd


def test_aiosmtpd_starttls_login_send() -> None:
    with SinkServer(starttls=True, auth={"alice": "pässwörd"}) as server:

        async def main() -> dict[str, tuple[int, bytes]]:
            async with smtpx.AsyncSMTP(server.host, server.port, timeout=TIMEOUT) as smtp:
                await smtp.starttls(context=server.client_context())
                await smtp.login("alice", "pässwörd")
                return await smtp.sendmail(SENDER, [ALICE], b"Subject: a\n\n.dot\nend\n")

        assert run(main()) == {}
        server.wait_for_messages(1)
        message = server.messages[0]
    assert message.tls and message.auth_login == "alice"
    assert message.content == b"Subject: a\r\n\r\n.dot\r\nend\r\n"


def test_aiosmtpd_default_starttls_verifies() -> None:
    import ssl

    with SinkServer(starttls=True) as server:

        async def main() -> None:
            async with smtpx.AsyncSMTP(server.host, server.port, timeout=TIMEOUT) as smtp:
                await smtp.starttls()

        with pytest.raises(ssl.SSLCertVerificationError):
            run(main())


def test_aiosmtpd_lmtp_per_recipient() -> None:
    with SinkServer(lmtp=True, refuse_after_data={BOB}) as server:

        async def main() -> dict[str, tuple[int, bytes]]:
            async with smtpx.AsyncLMTP(server.host, server.port, timeout=TIMEOUT) as lmtp:
                return await lmtp.sendmail(SENDER, [ALICE, BOB], "Subject: l\n\nhi\n")

        refused = run(main())
        server.wait_for_messages(1)
        assert list(refused) == [BOB] and refused[BOB][0] == 550
        assert list(server.messages[0].rcpt_tos) == [ALICE]
        assert server.messages[0].content == b"Subject: l\r\n\r\nhi\r\n"


# -------------------------------------------------------------------------- Postfix


def test_postfix_starttls_pipelined_send(postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)

    async def main() -> dict[str, tuple[int, bytes]]:
        async with smtpx.AsyncSMTP(postfix.host, postfix.port, timeout=TIMEOUT) as smtp:
            await smtp.starttls(context=postfix.client_context())
            await smtp.ehlo()
            assert smtp.has_extn("pipelining")
            return await smtp.sendmail(
                SENDER, [ALICE, postfix.unknown_user, postfix.deferred_user], sent
            )

    refused = run(main())
    assert sorted(code for code, _ in refused.values()) == [450, 550]
    delivered = postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)
    assert b" with ESMTPS id " in delivered


def test_postfix_smtp_ssl(postfix: PostfixServer) -> None:
    token = new_token()
    sent = make_message(token)

    async def main() -> dict[str, tuple[int, bytes]]:
        async with smtpx.AsyncSMTP_SSL(
            "localhost", postfix.smtps_port, context=postfix.client_context(), timeout=TIMEOUT
        ) as smtp:
            return await smtp.sendmail(SENDER, [ALICE], sent)

    assert run(main()) == {}
    postfix.mailbox(ALICE).wait_for_intact(token, sent, sender=SENDER)


def test_postfix_concurrent_tasks_share_one_client(postfix: PostfixServer) -> None:
    tokens = [new_token() for _ in range(4)]
    messages = [make_message(token) for token in tokens]

    async def main() -> list[dict[str, tuple[int, bytes]]]:
        async with smtpx.AsyncSMTP(postfix.host, postfix.port, timeout=TIMEOUT) as smtp:
            return await asyncio.gather(
                *(smtp.sendmail(SENDER, [ALICE], message) for message in messages)
            )

    assert run(main()) == [{}] * 4
    for token, message in zip(tokens, messages, strict=True):
        postfix.mailbox(ALICE).wait_for_intact(token, message, sender=SENDER)


# ---------------------------------------------------------------------- Dovecot LMTP


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_dovecot_one_delivered_one_refused_after_data(
    dovecot: DovecotLMTPServer, transport: str
) -> None:
    token = new_token()
    sent = make_message(token)

    async def main() -> dict[str, tuple[int, bytes]]:
        if transport == "tcp":
            client = smtpx.AsyncLMTP(dovecot.host, dovecot.port, timeout=TIMEOUT)
        else:
            client = smtpx.AsyncLMTP(dovecot.socket_path, timeout=TIMEOUT)
        async with client as lmtp:
            refused = await lmtp.sendmail(
                SENDER, [dovecot.user, dovecot.quota_full_user, dovecot.unknown_user], sent
            )
            assert (await lmtp.noop())[0] == 250  # replies stayed in step
            return refused

    refused = run(main())
    assert set(refused) == {dovecot.quota_full_user, dovecot.unknown_user}
    assert refused[dovecot.quota_full_user][0] == 552
    dovecot.mailbox(dovecot.user).wait_for_intact(token, sent, sender=SENDER)
