"""Scripted faults on the sink server, each checked by what smtpx's clients report.

The first part checks ``Fault`` and ``FaultPlan`` as values (no sockets); the rest drives
``smtpx.SMTP``, ``smtpx.connect`` and ``smtpx.AsyncSMTP`` against a ``SinkServer`` with
faults and asserts both the client's view (result, exception) and the server's (messages,
fired faults).
"""

from __future__ import annotations

import asyncio
import doctest
import smtplib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import smtpx
import smtpx.testing._faults
import smtpx.testing._server
from smtpx.testing import MAX_DELAY, Fault, SinkServer
from smtpx.testing._faults import FaultPlan, Position

SENDER = "app@example.org"
BODY = b"From: app@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
TIMEOUT = 10.0
TOO_MANY = "452 4.5.3 Too many recipients"


@pytest.fixture
def server() -> Iterator[SinkServer]:
    with SinkServer() as sink:
        yield sink


@pytest.fixture
def auth_server() -> Iterator[SinkServer]:
    with SinkServer(starttls=True, auth={"user@example.org": "s3cret"}) as sink:
        yield sink


def client(server: SinkServer, timeout: float = TIMEOUT) -> smtpx.SMTP:
    return smtpx.SMTP(server.host, server.port, "client.example", timeout=timeout)


def batch(count: int, recipients: tuple[str, ...] = ("bob@example.org",)) -> list[Any]:
    return [(BODY, SENDER, list(recipients)) for _ in range(count)]


def sink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("smtpx-sink-server")]


# -- Fault and FaultPlan as values ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"at": "BDAT", "reply": TOO_MANY}, ValueError, "takes one of"),
        ({"at": 3, "reply": TOO_MANY}, ValueError, "takes one of"),
        ({"at": "RCPT"}, ValueError, "needs a reply, drop=True or a delay"),
        ({"at": "RCPT", "reply": "452"}, None, None),
        ({"at": "RCPT", "reply": "250 OK"}, ValueError, "must be 4xx or 5xx"),
        ({"at": "GREETING", "reply": "220 hello"}, ValueError, "must be 4xx or 5xx"),
        ({"at": "CONTENT", "reply": "354 go on"}, ValueError, "must be 2xx, 4xx or 5xx"),
        ({"at": "RCPT", "reply": "45 short"}, ValueError, "three digits"),
        ({"at": "RCPT", "reply": "452text"}, ValueError, "three digits"),
        ({"at": "RCPT", "reply": "452 a\r\n250 injected"}, ValueError, "no CR, LF or NUL"),
        ({"at": "RCPT", "reply": "452 a\nb"}, ValueError, "no CR, LF or NUL"),
        ({"at": "RCPT", "reply": "452 a\x00"}, ValueError, "no CR, LF or NUL"),
        ({"at": "RCPT", "reply": "452 caf\u00e9"}, ValueError, "ASCII"),
        ({"at": "RCPT", "reply": b"452 bytes"}, TypeError, "takes a str"),
        ({"at": "RCPT", "reply": TOO_MANY, "drop": True}, ValueError, "not both"),
        ({"at": "RCPT", "reply": TOO_MANY, "nth": 0}, ValueError, "nth counts from 1"),
        ({"at": "RCPT", "reply": TOO_MANY, "nth": True}, ValueError, "nth counts from 1"),
        ({"at": "RCPT", "reply": TOO_MANY, "times": 0}, ValueError, "times counts from 1"),
        ({"at": "RCPT", "reply": TOO_MANY, "message": 0}, ValueError, "message counts from 1"),
        ({"at": "EHLO", "reply": "550 no", "message": 1}, ValueError, "not part of one"),
        ({"at": "MAIL", "reply": "451 no", "message": 2, "nth": 2}, ValueError, "not both"),
        ({"at": "GREETING", "reply": "421 busy", "nth": 2}, ValueError, "one greeting"),
        ({"at": "DATA", "delay": -1}, ValueError, "between 0 and"),
        ({"at": "DATA", "delay": MAX_DELAY + 1}, ValueError, "between 0 and"),
        ({"at": "DATA", "delay": "1"}, TypeError, "seconds as a number"),
        ({"at": "DATA", "delay": 1.0, "close": True}, ValueError, "own reply"),
        ({"at": "CONTENT", "drop": True, "close": True}, ValueError, "own reply"),
        ({"at": "QUIT", "reply": "554 no", "close": False}, ValueError, "always closes"),
        ({"at": "GREETING", "reply": "554 no", "close": False}, ValueError, "always closes"),
    ],
)
def test_fault_refuses_what_cannot_be_scripted(
    kwargs: dict[str, Any], error: type[Exception] | None, match: str | None
) -> None:
    if error is None:
        assert Fault(**kwargs).code == 452
        return
    with pytest.raises(error, match=match):
        Fault(**kwargs)


