"""Real mail servers for the integration tests, each in its own temp dir on loopback."""

from ._common import BaseServer, ServerStartError, ServerUnavailable
from ._maildir import Mailbox, expected_delivery, make_message, new_token, strip_trace_fields, to_lf
from .dovecot import DovecotLMTPServer
from .haraka import HarakaServer
from .postfix import PostfixServer

__all__ = [
    "BaseServer",
    "DovecotLMTPServer",
    "HarakaServer",
    "Mailbox",
    "PostfixServer",
    "ServerStartError",
    "ServerUnavailable",
    "expected_delivery",
    "make_message",
    "new_token",
    "strip_trace_fields",
    "to_lf",
]
