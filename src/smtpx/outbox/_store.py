"""The outbox's one SQLite file: messages, their recipients, and every attempt.

Durability (``PRAGMA synchronous=FULL`` in WAL mode): every commit, the ``put`` that
returns an id above all, waits for the WAL to reach the disk.  WAL with ``NORMAL`` would
survive a killed process but may lose the last commits on a power cut or an OS crash, and
a message the application was told is stored would vanish; one fsync per commit (under a
millisecond here, and ``put_many`` pays it once per batch) is the price of "safe on disk".

Every writing transaction starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock
first, so two processes claiming at once are serialized and a message is claimed by one
of them only (the claim is an ``UPDATE ... RETURNING`` inside that transaction).

Recipient states change only through ``_states.next_state`` (the table); the message's
state column is derived from its recipients' after each change, so a query by state is
one indexed read.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ._classify import Verdict
from ._policy import RetryPolicy
from ._states import PENDING, Event, State, message_state, next_state

__all__ = ["Claimed", "NewMessage", "Store", "StoredRecipient"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    key TEXT UNIQUE,
    message_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    content BLOB NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    state TEXT NOT NULL,
    next_attempt REAL,
    claim TEXT,
    lease_until REAL,
    sending INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    queue_id TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (priority DESC, next_attempt)
    WHERE state IN ('queued', 'deferred');
CREATE INDEX IF NOT EXISTS messages_lease ON messages (lease_until) WHERE state = 'in_flight';
CREATE INDEX IF NOT EXISTS messages_state ON messages (state, updated);
CREATE TABLE IF NOT EXISTS recipients (
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    address TEXT NOT NULL,
    notify TEXT,
    orcpt TEXT,
    state TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,
    code INTEGER,
    enhanced TEXT,
    text TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (message, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    claim TEXT,
    started REAL,
    finished REAL NOT NULL,
    outcome TEXT NOT NULL,
    code INTEGER,
    text TEXT,
    recipients TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_message ON attempts (message);
"""

# How long a connection waits for another process's write lock before giving up with
# "database is locked".  Writes take milliseconds; the bound turns a stuck peer into an
# error rather than a hang.
DEFAULT_BUSY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class StoredRecipient:
    idx: int
    address: str
    notify: str | None
    orcpt: str | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message ready to store: content as the bytes every attempt will send."""

    content: bytes
    message_id: str
    sender: str
    recipients: tuple[StoredRecipient, ...]
    key: str | None
    priority: int
    not_before: float | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message a worker holds under its lease: only its due recipients are sent."""

    id: int
    attempt: int
    sender: str
    content: bytes
    recipients: tuple[StoredRecipient, ...]


