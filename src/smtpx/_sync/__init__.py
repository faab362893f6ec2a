"""The blocking driver: the smtplib-compatible classes over real sockets."""

from ._client import SMTP
from ._variants import LMTP, SMTP_SSL

__all__ = ["LMTP", "SMTP", "SMTP_SSL"]
