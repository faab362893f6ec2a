"""smtpx: an SMTP and LMTP client that replaces ``smtplib`` without a line changed.

``import smtpx as smtplib`` gives every public name of the standard library's module, with
the differences listed in ``docs/compatibility.md`` (certificates verified by default, no
command injection, CRLF-normalized bytes bodies, correct LMTP replies, UTF-8 credentials,
bounded replies).

>>> import smtpx
>>> with smtpx.SMTP("localhost", 2525) as smtp:  # doctest: +SKIP
...     smtp.sendmail("me@example.org", ["you@example.org"], "Subject: hi\\n\\nhello")
{}
"""

from __future__ import annotations

# The modules smtplib imports are attributes of its module (``smtplib.email.utils``), and
# programs use them; ``socket`` and ``ssl`` are also replaced (see _stdlib_names).
import base64  # noqa: F401
import copy  # noqa: F401
import datetime  # noqa: F401
import email.generator
import email.message
import email.utils  # noqa: F401
import hmac  # noqa: F401
import io  # noqa: F401
import re
import socket  # noqa: F401
import ssl  # noqa: F401
import sys
from email.base64mime import body_encode as encode_base64

from ._addresses import addr_only as _addr_only  # noqa: F401  (smtplib's private helpers,
from ._addresses import fix_eols as _fix_eols  # noqa: F401  which programs import)
from ._addresses import quote_periods as _quote_periods  # noqa: F401
from ._addresses import quoteaddr, quotedata
from ._async import AsyncLMTP, AsyncSMTP, AsyncSMTP_SSL
from ._async._connect import aconnect, asend
from ._async._pool import AsyncPool
from ._clientbase import CRLF, LMTP_PORT, SMTP_PORT, SMTP_SSL_PORT
from ._compose import compose
from ._exceptions import (
    InsecureWarning,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPMessageTooLarge,
    SMTPNotAttempted,
    SMTPNotSupportedError,
    SMTPOAuthError,
    SMTPOutcomeUnknown,
    SMTPPolicyError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPServerSignatureError,
    SMTPStateError,
    SMTPTimeoutError,
)
from ._log import LogObserver, Transcript
from ._pool import RecipientFate, RetrySchedule
from ._pool import State as DeliveryState
from ._pool._job import PoolResult
from ._protocol import MAX_CHALLENGES as _MAXCHALLENGE  # noqa: F401 (smtplib's name)
from ._protocol import MAX_LINE as _MAXLINE  # noqa: F401 (CPython's tests read it)
from ._protocol import (
    CommandSent,
    Connected,
    Connecting,
    ConnectionClosed,
    ConnectionFailed,
    ContentSent,
    EnhancedStatus,
    Observer,
    RawSent,
    Reply,
    ReplyReceived,
    SessionEvent,
    TLSInfo,
    TLSStarted,
)
from ._results import Recipient, RecipientResult, SendResult
from ._stdlib_names import SmtplibModule as _SmtplibModule
from ._stdlib_names import have_ssl as _have_ssl  # noqa: F401 (smtplib's name)
from ._sync import LMTP, SMTP, SMTP_SSL
from ._sync._connect import connect, send
from ._sync._pool import Pool
from ._timeouts import Timeouts

__version__ = "0.1.0.dev0"

bCRLF = b"\r\n"
#: The pre-standard ``AUTH=`` capability line (smtplib's public constant).
OLDSTYLE_AUTH = re.compile(r"auth=(.*)", re.I)

__all__ = [
    "CRLF",
    "LMTP",
    "LMTP_PORT",
    "OLDSTYLE_AUTH",
    "SMTP",
    "SMTP_PORT",
    "SMTP_SSL",
    "SMTP_SSL_PORT",
    "AsyncLMTP",
    "AsyncPool",
    "AsyncSMTP",
    "AsyncSMTP_SSL",
    "CommandSent",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "ConnectionFailed",
    "ContentSent",
    "DeliveryState",
    "EnhancedStatus",
    "InsecureWarning",
    "LogObserver",
    "Observer",
    "Pool",
    "PoolResult",
    "RawSent",
    "Recipient",
    "RecipientFate",
    "RecipientResult",
    "Reply",
    "ReplyReceived",
    "RetrySchedule",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPMessageTooLarge",
    "SMTPNotAttempted",
    "SMTPNotSupportedError",
    "SMTPOAuthError",
    "SMTPOutcomeUnknown",
    "SMTPPolicyError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPServerSignatureError",
    "SMTPStateError",
    "SMTPTimeoutError",
    "SendResult",
    "SessionEvent",
    "TLSInfo",
    "TLSStarted",
    "Timeouts",
    "Transcript",
    "aconnect",
    "asend",
    "bCRLF",
    "compose",
    "connect",
    "encode_base64",
    "quoteaddr",
    "quotedata",
    "send",
]


# A module cannot define __setattr__: its class does (``smtpx.socket = mock_socket``).
sys.modules[__name__].__class__ = _SmtplibModule
