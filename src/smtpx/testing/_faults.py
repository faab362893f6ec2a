"""Scripted faults for SinkServer: a chosen reply, a cut connection or a slow reply at a
chosen point of the SMTP dialogue.

A ``Fault`` is a frozen description; a ``FaultPlan`` holds the faults of one server and
decides, for each point a connection reaches, which fault (if any) fires there. Counting
(which command this is on the connection, which recipient of the message) is done by the
connection; the plan only matches and keeps score, so it is tested without sockets.

>>> plan = FaultPlan([Fault(at="RCPT", nth=2, reply="452 4.5.3 Too many recipients")])
>>> plan.take("RCPT", Position(count=1, message=1)) is None
True
>>> plan.take("RCPT", Position(count=2, message=1)).code
452
>>> plan.take("RCPT", Position(count=2, message=2)) is None  # fires once by default
True
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MAX_DELAY", "POINTS", "Fault", "FaultPlan", "Position"]

#: Where a fault can fire: the greeting, each command the server implements, and CONTENT,
#: the reply after the message content (after the final ``.``, RFC 5321 section 4.1.1.4).
POINTS = (
    "GREETING",
    "EHLO",
    "HELO",
    "LHLO",
    "STARTTLS",
    "AUTH",
    "MAIL",
    "RCPT",
    "DATA",
    "CONTENT",
    "RSET",
    "NOOP",
    "QUIT",
)
# Points that belong to a mail transaction, where ``message=`` can pick one.
_IN_TRANSACTION = frozenset({"MAIL", "RCPT", "DATA", "CONTENT"})
# Points after which the server always closes: a connection has one greeting, and a
# non-220 greeting ends it (RFC 5321 section 3.1: the client must QUIT, and the sink
# closes for it); QUIT closes by definition (section 4.1.1.10).
_ALWAYS_CLOSE = frozenset({"GREETING", "QUIT"})

#: The longest ``delay`` a fault may have, in seconds. A slow reply exists to test a
#: client's timeouts, which are seconds; a larger number is almost surely a typo (ms for
#: s) that would stall a test run rather than fail it.
MAX_DELAY = 30.0

# A reply line: three digits, then nothing or a space and printable US-ASCII text
# (RFC 5321 section 4.2; the server encodes replies as ASCII without SMTPUTF8).
_REPLY = re.compile(r"([2-5][0-9][0-9])(?: [\x20-\x7e]*)?")


@dataclass(frozen=True, slots=True)
class Fault:
    """What the sink server does wrong, where, and how often.

    Args:
        at: where: ``GREETING``, a command (``EHLO``, ``HELO``, ``LHLO``, ``STARTTLS``,
            ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``, ``RSET``, ``NOOP``, ``QUIT``) or
            ``CONTENT``, the reply after the message content.
        reply: the reply line to send instead of the server's, e.g.
            ``"452 4.5.3 Too many recipients"``. The server then does not carry out
            the command (a refused RCPT adds no recipient). It must be 4xx or 5xx,
            except at ``CONTENT``, where a 2xx reply accepts (and records) the message
            with that text. In LMTP mode a ``CONTENT`` reply is sent once per
            recipient.
        nth: the occurrence at which the fault starts to fire: for ``RCPT`` the Nth
            recipient of a message, for anything else the Nth time that point is
            reached on a connection. Later occurrences match too, while the fault
            has firings left (see ``times``).
        message: fire only in the Nth mail transaction of a connection (counted by
            ``MAIL`` commands); for ``MAIL``, ``RCPT``, ``DATA`` and ``CONTENT``.
        delay: seconds to wait before replying (at most ``MAX_DELAY``). Alone, it
            slows the server's own reply down; with ``reply`` or ``drop`` it comes
            first.
        drop: cut the connection without a reply. At ``CONTENT`` the message has
            been sent but no final reply comes: the outcome is unknown to the client.
        close: close the connection after the reply. The default closes after a
            ``421`` (RFC 5321 section 3.8), at ``GREETING`` and at ``QUIT``.
        times: how many times the fault fires over the server's life, or None for
            every time it matches.

    Example:
        >>> Fault(at="rcpt", nth=2, reply="452 4.5.3 Too many recipients").at
        'RCPT'
        >>> Fault(at="MAIL", reply="421 4.7.0 Try later").closes
        True
        >>> Fault(at="MAIL", reply="250 OK")
        Traceback (most recent call last):
          ...
        ValueError: a fault's reply at MAIL must be 4xx or 5xx, not '250 OK'
    """

    at: str
    reply: str | None = None
    nth: int = 1
    message: int | None = None
    delay: float = 0.0
    drop: bool = False
    close: bool | None = None
    times: int | None = 1

    def __post_init__(self) -> None:
        if not isinstance(self.at, str) or self.at.upper() not in POINTS:
            raise ValueError(f"Fault(at=...) takes one of {', '.join(POINTS)}; got {self.at!r}")
        at = self.at.upper()
        object.__setattr__(self, "at", at)
        _check_count("nth", self.nth)
        if self.message is not None:
            _check_count("message", self.message)
            if at not in _IN_TRANSACTION:
                raise ValueError(f"message= picks a mail transaction; {at} is not part of one")
            if at != "RCPT" and self.nth != 1:
                raise ValueError(f"a message has one {at}: use message= or nth=, not both")
        if at == "GREETING" and self.nth != 1:
            raise ValueError("a connection has one greeting: nth must be 1")
        if self.times is not None:
            _check_count("times", self.times)
        if isinstance(self.delay, bool) or not isinstance(self.delay, int | float):
            raise TypeError(f"delay takes seconds as a number, not {self.delay!r}")
        if not 0 <= self.delay <= MAX_DELAY:
            raise ValueError(f"delay must be between 0 and {MAX_DELAY} seconds: {self.delay!r}")
        if self.reply is not None:
            self._check_reply(self.reply, at)
            if self.drop:
                raise ValueError("a fault either replies or drops the connection, not both")
        elif not self.drop and not self.delay:
            raise ValueError("a fault needs a reply, drop=True or a delay")
        if self.close is not None and (self.drop or self.reply is None):
            raise ValueError("close= applies to a fault's own reply")
        if self.close is False and at in _ALWAYS_CLOSE:
            raise ValueError(f"the server always closes after a fault's reply at {at}")

    @staticmethod
    def _check_reply(reply: str, at: str) -> None:
        # The reply goes on the wire as is: a CR or LF would let a test script a second,
        # unintended reply (or a malformed one) without saying so.
        if not isinstance(reply, str):
            raise TypeError(f"reply takes a str such as '452 4.5.3 Too many recipients': {reply!r}")
        found = _REPLY.fullmatch(reply)
        if found is None:
            raise ValueError(
                "a fault's reply is one line: three digits, then a space and printable "
                f"ASCII text (no CR, LF or NUL): {reply!r}"
            )
        allowed = "245" if at == "CONTENT" else "45"
        if found.group(1)[0] not in allowed:
            codes = "2xx, 4xx or 5xx" if at == "CONTENT" else "4xx or 5xx"
            raise ValueError(f"a fault's reply at {at} must be {codes}, not {reply!r}")

    @property
    def code(self) -> int | None:
        """The reply code, or None for a fault without a reply."""
        return None if self.reply is None else int(self.reply[:3])

    @property
    def closes(self) -> bool:
        """Whether the server closes the connection after this fault's reply."""
        if self.reply is None:
            return False
        if self.close is not None:
            return self.close
        return self.at in _ALWAYS_CLOSE or self.code == 421

    @classmethod
    def close_after(
        cls,
        messages: int,
        reply: str = "421 4.7.0 Too many messages on this connection, closing",
        *,
        times: int | None = 1,
    ) -> Fault:
        """Answer the MAIL of message ``messages + 1`` with ``reply`` and close.

        Example:
            >>> fault = Fault.close_after(2)
            >>> fault.at, fault.nth, fault.closes
            ('MAIL', 3, True)
        """
        _check_count("messages", messages)
        return cls(at="MAIL", nth=messages + 1, reply=reply, close=True, times=times)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} counts from 1: {value!r}")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a connection is when it reaches a point.

    ``count`` is which occurrence of the point this is (for RCPT, which recipient of
    the message; else on the connection), ``message`` which mail transaction of the
    connection (0 before the first MAIL).
    """

    count: int
    message: int


class FaultPlan:
    """The faults of one server, and which have fired (thread-safe: tests add faults
    from their thread while the server's thread takes them).

    Example:
        >>> plan = FaultPlan()
        >>> plan.add(Fault(at="DATA", delay=0.5, times=None))
        >>> plan.take("DATA", Position(count=3, message=3)).delay
        0.5
        >>> len(plan.fired())
        1
    """

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        if isinstance(faults, Fault):
            raise TypeError("faults= takes a list of Fault, e.g. faults=[Fault(...)]")
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._fired_counts: list[int] = []
        self._fired: list[Fault] = []
        self.add(*faults)

    def add(self, *faults: Fault) -> None:
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected a smtpx.testing.Fault, got {fault!r}")
        with self._lock:
            self._faults.extend(faults)
            self._fired_counts.extend(0 for _ in faults)

    def clear(self) -> None:
        """Forget every fault and what fired."""
        with self._lock:
            self._faults.clear()
            self._fired_counts.clear()
            self._fired.clear()

    def fired(self) -> list[Fault]:
        """The faults that fired, in the order they did (a fault once per firing)."""
        with self._lock:
            return list(self._fired)

    def pending(self) -> list[Fault]:
        """The faults that may still fire."""
        with self._lock:
            return [
                fault
                for fault, fired in zip(self._faults, self._fired_counts, strict=True)
                if fault.times is None or fired < fault.times
            ]

    def take(self, point: str, position: Position) -> Fault | None:
        """The first fault (in the order added) that fires at ``point`` now, if any."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                fired = self._fired_counts[index]
                if fault.times is not None and fired >= fault.times:
                    continue
                if fault.at != point or position.count < fault.nth:
                    continue
                if fault.message is not None and fault.message != position.message:
                    continue
                self._fired_counts[index] = fired + 1
                self._fired.append(fault)
                return fault
        return None