class Store:
    """The SQLite file: one connection, used from the thread that opened it."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_BUSY_TIMEOUT):
        self.path = os.fspath(path)
        # isolation_level=None: transactions are begun here, explicitly, as IMMEDIATE.
        self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---------------------------------------------------------------- putting

    def put_many(self, messages: Iterable[NewMessage], now: float, lifetime: float) -> list[int]:
        """Store *messages* in one transaction; a known key gives the stored message's id."""
        ids: list[int] = []
        with self.transaction() as db:
            for m in messages:
                if m.key is not None:
                    found = db.execute("SELECT id FROM messages WHERE key = ?", (m.key,)).fetchone()
                    if found is not None:
                        ids.append(found[0])
                        continue
                due = now if m.not_before is None else max(now, m.not_before)
                cursor = db.execute(
                    "INSERT INTO messages (key, message_id, sender, content, priority, created,"
                    " expires, state, next_attempt, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        m.key,
                        m.message_id,
                        m.sender,
                        m.content,
                        m.priority,
                        now,
                        now + lifetime,
                        State.QUEUED.value,
                        due,
                        now,
                    ),
                )
                message = cursor.lastrowid
                assert message is not None
                db.executemany(
                    "INSERT INTO recipients (message, idx, address, notify, orcpt, state,"
                    " next_attempt, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (message, r.idx, r.address, r.notify, r.orcpt, State.QUEUED.value, due, now)
                        for r in m.recipients
                    ],
                )
                ids.append(message)
        return ids

    # ---------------------------------------------------------------- workers

    def claim(
        self,
        token: str,
        now: float,
        limit: int,
        lease: float,
        ids: Sequence[int] | None = None,
    ) -> list[Claimed]:
        """Claim up to *limit* due messages for *token*, until ``now + lease``; with
        *ids*, only among those (the Celery adapter's task claims its own message)."""
        only, params = "", tuple[int, ...]()
        if ids is not None:
            # Only "?" marks are formatted into the statement.
            only, params = f" AND id IN ({','.join('?' * len(ids))})", tuple(ids)
        sql = (
            "UPDATE messages SET state = 'in_flight', claim = ?, lease_until = ?,"  # noqa: S608
            " sending = 0, attempts = attempts + 1, updated = ?"
            " WHERE id IN (SELECT id FROM messages WHERE state IN ('queued', 'deferred')"
            f" AND next_attempt <= ?{only} ORDER BY priority DESC, next_attempt, id LIMIT ?)"
            " RETURNING id, attempts, sender, content, priority, next_attempt"
        )
        with self.transaction() as db:
            rows = db.execute(sql, (token, now + lease, now, now, *params, limit)).fetchall()
            claimed = []
            # RETURNING gives no order: send in the order the claim chose.
            rows.sort(key=lambda row: (-row[4], row[5], row[0]))
            for message, attempt, sender, content, _, _ in rows:
                due = []
                for idx, address, notify, orcpt, state, at in db.execute(
                    "SELECT idx, address, notify, orcpt, state, next_attempt FROM recipients"
                    " WHERE message = ? ORDER BY idx",
                    (message,),
                ):
                    if State(state) in PENDING and at is not None and at <= now:
                        self._move(db, message, idx, State(state), Event.CLAIM, now)
                        due.append(StoredRecipient(idx, address, notify, orcpt))
                claimed.append(Claimed(message, attempt, sender, content, tuple(due)))
            return claimed

    def mark_sending(self, token: str, ids: Sequence[int], now: float, lease: float) -> set[int]:
        """Record that the content of *ids* may go from now on, and renew the claim's
        lease; returns the ids still held by *token* (a lost lease is not ours to send)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE messages SET lease_until = ? WHERE claim = ? AND state = 'in_flight'",
                (now + lease, token),
            )
            # Only "?" marks are formatted into the statements here and below.
            marks = ",".join("?" * len(ids))
            sql = f"UPDATE messages SET sending = 1 WHERE claim = ? AND id IN ({marks})"  # noqa: S608
            rows = db.execute(
                sql + " AND state = 'in_flight' RETURNING id",
                (token, *ids),
            ).fetchall()
        return {row[0] for row in rows}

    def record(
        self,
        token: str,
        results: Sequence[tuple[Claimed, Verdict, str | None]],
        started: float,
        now: float,
        policy: RetryPolicy,
        rng: random.Random,
    ) -> dict[str, int]:
        """Record an attempt for each claimed message: its recipients' new states, the
        replies, the next attempt time.  Returns how many recipients went to each state.
        A message whose lease was lost meanwhile is recorded as a late attempt only."""
        tally: dict[str, int] = {}
        with self.transaction() as db:
            for claimed, verdict, queue_id in results:
                row = db.execute(
                    "SELECT claim, expires FROM messages WHERE id = ?", (claimed.id,)
                ).fetchone()
                if row is None:  # purged meanwhile
                    continue
                holder, expires = row
                details: list[dict[str, object]] = []
                for recipient, fate in zip(claimed.recipients, verdict.fates, strict=True):
                    details.append(
                        {
                            "address": recipient.address,
                            "event": fate.event.value,
                            "code": fate.code,
                            "enhanced": fate.enhanced,
                            "text": fate.text,
                        }
                    )
                    if holder != token:
                        continue
                    state = self._move(
                        db, claimed.id, recipient.idx, State.IN_FLIGHT, fate.event, now, fate
                    )
                    if state is State.DEFERRED:
                        self._defer(db, claimed.id, recipient.idx, fate, now, expires, policy, rng)
                    tally[state.value] = tally.get(state.value, 0) + 1
                outcome = verdict.outcome if holder == token else f"late:{verdict.outcome}"
                self._attempt(
                    db,
                    claimed.id,
                    claimed.attempt,
                    token,
                    started,
                    now,
                    outcome,
                    verdict.code,
                    verdict.text,
                    details,
                )
                if holder == token:
                    self._settle(db, claimed.id, now, queue_id)
        return tally

    def recover(self, now: float, policy: RetryPolicy) -> int:
        """Expired leases and lifetimes: returns how many messages changed.

        A lease expires when its worker died or hung.  If the worker had not yet marked
        the message as sending, nothing can have reached the server: back to the queue.
        If it had, the content may have been delivered: outcome unknown (or deferred,
        when the policy resends).
        """
        changed = 0
        with self.transaction() as db:
            lost = db.execute(
                "SELECT id, sending, attempts, claim FROM messages"
                " WHERE state = 'in_flight' AND lease_until < ?",
                (now,),
            ).fetchall()
            for message, sending, attempt, claim in lost:
                if not sending:
                    event = Event.LEASE_LOST
                elif policy.resend_unknown:
                    event = Event.UNKNOWN_RESEND
                else:
                    event = Event.LEASE_LOST_SENDING
                details: list[dict[str, object]] = []
                for idx, address in db.execute(
                    "SELECT idx, address FROM recipients WHERE message = ? AND state = ?",
                    (message, State.IN_FLIGHT.value),
                ).fetchall():
                    self._move(db, message, idx, State.IN_FLIGHT, event, now)
                    db.execute(
                        "UPDATE recipients SET next_attempt = ? WHERE message = ? AND idx = ?",
                        (now, message, idx),
                    )
                    details.append({"address": address, "event": event.value})
                self._attempt(
                    db,
                    message,
                    attempt,
                    claim,
                    None,
                    now,
                    "lease_expired",
                    None,
                    "the worker's lease expired" + (" while sending" if sending else ""),
                    details,
                )
                self._settle(db, message, now, None)
                changed += 1
            expired = db.execute(
                "SELECT id FROM messages WHERE state IN ('queued', 'deferred') AND expires <= ?",
                (now,),
            ).fetchall()
            for (message,) in expired:
                self._change_pending(db, message, Event.EXPIRE, now)
                changed += 1
        return changed

    # ---------------------------------------------------------------- control

    def retry(self, ids: Sequence[int] | None, now: float, unknown: bool) -> int:
        """Make deferred (and with *unknown*, outcome-unknown) recipients due now."""
        states = [State.DEFERRED.value, State.QUEUED.value]
        if unknown:
            states.append(State.OUTCOME_UNKNOWN.value)
        with self.transaction() as db:
            targets = self._targets(db, ids, states)
            for message in targets:
                for idx, state in db.execute(
                    "SELECT idx, state FROM recipients WHERE message = ?", (message,)
                ).fetchall():
                    if state in states:
                        self._move(db, message, idx, State(state), Event.RETRY, now)
                        db.execute(
                            "UPDATE recipients SET next_attempt = ? WHERE message = ? AND idx = ?",
                            (now, message, idx),
                        )
                self._settle(db, message, now, None)
        return len(targets)

    def cancel(self, ids: Sequence[int], now: float) -> int:
        """Cancel the pending and outcome-unknown recipients of *ids* (not in flight)."""
        states = [State.QUEUED.value, State.DEFERRED.value, State.OUTCOME_UNKNOWN.value]
        with self.transaction() as db:
            targets = self._targets(db, ids, states)
            for message in targets:
                for idx, state in db.execute(
                    "SELECT idx, state FROM recipients WHERE message = ?", (message,)
                ).fetchall():
                    if state in states:
                        self._move(db, message, idx, State(state), Event.CANCEL, now)
                self._settle(db, message, now, None)
        return len(targets)

    def purge(self, before: float, states: Sequence[str]) -> int:
        """Delete messages in *states* last changed before *before* (attempts too)."""
        marks = ",".join("?" * len(states))
        with self.transaction() as db:
            cursor = db.execute(
                f"DELETE FROM messages WHERE state IN ({marks}) AND updated < ?",  # noqa: S608
                (*states, before),
            )
            return cursor.rowcount

    # ---------------------------------------------------------------- reading

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM messages GROUP BY state"))

    def recipient_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))

    def next_due(self) -> float | None:
        row = self._db.execute(
            "SELECT min(next_attempt) FROM messages WHERE state IN ('queued', 'deferred')"
        ).fetchone()
        return None if row is None else row[0]

    def in_flight(self) -> int:
        row = self._db.execute("SELECT count(*) FROM messages WHERE state = 'in_flight'").fetchone()
        return int(row[0])

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        self._db.row_factory = sqlite3.Row
        try:
            return self._db.execute(sql, params).fetchall()
        finally:
            self._db.row_factory = None

    # ---------------------------------------------------------------- inside

    @staticmethod
    def _targets(db: sqlite3.Connection, ids: Sequence[int] | None, states: list[str]) -> list[int]:
        marks = ",".join("?" * len(states))
        sql = f"SELECT DISTINCT message FROM recipients WHERE state IN ({marks})"  # noqa: S608
        params: list[object] = list(states)
        if ids is not None:
            sql += f" AND message IN ({','.join('?' * len(ids))})"
            params += list(ids)
        return [row[0] for row in db.execute(sql, params).fetchall()]

    @staticmethod
    def _move(
        db: sqlite3.Connection,
        message: int,
        idx: int,
        state: State,
        event: Event,
        now: float,
        fate: object = None,
    ) -> State:
        """One recipient's transition, checked against the table and the stored state."""
        new = next_state(state, event)
        code = getattr(fate, "code", None)
        enhanced = getattr(fate, "enhanced", None)
        text = getattr(fate, "text", None)
        cursor = db.execute(
            "UPDATE recipients SET state = ?, updated = ?,"
            " code = coalesce(?, code), enhanced = coalesce(?, enhanced),"
            " text = coalesce(?, text) WHERE message = ? AND idx = ? AND state = ?",
            (new.value, now, code, enhanced, text or None, message, idx, state.value),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"recipient {message}/{idx} is not {state.value} in the store")
        return new

    @staticmethod
    def _defer(
        db: sqlite3.Connection,
        message: int,
        idx: int,
        fate: object,
        now: float,
        expires: float,
        policy: RetryPolicy,
        rng: random.Random,
    ) -> None:
        (failures,) = db.execute(
            "UPDATE recipients SET failures = failures + 1 WHERE message = ? AND idx = ?"
            " RETURNING failures",
            (message, idx),
        ).fetchone()
        delay = policy.delay(
            failures,
            code=getattr(fate, "code", None),
            enhanced=getattr(fate, "enhanced", None),
            rng=rng,
        )
        # Never later than the end of its life: the expiry then happens on time.
        db.execute(
            "UPDATE recipients SET next_attempt = ? WHERE message = ? AND idx = ?",
            (min(now + delay, expires), message, idx),
        )

    def _change_pending(
        self, db: sqlite3.Connection, message: int, event: Event, now: float
    ) -> None:
        for idx, state in db.execute(
            "SELECT idx, state FROM recipients WHERE message = ?", (message,)
        ).fetchall():
            if State(state) in PENDING:
                self._move(db, message, idx, State(state), event, now)
        self._settle(db, message, now, None)

    @staticmethod
    def _settle(db: sqlite3.Connection, message: int, now: float, queue_id: str | None) -> None:
        """The message's state and next attempt, from its recipients; the claim released."""
        rows = db.execute(
            "SELECT state, next_attempt FROM recipients WHERE message = ?", (message,)
        ).fetchall()
        states = [State(state) for state, _ in rows]
        state = message_state(states)
        due = [at for s, at in rows if State(s) in PENDING and at is not None]
        if state is State.IN_FLIGHT:
            # A worker still holds some recipients (a retry or cancel of the others): its
            # claim and lease stay, or its results would be taken for a lost lease's.
            db.execute(
                "UPDATE messages SET next_attempt = ?, updated = ? WHERE id = ?",
                (min(due) if due else None, now, message),
            )
            return
        db.execute(
            "UPDATE messages SET state = ?, next_attempt = ?, claim = NULL, lease_until = NULL,"
            " sending = 0, updated = ?, queue_id = coalesce(?, queue_id) WHERE id = ?",
            (state.value, min(due) if due else None, now, queue_id, message),
        )

    @staticmethod
    def _attempt(
        db: sqlite3.Connection,
        message: int,
        number: int,
        claim: str | None,
        started: float | None,
        finished: float,
        outcome: str,
        code: int | None,
        text: str,
        recipients: list[dict[str, object]],
    ) -> None:
        db.execute(
            "INSERT INTO attempts (message, number, claim, started, finished, outcome, code,"
            " text, recipients) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message,
                number,
                claim,
                started,
                finished,
                outcome,
                code,
                text,
                json.dumps(recipients, ensure_ascii=False),
            ),
        )
