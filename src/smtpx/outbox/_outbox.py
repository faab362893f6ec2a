"""``Outbox``: put messages in a durable queue; workers send them and record every
attempt.  See ``docs/outbox.md`` for the guarantees and the state diagram."""

from __future__ import annotations

import email.message
import email.utils
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from .._exceptions import SMTPNotAttempted
from .._message import envelope_from_headers, flatten
from .._results import Recipient
from ._classify import Fate, Verdict, classify
from ._policy import RetryPolicy
from ._senders import (
    AsyncConnectionSender,
    AsyncSendBatch,
    ConnectionSender,
    Entry,
    SendBatch,
)
from ._states import Event
from ._store import Claimed, NewMessage, Store, StoredRecipient

__all__ = ["AttemptInfo", "MessageInfo", "Outbox", "RecipientInfo", "RunReport"]

_FORBIDDEN = re.compile(r"[\r\n\0]")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# How many claimed messages are marked "sending" in one commit as the seam pulls them:
# one fsync per eight messages instead of one per message.  A worker killed in between
# leaves at most this many unsent messages held as outcome unknown.
MARK_AHEAD = 8


@dataclass(frozen=True, slots=True)
class RecipientInfo:
    address: str
    state: str
    failures: int
    next_attempt: float | None
    code: int | None
    enhanced: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    number: int
    started: float | None
    finished: float
    outcome: str
    code: int | None
    text: str | None
    recipients: str  # JSON: address, event, code, enhanced, text per recipient


@dataclass(frozen=True, slots=True)
class MessageInfo:
    id: int
    key: str | None
    message_id: str
    sender: str
    state: str
    priority: int
    created: float
    expires: float
    next_attempt: float | None
    attempts: int
    queue_id: str | None
    recipients: tuple[RecipientInfo, ...] = ()
    history: tuple[AttemptInfo, ...] = ()


@dataclass
class RunReport:
    """What one ``run``/``arun`` did: batches, message attempts, recipients by new state."""

    batches: int = 0
    attempts: int = 0
    recipients: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def add(self, tally: dict[str, int]) -> None:
        for state, count in tally.items():
            self.recipients[state] = self.recipients.get(state, 0) + count


def _check_address(address: str, what: str) -> str:
    if not isinstance(address, str):
        raise TypeError(f"{what} must be a str, not {type(address).__name__}")
    if _FORBIDDEN.search(address):
        raise ValueError(f"{what} contains CR, LF or NUL: {address!r}")
    return address


def _recipients(recipients: Any) -> tuple[StoredRecipient, ...]:
    if isinstance(recipients, (str, Recipient)):
        recipients = [recipients]
    stored = []
    for idx, r in enumerate(recipients):
        if isinstance(r, Recipient):
            _check_address(r.address, "a recipient")
            if r.orcpt is not None:
                _check_address(r.orcpt, "ORCPT")
            notify = None if r.notify is None else ",".join(r.notify)
            stored.append(StoredRecipient(idx, r.address, notify, r.orcpt))
        else:
            stored.append(StoredRecipient(idx, _check_address(r, "a recipient"), None, None))
    if not stored:
        raise ValueError("a message needs at least one recipient")
    return tuple(stored)


def _domain(sender: str) -> str:
    domain = sender.rpartition("@")[2]
    return domain if domain and domain.isascii() and "@" in sender else "smtpx.outbox"