def test_fault_defaults() -> None:
    fault = Fault(at="rcpt", reply=TOO_MANY)
    assert (fault.at, fault.nth, fault.message, fault.times, fault.code) == (
        "RCPT",
        1,
        None,
        1,
        452,
    )
    assert not fault.closes
    assert Fault(at="MAIL", reply="421 4.3.2 shutting down").closes  # RFC 5321 section 3.8
    assert not Fault(at="MAIL", reply="421 4.3.2 stay", close=False).closes
    assert Fault(at="RCPT", reply="550 5.7.1 go away", close=True).closes
    assert Fault(at="GREETING", reply="554 5.3.2 no service").closes
    assert Fault(at="QUIT", reply="500 5.5.1 no").closes
    assert not Fault(at="CONTENT", drop=True).closes  # a drop sends nothing to close after
    assert Fault(at="DATA", delay=0.5).code is None
    assert Fault.close_after(5, times=None) == Fault(
        at="MAIL", nth=6, reply=Fault.close_after(1).reply, close=True, times=None
    )
    with pytest.raises(ValueError, match="messages counts from 1"):
        Fault.close_after(0)


def test_plan_fires_from_the_nth_occurrence_while_it_has_firings_left() -> None:
    plan = FaultPlan([Fault(at="RCPT", nth=3, reply=TOO_MANY, times=2)])
    fired = [plan.take("RCPT", Position(count=n, message=1)) is not None for n in range(1, 6)]
    assert fired == [False, False, True, True, False]
    assert plan.pending() == []
    assert len(plan.fired()) == 2


def test_plan_every_time_and_message() -> None:
    every = Fault(at="DATA", delay=0.1, times=None)
    second = Fault(at="RCPT", message=2, reply="550 5.1.1 no such user")
    plan = FaultPlan([every, second])
    assert all(plan.take("DATA", Position(n, n)) is every for n in range(1, 50))
    assert plan.take("RCPT", Position(count=1, message=1)) is None
    assert plan.take("RCPT", Position(count=1, message=3)) is None
    assert plan.take("RCPT", Position(count=1, message=2)) is second
    assert plan.take("RCPT", Position(count=1, message=2)) is None  # once
    assert plan.take("MAIL", Position(count=1, message=1)) is None  # another point
    assert plan.pending() == [every]


