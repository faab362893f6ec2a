"""Timeouts by phase of the session.

``timeout=`` on every client takes a number (one limit for every wait, as in smtplib) or a
``Timeouts``, which bounds each phase on its own, like go-smtp and nodemailer do.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timeouts", "as_timeouts"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase; None means no limit.

    - ``connect``: opening the connection, the server's greeting and the TLS handshake
      (implicit TLS, and STARTTLS's).
    - ``command``: the reply to each command, and each write.
    - ``data``: the final reply after the message content, which a server may take long to
      give (it may scan the message); RFC 5321 section 4.5.3.2.6 asks clients to wait at
      least 10 minutes.

    The defaults follow RFC 5321 section 4.5.3.2 (5 minutes for a command reply, 10 for the
    final reply) but do not wait 5 minutes for a greeting: 30 seconds is plenty on any
    network where mail is sent.

    >>> import smtpx
    >>> smtpx.SMTP("localhost", 2525, timeout=Timeouts(connect=5))  # doctest: +SKIP
    """

    connect: float | None = 30.0
    command: float | None = 300.0
    data: float | None = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "command", "data"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"Timeouts.{name} must be a positive number or None")


def as_timeouts(timeout: float | Timeouts | None) -> Timeouts:
    """*timeout* as a ``Timeouts``: a number bounds every phase alike, None none of them."""
    if isinstance(timeout, Timeouts):
        return timeout
    if timeout is None:
        return _UNLIMITED
    return Timeouts(timeout, timeout, timeout)


_UNLIMITED = Timeouts(None, None, None)
