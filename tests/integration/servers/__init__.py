"""Real mail servers for the integration tests, each in its own temp dir on loopback."""

from ._common import BaseServer, ServerStartError, ServerUnavailable
from ._maildir import (
    Mailbox,
    check_trace_fields,
    expected_delivery,
    make_message,
    new_token,
    strip_trace_fields,
    to_lf,
    trace_fields,
)
from .dovecot import DovecotLMTPServer
from .embedded_sasl import EmbeddedSaslServer
from .haraka import HarakaServer
from .postfix import PostfixServer
from .redis import RedisServer
from .submission import SubmissionServer

__all__ = [
    "BaseServer",
    "DovecotLMTPServer",
    "EmbeddedSaslServer",
    "HarakaServer",
    "Mailbox",
    "PostfixServer",
    "RedisServer",
    "ServerStartError",
    "ServerUnavailable",
    "SubmissionServer",
    "check_trace_fields",
    "expected_delivery",
    "make_message",
    "new_token",
    "strip_trace_fields",
    "to_lf",
    "trace_fields",
]