def test_plan_first_added_fault_wins_and_clear_forgets() -> None:
    first = Fault(at="MAIL", reply="451 4.3.0 first")
    second = Fault(at="MAIL", reply="451 4.3.0 second")
    plan = FaultPlan([first, second])
    assert plan.take("MAIL", Position(1, 1)) is first
    assert plan.take("MAIL", Position(2, 2)) is second
    assert plan.fired() == [first, second]
    plan.add(first)
    plan.clear()
    assert plan.take("MAIL", Position(3, 3)) is None
    assert plan.fired() == plan.pending() == []
    with pytest.raises(TypeError, match=r"smtpx\.testing\.Fault"):
        plan.add("451 no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a list of Fault"):
        SinkServer(faults=first)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "module", [smtpx.testing._faults, smtpx.testing._server], ids=lambda m: m.__name__
)
def test_doctests(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# -- the greeting -----------------------------------------------------------------


def test_421_at_the_greeting_is_a_connect_error_once(server: SinkServer) -> None:
    server.fault(Fault(at="GREETING", reply="421 4.3.2 Service not available"))
    with pytest.raises(smtpx.SMTPConnectError) as info:
        client(server)
    assert (info.value.smtp_code, info.value.smtp_error) == (421, b"4.3.2 Service not available")
    # Fired once: the next connection is greeted normally.
    with client(server) as smtp:
        assert smtp.sendmail(SENDER, ["bob@example.org"], BODY) == {}
    assert len(server.wait_for_messages(1)) == 1
    assert len(server.fired_faults) == 1


def test_greeting_refused_every_time_through_connect(server: SinkServer) -> None:
    server.fault(Fault(at="GREETING", reply="554 5.3.2 No service here", times=None))
    for _ in range(3):
        with pytest.raises(smtpx.SMTPConnectError) as info:
            smtpx.connect(server.url, policy="compat", timeout=TIMEOUT)
        assert info.value.smtp_code == 554
    assert len(server.fired_faults) == 3


def test_slow_greeting(server: SinkServer) -> None:
    server.fault(Fault(at="GREETING", delay=0.5, times=None))
    with pytest.raises(smtpx.SMTPTimeoutError):
        client(server, timeout=0.1)
    started = time.monotonic()
    with client(server) as smtp:
        assert time.monotonic() - started >= 0.5
        assert smtp.noop()[0] == 250


def test_dropped_before_the_greeting(server: SinkServer) -> None:
    server.fault(Fault(at="GREETING", drop=True))
    with pytest.raises(smtpx.SMTPServerDisconnected):
        client(server)


# -- EHLO, STARTTLS, AUTH ------------------------------------------------------------


def test_ehlo_refused_once_falls_back_to_helo(server: SinkServer) -> None:
    server.fault(Fault(at="EHLO", reply="502 5.5.1 EHLO not implemented"))
    with client(server) as smtp:
        assert smtp.sendmail(SENDER, ["bob@example.org"], BODY) == {}
        assert smtp.helo_resp is not None and smtp.does_esmtp is False
    assert [m.rcpt_tos for m in server.wait_for_messages(1)] == [("bob@example.org",)]


def test_421_at_ehlo_closes(server: SinkServer) -> None:
    server.fault(Fault(at="EHLO", reply="421 4.7.0 Too busy"))
    with client(server) as smtp:
        assert smtp.ehlo() == (421, b"4.7.0 Too busy")
        with pytest.raises(smtpx.SMTPServerDisconnected):
            smtp.noop()


def test_starttls_refused_under_the_strict_policy() -> None:
    with SinkServer(starttls=True) as sink:
        sink.fault(Fault(at="STARTTLS", reply="454 4.7.0 TLS not available"))
        with pytest.raises(smtpx.SMTPPolicyError, match="refused STARTTLS") as info:
            smtpx.connect(sink.url, context=sink.client_context(), timeout=TIMEOUT)
        assert isinstance(info.value.__cause__, smtplib.SMTPResponseException)
        assert info.value.__cause__.smtp_code == 454


def test_auth_failing_every_time(auth_server: SinkServer) -> None:
    auth_server.fault(
        Fault(at="AUTH", reply="454 4.7.0 Temporary authentication failure", times=None)
    )
    with pytest.raises(smtpx.SMTPAuthenticationError) as info:
        smtpx.connect(auth_server.url, context=auth_server.client_context(), timeout=TIMEOUT)
    assert info.value.smtp_code == 454
    assert auth_server.fired_faults  # at least one mechanism tried, each refused
    assert auth_server.messages == []


def test_auth_failing_once_then_the_next_mechanism(auth_server: SinkServer) -> None:
    auth_server.fault(Fault(at="AUTH", reply="454 4.7.0 Temporary authentication failure"))
    with smtpx.connect(
        auth_server.url, context=auth_server.client_context(), timeout=TIMEOUT
    ) as smtp:
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    [message] = auth_server.wait_for_messages(1)
    assert message.auth_login == "user@example.org"
    assert len(auth_server.fired_faults) == 1


# -- the transaction -----------------------------------------------------------------


def test_452_at_the_second_rcpt_defers_that_recipient(server: SinkServer) -> None:
    server.fault(Fault(at="RCPT", nth=2, reply=TOO_MANY))
    with client(server) as smtp:
        result = smtp.deliver(BODY, SENDER, ["bob@example.org", "carol@example.org"])
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@example.org", "accepted"),
        ("carol@example.org", "deferred"),
    ]
    [deferred] = result.deferred
    assert (deferred.code, str(deferred.enhanced_status)) == (452, "4.5.3")
    assert deferred.text == "4.5.3 Too many recipients"
    [message] = server.wait_for_messages(1)
    assert message.rcpt_tos == ("bob@example.org",)