def prepare(
    message: Any,
    sender: str | None,
    recipients: Any,
    *,
    key: str | None,
    priority: int,
    not_before: float | None,
) -> NewMessage:
    """The bytes every attempt will send, with a Message-ID that never changes."""
    if key is not None and not isinstance(key, str):
        raise TypeError("key must be a str")
    if isinstance(message, email.message.Message):
        sender, recipients = envelope_from_headers(message, sender, recipients)
        addresses = _recipients(recipients)
        _check_address(sender, "the sender")
        message_id = message["Message-ID"]
        if message_id is None:
            # A copy: the caller's object is theirs.  The id goes into the stored bytes,
            # so every attempt (and every server's duplicate check) sees the same one.
            message = _copy(message)
            message_id = email.utils.make_msgid(domain=_domain(sender))
            message["Message-ID"] = message_id
        utf8 = not all(a.address.isascii() for a in addresses) or not sender.isascii()
        content = flatten(message, utf8=utf8)
        message_id = str(message_id).strip()
    elif isinstance(message, (bytes, bytearray, memoryview, str)):
        if sender is None or recipients is None:
            raise ValueError("sender and recipients are needed unless message is a Message")
        _check_address(sender, "the sender")
        addresses = _recipients(recipients)
        content = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        end = _HEADER_END.search(content)
        headers = content if end is None else content[: end.start() + 1]
        found = _MESSAGE_ID.search(headers)
        if found is None:
            message_id = email.utils.make_msgid(domain=_domain(sender))
            content = b"Message-ID: " + message_id.encode("ascii") + b"\r\n" + content
        else:
            line = headers[found.end() :].split(b"\n", 1)[0]
            message_id = line.strip().decode("utf-8", "replace")
    else:
        raise TypeError(
            "the outbox stores an email.message.Message, bytes or str, "
            f"not {type(message).__name__}"
        )
    return NewMessage(content, message_id, sender, addresses, key, int(priority), not_before)


def _copy(message: email.message.Message) -> email.message.Message:
    import copy

    return copy.deepcopy(message)


def _path(path_or_url: str | os.PathLike[str]) -> str:
    text = os.fspath(path_or_url)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://") :]
        if not rest.startswith("/"):
            raise ValueError(f"use sqlite:///path (an absolute path): {text!r}")
        return rest
    if "://" in text:
        raise ValueError(f"the outbox stores into SQLite: a path or sqlite:///path, not {text!r}")
    return text


