"""Opening a session as ``connect(url)`` promises: secured first, then logged in.

The flows here are the policy of ``smtpx.connect`` and ``smtpx.aconnect`` (the drivers run
them on a client they have connected).  Under the strict policy:

- TLS is required.  ``smtps://`` is TLS from the first byte; otherwise STARTTLS must be
  offered and must succeed (RFC 3207): a server that does not offer it, or refuses it, ends
  the attempt with ``SMTPPolicyError``; there is no fallback to plaintext, which is what a
  man in the middle who strips STARTTLS from the EHLO reply would want.  A unix socket
  (``lmtp+unix://``) is a local channel and needs none.
- No credential is sent outside TLS, and the login never tries a weaker mechanism after
  the server said the credentials are wrong (see ``login``).
"""

from __future__ import annotations

from . import _login
from ._exceptions import SMTPPolicyError, SMTPResponseException
from ._flows import Client
from ._login import Credentials, TokenProvider
from ._steps import Flow, Invoke
from ._url import Endpoint

__all__ = ["Credentials", "TokenProvider", "open_session", "secure"]


def open_session(
    client: Client, endpoint: Endpoint, policy: str, context: object, credentials: Credentials
) -> Flow[None]:
    """After the greeting: EHLO, STARTTLS as the URL and the policy require, then the login.
    EHLO always comes first, so that a server refusing the session (a 421 to EHLO) is
    refused here rather than at the first message."""
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    yield from secure(client, endpoint, policy, context)
    if credentials.given:
        yield from _login.login(client, credentials, policy)


def secure(client: Client, endpoint: Endpoint, policy: str, context: object) -> Flow[None]:
    """STARTTLS where the scheme or the policy requires it (implicit TLS is already up)."""
    if endpoint.tls == "implicit":
        return
    required_by = (
        f"{endpoint.scheme}://"
        if endpoint.tls == "starttls"
        else "the strict policy"
        if policy == "strict" and not endpoint.unix
        else None
    )
    if required_by is None:
        return
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    if not client.has_extn("starttls"):
        raise SMTPPolicyError(
            f"{required_by} requires TLS, but the server does not offer STARTTLS "
            "(use smtps:// for implicit TLS, or policy='compat' to send in plaintext)"
        )
    try:
        yield Invoke(lambda c: c.starttls(context=context))
    except SMTPResponseException as exc:
        raise SMTPPolicyError(
            f"{required_by} requires TLS, but the server refused STARTTLS: "
            f"{exc.smtp_code} {_text(exc.smtp_error)}"
        ) from exc


def _text(error: bytes | str) -> str:
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else error