def test_452_at_the_second_rcpt_with_sendmail(server: SinkServer) -> None:
    server.fault(Fault(at="RCPT", nth=2, reply=TOO_MANY))
    with client(server) as smtp:
        refused = smtp.sendmail(SENDER, ["bob@example.org", "carol@example.org"], BODY)
    assert refused == {"carol@example.org": (452, b"4.5.3 Too many recipients")}


def test_recipient_limit_every_message(server: SinkServer) -> None:
    # A server that takes two recipients per message, as providers do (RFC 5321 4.5.3.1.8).
    server.fault(Fault(at="RCPT", nth=3, reply=TOO_MANY, times=None))
    rcpts = tuple(f"r{n}@example.org" for n in range(1, 5))
    with client(server) as smtp:
        entries = smtp.deliver_many(batch(2, rcpts))
    for entry in entries:
        assert isinstance(entry, smtpx.SendResult)
        assert [r.address for r in entry.accepted] == list(rcpts[:2])
        assert [r.address for r in entry.deferred] == list(rcpts[2:])
    assert [m.rcpt_tos for m in server.wait_for_messages(2)] == [rcpts[:2], rcpts[:2]]
    assert len(server.fired_faults) == 4


def test_rcpt_refused_in_the_second_message_only(server: SinkServer) -> None:
    server.fault(Fault(at="RCPT", message=2, reply="550 5.1.1 No such user"))
    with client(server) as smtp:
        entries = smtp.deliver_many(batch(3))
    assert isinstance(entries[0], smtpx.SendResult)
    assert isinstance(entries[2], smtpx.SendResult)
    assert isinstance(entries[1], smtpx.SMTPRecipientsRefused)
    assert entries[1].recipients == {"bob@example.org": (550, b"5.1.1 No such user")}
    assert len(server.wait_for_messages(2)) == 2


def test_mail_refused_in_the_second_message(server: SinkServer) -> None:
    server.fault(Fault(at="MAIL", nth=2, reply="451 4.3.0 Try again later"))
    with client(server) as smtp:
        entries = smtp.deliver_many(batch(3))
    assert isinstance(entries[1], smtpx.SMTPSenderRefused)
    assert (entries[1].smtp_code, entries[1].sender) == (451, SENDER)
    assert isinstance(entries[0], smtpx.SendResult)
    assert isinstance(entries[2], smtpx.SendResult)
    assert len(server.wait_for_messages(2)) == 2


def test_data_refused(server: SinkServer) -> None:
    server.fault(Fault(at="DATA", reply="554 5.5.1 No valid recipients"))
    with client(server) as smtp, pytest.raises(smtpx.SMTPDataError) as info:
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert info.value.smtp_code == 554
    assert server.messages == []


def test_content_deferred(server: SinkServer) -> None:
    server.fault(Fault(at="CONTENT", reply="451 4.3.0 Queue write error"))
    with client(server) as smtp, pytest.raises(smtpx.SMTPDataError) as info:
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert (info.value.smtp_code, info.value.is_transient) == (451, True)
    assert server.messages == []


def test_content_accepted_with_a_queue_id(server: SinkServer) -> None:
    server.fault(Fault(at="CONTENT", reply="250 2.0.0 Ok: queued as 4XyZ12"))
    with client(server) as smtp:
        result = smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert result.queue_id == "4XyZ12"
    assert server.wait_for_messages(1)[0].content == BODY


def test_drop_after_the_content_is_outcome_unknown(server: SinkServer) -> None:
    server.fault(Fault(at="CONTENT", drop=True))
    with client(server) as smtp, pytest.raises(smtpx.SMTPOutcomeUnknown):
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert server.messages == []
    assert len(server.fired_faults) == 1


def test_drop_after_the_content_with_sendmail(server: SinkServer) -> None:
    server.fault(Fault(at="CONTENT", drop=True))
    with client(server) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail(SENDER, ["bob@example.org"], BODY)