class Outbox:
    """A durable queue of messages in one SQLite file, and the workers that send it.

    *path_or_url*: a file path or ``sqlite:///absolute/path``.  *policy*: the retry
    schedule, lifetime and outcome-unknown rule (``RetryPolicy``).  *clock* (seconds, as
    ``time.time``) and *rng* are for tests.

    >>> from smtpx.outbox import Outbox
    >>> outbox = Outbox("/var/spool/myapp/outbox.db")  # doctest: +SKIP
    >>> outbox.put(message, key="reset-42")  # doctest: +SKIP
    1
    >>> outbox.run(url="smtp+starttls://mail.example.org", username="app", password="pw")
    ... # doctest: +SKIP
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike[str],
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        busy_timeout: float = 30.0,
    ) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._store = Store(_path(path_or_url), timeout=busy_timeout)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Outbox {self._store.path!r}>"

    # ------------------------------------------------------------- putting

    def put(
        self,
        message: Any,
        sender: str | None = None,
        recipients: Any = None,
        *,
        not_before: float | None = None,
        priority: int = 0,
        key: str | None = None,
    ) -> int:
        """Store *message*; returns its id once it is on disk.

        *message*: an ``email.message.Message`` (envelope from its headers unless given,
        Bcc not sent), or ``bytes``/``str`` with *sender* and *recipients* (addresses or
        ``smtpx.Recipient``).  A Message-ID is added when there is none, and the stored
        bytes are what every attempt sends.  *not_before*: a time (``time.time()``
        scale) before which it is not sent; *priority*: higher goes first; *key*: the
        same key twice stores one message (the second ``put`` returns the first id).

        >>> outbox.put(b"Subject: hi\\r\\n\\r\\nhello\\r\\n", "a@example.org", ["b@example.org"])
        ... # doctest: +SKIP
        """
        return self.put_many(
            [(message, sender, recipients)],
            not_before=not_before,
            priority=priority,
            keys=[key],
        )[0]

    def put_many(
        self,
        items: Iterable[Any],
        *,
        not_before: float | None = None,
        priority: int = 0,
        keys: Iterable[str | None] | None = None,
    ) -> list[int]:
        """Store many messages in one transaction (one fsync); returns their ids.

        *items*: messages, or ``(message, sender, recipients)`` tuples; *keys*: one per
        item (or None), for idempotent bulk puts.  All or nothing: a bad item stores none.
        """
        key_iter = iter(keys) if keys is not None else None
        prepared = []
        for item in items:
            key = next(key_iter, None) if key_iter is not None else None
            if isinstance(item, tuple):
                if len(item) != 3:
                    raise ValueError("an item is a message or a (message, sender, recipients)")
                message, sender, recipients = item
            else:
                message, sender, recipients = item, None, None
            prepared.append(
                prepare(
                    message, sender, recipients, key=key, priority=priority, not_before=not_before
                )
            )
        return self._store.put_many(prepared, self._clock(), self.policy.max_lifetime)

    # ------------------------------------------------------------- workers

    def run(
        self,
        send_batch: SendBatch | None = None,
        *,
        url: str | None = None,
        batch_size: int = 50,
        duration: float | None = None,
        wait_deferred: bool = False,
        lease: float = 300.0,
        poll: float = 1.0,
        **connect_options: Any,
    ) -> RunReport:
        """Send what is due, in batches, until nothing is due (or *duration* seconds).

        *send_batch*: the sending seam (see ``_senders``); by default one connection from
        ``smtpx.connect(url, **connect_options)``.  *wait_deferred*: keep running while
        messages are deferred or in flight elsewhere, sleeping until the next is due
        (bounded by *duration*).  *lease*: seconds a claimed batch stays ours; renewed as
        the batch goes.  Safe to run in several processes at once.
        """
        _check_run(batch_size, lease, duration)
        owned = send_batch is None
        if send_batch is None:
            if url is None:
                raise ValueError("give a url (or a send_batch)")
            send_batch = ConnectionSender(url, **connect_options)
        report = RunReport()
        work = self._work(report, batch_size, duration, wait_deferred, lease, poll)
        try:
            step = _resume(work, None)
            while step is not None:
                result: _Sent = None
                if isinstance(step, float):
                    time.sleep(step)
                else:
                    try:
                        result = (send_batch(step), None)
                    except Exception as exc:
                        result = ([], exc)
                step = _resume(work, result)
        finally:
            work.close()
            if owned and isinstance(send_batch, ConnectionSender):
                send_batch.close()
        return report

    async def arun(
        self,
        send_batch: AsyncSendBatch | None = None,
        *,
        url: str | None = None,
        batch_size: int = 50,
        duration: float | None = None,
        wait_deferred: bool = False,
        lease: float = 300.0,
        poll: float = 1.0,
        **connect_options: Any,
    ) -> RunReport:
        """``run`` for asyncio: *send_batch* is a coroutine function (default: one
        ``smtpx.aconnect`` connection).  The store's own work (a few milliseconds of
        SQLite per batch) runs on the loop's thread."""
        import asyncio

        _check_run(batch_size, lease, duration)
        owned = send_batch is None
        if send_batch is None:
            if url is None:
                raise ValueError("give a url (or a send_batch)")
            send_batch = AsyncConnectionSender(url, **connect_options)
        report = RunReport()
        work = self._work(report, batch_size, duration, wait_deferred, lease, poll)
        try:
            step = _resume(work, None)
            while step is not None:
                result: _Sent = None
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    try:
                        result = (await send_batch(step), None)
                    except Exception as exc:
                        result = ([], exc)
                step = _resume(work, result)
        finally:
            work.close()
            if owned and isinstance(send_batch, AsyncConnectionSender):
                await send_batch.close()
        return report

    def _work(
        self,
        report: RunReport,
        batch_size: int,
        duration: float | None,
        wait_deferred: bool,
        lease: float,
        poll: float,
    ) -> Generator[float | Iterator[Any], _Sent, None]:
        """The worker's loop, written once for ``run`` and ``arun``: it yields a batch to
        send (an iterator of items; it is sent back the entries, or the error) or seconds
        to sleep, and returns when nothing is due or *duration* is up."""
        started = time.monotonic()
        try:
            while True:
                claimed, token = self._claim(batch_size, lease)
                if claimed:
                    feed = _Feed(self, token, claimed, lease)
                    sent = yield iter(feed)
                    assert sent is not None
                    entries, error = sent
                    self._record(report, token, claimed, feed, entries, error)
                    if duration is None or time.monotonic() - started < duration:
                        continue
                    return
                wait = self._idle_wait(wait_deferred, poll, started, duration)
                if wait is None:
                    return
                yield float(wait)
        finally:
            report.elapsed = time.monotonic() - started

    def _send_ids(self, ids: Sequence[int], send_batch: SendBatch, lease: float) -> RunReport:
        """One attempt at those of *ids* that are due now, through *send_batch*, with the
        same claim, "sending" mark and record as ``run`` (the Celery adapter's task)."""
        _check_run(max(len(ids), 1), lease, None)
        report = RunReport()
        started = time.monotonic()
        now = self._clock()
        self._store.recover(now, self.policy)
        token = uuid.uuid4().hex
        claimed = self._store.claim(token, now, len(ids), lease, ids=ids) if ids else []
        if claimed:
            feed = _Feed(self, token, claimed, lease)
            try:
                entries: list[Entry] = send_batch(iter(feed))
                error: BaseException | None = None
            except Exception as exc:
                entries, error = [], exc
            self._record(report, token, claimed, feed, entries, error)
        report.elapsed = time.monotonic() - started
        return report

    def _claim(self, batch_size: int, lease: float) -> tuple[list[Claimed], str]:
        now = self._clock()
        self._store.recover(now, self.policy)
        token = uuid.uuid4().hex
        return self._store.claim(token, now, batch_size, lease), token

    def _idle_wait(
        self, wait_deferred: bool, poll: float, started: float, duration: float | None
    ) -> float | None:
        """Seconds to sleep before looking again, or None to stop."""
        if not wait_deferred:
            return None
        left = None if duration is None else duration - (time.monotonic() - started)
        if left is not None and left <= 0:
            return None
        due = self._store.next_due()
        if due is None and not self._store.in_flight():
            return None
        wait = poll if due is None else min(poll, max(0.0, due - self._clock()))
        return wait if left is None else min(wait, left)

    def _record(
        self,
        report: RunReport,
        token: str,
        claimed: list[Claimed],
        feed: _Feed,
        entries: list[Entry],
        error: BaseException | None,
    ) -> None:
        results = []
        sent = iter(entries)
        resend = self.policy.resend_unknown
        for message in claimed:
            count = len(message.recipients)
            if message.id in feed.pulled:
                entry = next(sent, None)
                if entry is None:
                    # Pulled and never reported: whether it went is not known.
                    reason = error or RuntimeError("the seam returned no entry for it")
                    verdict = classify(reason, count, resend)
                else:
                    verdict = classify(entry, count, resend)
                queue_id = getattr(entry, "queue_id", None)
            else:
                why = SMTPNotAttempted(f"not sent: {error!r}" if error else "not sent")
                verdict = Verdict(
                    "not_attempted",
                    None,
                    str(why),
                    tuple(Fate(Event.NOT_ATTEMPTED, text=str(why)) for _ in range(count)),
                )
                queue_id = None
            results.append((message, verdict, queue_id))
        tally = self._store.record(
            token, results, feed.started, self._clock(), self.policy, self._rng
        )
        report.batches += 1
        report.attempts += len(feed.pulled)
        report.add(tally)

    # ------------------------------------------------------------- control

    def counts(self) -> dict[str, int]:
        """Messages by state, e.g. ``{"queued": 10, "delivered": 990}``."""
        return self._store.counts()

    def recipient_counts(self) -> dict[str, int]:
        """Recipients by state."""
        return self._store.recipient_counts()

    def list(
        self, state: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[MessageInfo]:
        """Messages (newest first), optionally in one *state*, without their details."""
        sql = (
            "SELECT id, key, message_id, sender, state, priority, created, expires,"
            " next_attempt, attempts, queue_id FROM messages"
        )
        params: list[object] = []
        if state is not None:
            sql += " WHERE state = ?"
            params.append(state)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [MessageInfo(*row) for row in self._store.query(sql, params)]

    def show(self, message: int) -> MessageInfo:
        """One message with its recipients and every attempt; KeyError if unknown."""
        rows = self._store.query(
            "SELECT id, key, message_id, sender, state, priority, created, expires,"
            " next_attempt, attempts, queue_id FROM messages WHERE id = ?",
            [message],
        )
        if not rows:
            raise KeyError(message)
        recipients = tuple(
            RecipientInfo(*row)
            for row in self._store.query(
                "SELECT address, state, failures, next_attempt, code, enhanced, text"
                " FROM recipients WHERE message = ? ORDER BY idx",
                [message],
            )
        )
        history = tuple(
            AttemptInfo(*row)
            for row in self._store.query(
                "SELECT number, started, finished, outcome, code, text, recipients"
                " FROM attempts WHERE message = ? ORDER BY id",
                [message],
            )
        )
        return MessageInfo(*rows[0], recipients=recipients, history=history)  # type: ignore[misc]

    def content(self, message: int) -> bytes:
        """The stored bytes of a message (what every attempt sends)."""
        rows = self._store.query("SELECT content FROM messages WHERE id = ?", [message])
        if not rows:
            raise KeyError(message)
        return bytes(rows[0][0])

    def retry(self, messages: Sequence[int] | None = None, *, unknown: bool = False) -> int:
        """Make deferred recipients due now (all messages, or *messages*); with *unknown*
        also those whose outcome was unknown (they may get a second copy).  Returns how
        many messages changed."""
        return self._store.retry(messages, self._clock(), unknown)

    def cancel(self, messages: Sequence[int]) -> int:
        """Cancel what is still to send of *messages* (not what a worker holds now)."""
        return self._store.cancel(messages, self._clock())

    def purge(self, older_than_days: float, states: Sequence[str] = ("delivered",)) -> int:
        """Delete messages in *states* (default: delivered) unchanged for that many days."""
        return self._store.purge(self._clock() - older_than_days * 86400.0, states)

    def recover(self) -> int:
        """Release expired leases and expire old messages now (workers do it anyway)."""
        return self._store.recover(self._clock(), self.policy)


def _check_run(batch_size: int, lease: float, duration: float | None) -> None:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if lease <= 0:
        raise ValueError("lease must be positive")
    if duration is not None and duration < 0:
        raise ValueError("duration must not be negative")


class _Feed:
    """The claimed batch as the seam pulls it: each message is marked "sending" in the
    store (with a few after it, ``MARK_AHEAD``) before it is handed over."""

    def __init__(self, outbox: Outbox, token: str, claimed: list[Claimed], lease: float) -> None:
        self._outbox = outbox
        self._token = token
        self._claimed = [m for m in claimed if m.recipients]
        self._lease = lease
        self.pulled: set[int] = set()
        self.started = outbox._clock()

    def __iter__(self) -> Iterator[tuple[bytes, str, list[str | Recipient]]]:
        marked: set[int] = set()
        held: set[int] = set()
        store = self._outbox._store
        for index, message in enumerate(self._claimed):
            if message.id not in marked:
                ahead = [m.id for m in self._claimed[index : index + MARK_AHEAD]]
                held |= store.mark_sending(self._token, ahead, self._outbox._clock(), self._lease)
                marked.update(ahead)
            if message.id not in held:
                continue  # our lease was lost: someone else decides about it now
            self.pulled.add(message.id)
            yield message.content, message.sender, [_recipient(r) for r in message.recipients]


def _recipient(r: StoredRecipient) -> str | Recipient:
    if r.notify is None and r.orcpt is None:
        return r.address
    return Recipient(r.address, None if r.notify is None else r.notify.split(","), r.orcpt)


#: What a worker's loop is sent back: a batch's entries or the error that stopped it;
#: None after a sleep.
_Sent = tuple[list[Entry], BaseException | None] | None


def _resume(
    work: Generator[float | Iterator[Any], _Sent, None], sent: _Sent
) -> float | Iterator[Any] | None:
    """The worker loop's next step, or None when it is done."""
    try:
        return next(work) if sent is None else work.send(sent)
    except StopIteration:
        return None
