"""The login of ``smtpx.connect``: the strongest mechanism both sides speak, and no second
guess after the server said the credentials are wrong.

smtplib's ``login()`` (kept as it is on every client) tries CRAM-MD5, PLAIN and LOGIN in
turn and goes on to the next after any refusal, so a wrong password is sent three times,
the last time in a weaker form.  Here (both policies; ``"compat"`` with a password keeps
smtplib's ``login()``):

- mechanisms are ranked by strength (``smtpx.auth.choose_mechanisms``): SCRAM with channel
  binding, SCRAM, then PLAIN or LOGIN only under TLS; a token goes to OAUTHBEARER or
  XOAUTH2;
- ``535`` (RFC 4954 section 6: "authentication credentials invalid") and the other
  permanent refusals end the login; only "this mechanism is not available" (``504``, a
  ``4yz``, ``534``...) moves on to the next one;
- a token the server rejects is asked for once more from the provider, and the login is
  tried once again (RFC 7628 section 3.2.3: tokens expire);
- the mechanism that succeeded is kept on the client as ``auth_mechanism`` (by ``auth()``,
  so smtplib's ``login()`` sets it too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ._exceptions import (
    SMTPAuthenticationError,
    SMTPNotSupportedError,
    SMTPPolicyError,
)
from ._flows import Client
from ._steps import Flow, Invoke
from ._wire import Response
from .auth import Mechanism, choose_mechanisms, create_mechanism

__all__ = ["Credentials", "TokenProvider", "login"]

#: An OAuth2 access token, or what gives one: a function (a coroutine function for the
#: asyncio classes) called for a fresh token, and called once more after the server
#: rejected one.
TokenProvider = str | Callable[[], str] | Callable[[], Awaitable[str]]

# Replies that say "not this mechanism" rather than "not these credentials": RFC 4954
# section 6 (504 mechanism not supported, 534 mechanism too weak, 538 encryption required
# for it) and any transient failure (454 and other 4yz).
_TRY_NEXT = frozenset({504, 534, 538})


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who logs in: a user name with a password or an OAuth2 token (never shown)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: TokenProvider | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.password is not None and self.token is not None:
            raise ValueError("give a password or a token, not both")
        if (self.password is not None or self.token is not None) and not self.username:
            raise ValueError("a password or a token needs a user name")

    @property
    def given(self) -> bool:
        return self.password is not None or self.token is not None


def login(client: Client, credentials: Credentials, policy: str) -> Flow[Response]:
    """Log in with *credentials* under *policy*; raises ``SMTPPolicyError`` before sending
    anything secret when the policy forbids it."""
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    secure = client._tls_active or client._local_channel
    if policy == "strict" and not secure:
        raise SMTPPolicyError("the strict policy sends no credentials without TLS")
    if not client.has_extn("auth"):
        raise SMTPNotSupportedError("the server does not offer AUTH (RFC 4954)")
    user = credentials.username or ""
    password, token = credentials.password, credentials.token
    if policy == "compat" and password is not None:
        result: Response = yield Invoke(lambda c: c.login(user, password))
        return result
    offered = client.esmtp_features["auth"]
    names = choose_mechanisms(
        offered,
        tls=secure,
        channel_binding=client._tls_active,
        has_password=password is not None,
        has_token=token is not None,
    )
    if not names:
        what = "a token" if token is not None else "a password"
        raise SMTPPolicyError(
            f"no mechanism the server offers ({offered.strip() or 'none'}) is safe for "
            f"{what} here: smtpx sends a password only with SCRAM, or PLAIN or LOGIN over TLS"
        )
    last: SMTPAuthenticationError | None = None
    for name in names:
        retry_token = callable(token)
        while True:
            mechanism = create_mechanism(
                name,
                user=user,
                password=password,
                token=token,
                binding_supported=client._tls_active,
            )
            try:
                result = yield _auth_step(name, mechanism)
            except SMTPAuthenticationError as exc:
                last = exc
                if retry_token and exc.smtp_code == 535:
                    retry_token = False  # the token may have expired: one fresh one
                    continue
                if exc.smtp_code in _TRY_NEXT or 400 <= exc.smtp_code < 500:
                    break  # this mechanism is not available: the next one
                raise  # the credentials are wrong: never retried with a weaker mechanism
            if result[0] != 235:
                # smtplib's auth() returns a 503 ("already authenticated"); here nothing
                # but 235 is a login (Postfix also says 503 when AUTH is not enabled).
                raise SMTPAuthenticationError(*result)
            return result  # auth() set client.auth_mechanism
    assert last is not None
    raise last


def _auth_step(name: str, mechanism: Mechanism) -> Invoke:
    # A function, so that the step holds this mechanism, not the loop's last one.
    return Invoke(lambda c: c.auth(name, mechanism))