def test_drop_before_the_content_is_not_outcome_unknown(server: SinkServer) -> None:
    server.fault(Fault(at="MAIL", drop=True))
    with client(server) as smtp, pytest.raises(smtpx.SMTPServerDisconnected) as info:
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert not isinstance(info.value, smtpx.SMTPOutcomeUnknown)


def test_drop_after_the_second_content_in_a_batch(server: SinkServer) -> None:
    server.fault(Fault(at="CONTENT", nth=2, drop=True))
    with client(server) as smtp:
        entries = smtp.deliver_many(batch(4))
    assert isinstance(entries[0], smtpx.SendResult)
    assert isinstance(entries[1], smtpx.SMTPOutcomeUnknown)
    assert all(isinstance(entry, smtpx.SMTPNotAttempted) for entry in entries[2:])
    assert len(server.messages) == 1


def test_421_and_close_after_two_messages(server: SinkServer) -> None:
    server.fault(Fault.close_after(2, times=None))
    for _ in range(2):  # every connection
        with client(server) as smtp:
            entries = smtp.deliver_many(batch(4))
        assert [type(entry) for entry in entries[:2]] == [smtpx.SendResult] * 2
        # The 421 to the third MAIL: that message was never taken (docs/sending.md).
        assert isinstance(entries[2], smtpx.SMTPNotAttempted)
        assert isinstance(entries[3], smtpx.SMTPNotAttempted)
    assert len(server.wait_for_messages(4)) == 4


def test_slow_reply_to_data(server: SinkServer) -> None:
    server.fault(Fault(at="DATA", delay=0.6))
    with client(server, timeout=0.2) as smtp, pytest.raises(smtpx.SMTPTimeoutError):
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    server.fault(Fault(at="DATA", delay=0.3))
    started = time.monotonic()
    with client(server) as smtp:
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert time.monotonic() - started >= 0.3
    assert len(server.wait_for_messages(1)) == 1


def test_slow_final_reply_with_phase_timeouts(server: SinkServer) -> None:
    # Timeouts.data bounds the wait for the reply after the content; 0.4 s is too short.
    server.fault(Fault(at="CONTENT", delay=0.8))
    timeouts = smtpx.Timeouts(connect=TIMEOUT, command=TIMEOUT, data=0.4)
    with (
        smtpx.SMTP(server.host, server.port, "client.example", timeout=timeouts) as smtp,
        pytest.raises(smtpx.SMTPOutcomeUnknown) as info,
    ):
        smtp.deliver(BODY, SENDER, ["bob@example.org"])
    assert isinstance(info.value.__cause__, TimeoutError)


def test_rset_noop_quit(server: SinkServer) -> None:
    server.fault(
        Fault(at="NOOP", delay=0.3),
        Fault(at="RSET", reply="451 4.3.0 Not now"),
        Fault(at="QUIT", reply="500 5.5.1 Not at all"),
    )
    with client(server) as smtp:
        started = time.monotonic()
        assert smtp.noop()[0] == 250
        assert time.monotonic() - started >= 0.3
        assert smtp.rset() == (451, b"4.3.0 Not now")
        assert smtp.rset()[0] == 250  # fired once
        assert smtp.quit() == (500, b"5.5.1 Not at all")
    assert [fault.at for fault in server.fired_faults] == ["NOOP", "RSET", "QUIT"]


def test_faults_at_construction_and_reset() -> None:
    fault = Fault(at="RCPT", reply="550 5.1.1 Unknown", times=None)
    with SinkServer(faults=[fault]) as sink:
        assert sink.pending_faults == [fault]
        with client(sink) as smtp, pytest.raises(smtpx.SMTPRecipientsRefused):
            smtp.sendmail(SENDER, ["bob@example.org"], BODY)
        sink.reset()
        assert sink.pending_faults == sink.fired_faults == []
        with client(sink) as smtp:
            assert smtp.sendmail(SENDER, ["bob@example.org"], BODY) == {}
        assert len(sink.messages) == 1
        sink.clear_faults()


def test_stop_during_a_slow_reply_does_not_hang() -> None:
    sink = SinkServer(faults=[Fault(at="DATA", delay=MAX_DELAY)])
    sink.start()
    smtp = client(sink, timeout=TIMEOUT)
    try:
        smtp.mail(SENDER)
        smtp.rcpt("bob@example.org")
        smtp.putcmd("data")
        time.sleep(0.1)  # the server is now sleeping before its reply
        started = time.monotonic()
        sink.stop()
        assert time.monotonic() - started < 5
        assert sink_threads() == []
    finally:
        smtp.close()


