"""The sans-I/O SMTP/LMTP core: bytes in, replies out, no sockets.

Nothing in this package may import ``socket``, ``ssl``, ``asyncio`` or ``selectors``
(``tests/protocol/test_layering.py`` checks it): the blocking and asyncio drivers share it.
"""

from ._commands import Command
from ._connection import ClientConnection, Event, State
from ._data import DataEncoder, normalize_line_ends, normalized_size
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, ReplyTooLong
from ._extensions import Extensions
from ._limits import MAX_CHALLENGES, MAX_LINE, MAX_REPLY_BYTES, MAX_REPLY_LINES
from ._reply import Reply, ReplyParser
from ._status import EnhancedStatus

__all__ = [
    "MAX_CHALLENGES",
    "MAX_LINE",
    "MAX_REPLY_BYTES",
    "MAX_REPLY_LINES",
    "ClientConnection",
    "Command",
    "DataEncoder",
    "EnhancedStatus",
    "Event",
    "Extensions",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Reply",
    "ReplyParser",
    "ReplyTooLong",
    "State",
    "normalize_line_ends",
    "normalized_size",
]
