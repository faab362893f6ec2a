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

import re
import socket  # noqa: F401  (smtplib's module global, which programs replace)
import ssl  # noqa: F401  (likewise)
import sys
import types
from email.base64mime import body_encode as encode_base64

from . import _sync
from ._addresses import quoteaddr, quotedata
from ._async import AsyncLMTP, AsyncSMTP, AsyncSMTP_SSL
from ._clientbase import CRLF, LMTP_PORT, SMTP_PORT, SMTP_SSL_PORT
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
    SMTPOutcomeUnknown,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPStateError,
    SMTPTimeoutError,
)
from ._log import LogObserver, Transcript
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
from ._sync import LMTP, SMTP, SMTP_SSL
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
    "AsyncSMTP",
    "AsyncSMTP_SSL",
    "CommandSent",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "ConnectionFailed",
    "ContentSent",
    "EnhancedStatus",
    "InsecureWarning",
    "LogObserver",
    "Observer",
    "RawSent",
    "Recipient",
    "RecipientResult",
    "Reply",
    "ReplyReceived",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPMessageTooLarge",
    "SMTPNotAttempted",
    "SMTPNotSupportedError",
    "SMTPOutcomeUnknown",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPStateError",
    "SMTPTimeoutError",
    "SendResult",
    "SessionEvent",
    "TLSInfo",
    "TLSStarted",
    "Timeouts",
    "Transcript",
    "bCRLF",
    "encode_base64",
    "quoteaddr",
    "quotedata",
]


class _Module(types.ModuleType):
    """The compatibility seam for ``smtplib.socket = mock_socket``.

    Programs and CPython's own tests swap the socket module that smtplib uses by assigning
    the module global.  The clients live in ``smtpx._sync._client`` and ``_variants``; an
    assignment here is forwarded to both so the swap still reaches them.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("socket", "ssl"):
            setattr(_sync._client, name, value)
            setattr(_sync._variants, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Module
