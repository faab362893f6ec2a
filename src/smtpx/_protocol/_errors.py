"""Errors raised by the sans-I/O core.

``LocalProtocolError``: the caller asked for something the session does not allow now.
``RemoteProtocolError``: the server's bytes break the protocol; the stream can no longer be
trusted and the connection must be closed.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "ReplyTooLong"]


class ProtocolError(Exception):
    """Base class of the core's errors."""


class LocalProtocolError(ProtocolError):
    """The client tried a step that is illegal in the current session state."""


class RemoteProtocolError(ProtocolError):
    """The server sent something that is not a valid reply at this point."""


class ReplyTooLong(RemoteProtocolError):
    """A reply line or a whole reply exceeded its named limit (see ``_limits``)."""
