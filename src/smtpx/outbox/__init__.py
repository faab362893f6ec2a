"""A durable outbox: messages stored in one SQLite file, sent by workers, with a state
for every recipient and a record of every attempt.  See ``docs/outbox.md``.

>>> from smtpx.outbox import Outbox
>>> with Outbox("/tmp/outbox.db") as outbox:  # doctest: +SKIP
...     outbox.put(b"Subject: hi\\r\\n\\r\\nhello\\r\\n", "a@example.org", ["b@example.org"])
...     outbox.run(url="smtp+starttls://mail.example.org", username="a", password="pw")
"""

from ._outbox import AttemptInfo, MessageInfo, Outbox, RecipientInfo, RunReport
from ._policy import CONNECTION, RetryPolicy, Schedule
from ._senders import AsyncConnectionSender, ConnectionSender
from ._states import FINAL, PENDING, TRANSITIONS, Event, OutboxStateError, State

__all__ = [
    "CONNECTION",
    "FINAL",
    "PENDING",
    "TRANSITIONS",
    "AsyncConnectionSender",
    "AttemptInfo",
    "ConnectionSender",
    "Event",
    "MessageInfo",
    "Outbox",
    "OutboxStateError",
    "RecipientInfo",
    "RetryPolicy",
    "RunReport",
    "Schedule",
    "State",
]
