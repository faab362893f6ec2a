"""The blocking driver: the smtplib-compatible classes over real sockets."""

from ._client import LMTP, SMTP, SMTP_SSL

__all__ = ["LMTP", "SMTP", "SMTP_SSL"]