# -- LMTP ------------------------------------------------------------------------------


def test_lmtp_content_reply_for_each_recipient() -> None:
    with SinkServer(lmtp=True) as sink:
        sink.fault(Fault(at="CONTENT", reply="250 2.1.5 Delivered to the test inbox"))
        with smtpx.connect(sink.url, policy="compat", timeout=TIMEOUT) as smtp:
            result = smtp.deliver(BODY, SENDER, ["bob@example.org", "carol@example.org"])
        assert [(r.code, r.text) for r in result.recipients] == [
            (250, "2.1.5 Delivered to the test inbox")
        ] * 2
        [message] = sink.wait_for_messages(1)
        assert message.rcpt_tos == ("bob@example.org", "carol@example.org")


def test_lmtp_drop_after_the_content() -> None:
    with SinkServer(lmtp=True, faults=[Fault(at="CONTENT", drop=True)]) as sink:
        with (
            smtpx.connect(sink.url, policy="compat", timeout=TIMEOUT) as smtp,
            pytest.raises(smtpx.SMTPOutcomeUnknown),
        ):
            smtp.deliver(BODY, SENDER, ["bob@example.org", "carol@example.org"])
        assert sink.messages == []


def test_lmtp_lhlo_refused() -> None:
    with SinkServer(lmtp=True, faults=[Fault(at="LHLO", reply="421 4.3.2 Going down")]) as sink:
        with smtpx.LMTP(sink.host, sink.port, "client.example", timeout=TIMEOUT) as smtp:
            assert smtp.ehlo() == (421, b"4.3.2 Going down")  # LMTP's ehlo() sends LHLO
            with pytest.raises(smtpx.SMTPServerDisconnected):
                smtp.noop()
        assert [fault.at for fault in sink.fired_faults] == ["LHLO"]


# -- the asyncio client -----------------------------------------------------------------


def test_async_421_at_the_greeting(server: SinkServer) -> None:
    server.fault(Fault(at="GREETING", reply="421 4.3.2 Service not available"))

    async def main() -> None:
        async with smtpx.AsyncSMTP(server.host, server.port, timeout=TIMEOUT):
            pass

    with pytest.raises(smtpx.SMTPConnectError) as info:
        asyncio.run(main())
    assert info.value.smtp_code == 421


def test_async_deliver_with_a_deferred_recipient_and_a_drop(server: SinkServer) -> None:
    server.fault(
        Fault(at="RCPT", nth=2, reply=TOO_MANY),
        Fault(at="CONTENT", nth=2, drop=True),
    )

    async def main() -> tuple[smtpx.SendResult, BaseException]:
        async with smtpx.AsyncSMTP(server.host, server.port, timeout=TIMEOUT) as smtp:
            first = await smtp.deliver(BODY, SENDER, ["bob@example.org", "carol@example.org"])
            try:
                await smtp.deliver(BODY, SENDER, ["bob@example.org"])
            except smtpx.SMTPException as exc:
                return first, exc
        raise AssertionError("the second message should have been cut")

    first, error = asyncio.run(main())
    assert [r.status for r in first.recipients] == ["accepted", "deferred"]
    assert isinstance(error, smtpx.SMTPOutcomeUnknown)
    assert len(server.messages) == 1


def test_async_batch_closed_after_two(auth_server: SinkServer) -> None:
    auth_server.fault(Fault.close_after(2))

    async def main() -> list[smtpx.SendResult | Exception]:
        smtp = await smtpx.aconnect(
            auth_server.url, context=auth_server.client_context(), timeout=TIMEOUT
        )
        async with smtp:
            return await smtp.deliver_many(batch(3))

    entries = asyncio.run(main())
    assert [type(entry) for entry in entries[:2]] == [smtpx.SendResult] * 2
    assert isinstance(entries[2], smtpx.SMTPNotAttempted)  # the 421 to its MAIL
    assert [m.auth_login for m in auth_server.wait_for_messages(2)] == ["user@example.org"] * 2
