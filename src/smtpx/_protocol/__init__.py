"""The sans-I/O SMTP/LMTP core: bytes in, replies out, no sockets.

Nothing in this package may import ``socket``, ``ssl``, ``asyncio`` or ``selectors``
(``tests/protocol/test_layering.py`` checks it): the blocking and asyncio drivers share it.
"""

from ._commands import Command
from ._connection import ClientConnection, Event, State
from ._data import DataEncoder, normalize_line_ends, normalized_size
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, ReplyTooLong
from ._events import (
    REDACTED,
    CommandSent,
    Connected,
    Connecting,
    ConnectionClosed,
    ConnectionFailed,
    ContentSent,
    Observer,
    RawSent,
    ReplyReceived,
    SessionEvent,
    TLSInfo,
    TLSStarted,
)
from ._extensions import Extensions
from ._limits import MAX_CHALLENGES, MAX_LINE, MAX_REPLY_BYTES, MAX_REPLY_LINES
from ._reply import Reply, ReplyParser
from ._status import EnhancedStatus

__all__ = [
    "MAX_CHALLENGES",
    "MAX_LINE",
    "MAX_REPLY_BYTES",
    "MAX_REPLY_LINES",
    "REDACTED",
    "ClientConnection",
    "Command",
    "CommandSent",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "ConnectionFailed",
    "ContentSent",
    "DataEncoder",
    "EnhancedStatus",
    "Event",
    "Extensions",
    "LocalProtocolError",
    "Observer",
    "ProtocolError",
    "RawSent",
    "RemoteProtocolError",
    "Reply",
    "ReplyParser",
    "ReplyReceived",
    "ReplyTooLong",
    "SessionEvent",
    "State",
    "TLSInfo",
    "TLSStarted",
    "normalize_line_ends",
    "normalized_size",
]
