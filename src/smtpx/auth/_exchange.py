"""One driver for any SASL mechanism over SMTP (RFC 4954), as a flow both clients run.

``auth_exchange`` sends ``AUTH name [initial-response]``, decodes each 334 challenge,
asks the mechanism for the response and sends it base64-encoded, and checks the end: a
235 is verified by the mechanism (SCRAM's server signature), anything else raises.  A
challenge the mechanism refuses (or that is not base64) cancels the exchange with ``*``
and waits for the server's 501, so client and server stay in step.

Commands go through the client's ``docmd`` (``Invoke``): smtplib's overridable method
graph sees them, and debug output redacts them as AUTH data.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import re

from .._exceptions import (
    SMTPServerDisconnected,
    SMTPServerSignatureError,
)
from .._protocol import MAX_CHALLENGES
from .._steps import Flow, Invoke
from ._mechanism import ChallengeError, Mechanism, ServerSignatureError
from ._oauth import TokenMechanism

__all__ = ["MAX_AUTH_LINE", "auth_exchange"]

Response = tuple[int, bytes]

#: The longest AUTH command line with an initial response, CRLF included: RFC 5321
#: section 4.5.3.1.4 limits a command line to 512 octets, and RFC 4954 section 4 says a
#: response that would make AUTH longer "MUST NOT" go on the line; it is sent after an
#: empty challenge instead.
MAX_AUTH_LINE = 512

# RFC 4422 section 3.1: a mechanism name is 1 to 20 of A-Z, 0-9, "-" and "_".
_MECHANISM_NAME = re.compile(r"[A-Z0-9_-]{1,20}")


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode(text: bytes) -> bytes:
    # Strict: a challenge that is not base64 is not silently "repaired" into other bytes.
    return base64.b64decode(text.strip(b" \t"), validate=True)


def _send(line: str) -> Invoke:
    """One response line (a bound argument, not a closure over the loop's variable)."""
    return Invoke(lambda c: c.docmd(line))


def _cancel() -> Flow[None]:
    # RFC 4954 section 4: "*" cancels; the server answers 501.  Waiting for that reply
    # keeps the next command's reply from being mistaken for it.
    try:
        yield Invoke(lambda c: c.docmd("*"))
    except SMTPServerDisconnected:
        pass


def auth_exchange(
    mechanism: Mechanism,
    *,
    initial_response_ok: bool = True,
    peer_certificate: bytes | None = None,
    max_challenges: int = MAX_CHALLENGES,
) -> Flow[Response]:
    """AUTH with *mechanism*; returns the server's ``(235, text)``.

    *initial_response_ok*: send the initial response on the AUTH line (RFC 4954 section
    4) when it fits in ``MAX_AUTH_LINE``; otherwise it answers the server's empty
    challenge.  *peer_certificate*: the server's certificate (DER), for a mechanism with
    channel binding.  *max_challenges*: challenges answered before giving up.

    Raises ``SMTPAuthenticationError`` when the server refuses (``SMTPOAuthError`` with
    the server's JSON for a token; ``mechanism.error`` decides), or the exchange is
    cancelled; ``SMTPServerSignatureError`` when the server does not prove itself (after
    a 235 without proof the connection is closed: it may be an impostor).  A 503 reply
    to AUTH (already authenticated, RFC 4954 section 4) is returned, as smtplib does.

    A token provider (``TokenMechanism``) is asked for a token at the start, through the
    driver: the asyncio client awaits a coroutine function.
    """
    name = mechanism.name.upper()
    if not _MECHANISM_NAME.fullmatch(name):
        raise ValueError(f"not a SASL mechanism name: {mechanism.name!r}")
    if mechanism.channel_binding is not None:
        mechanism.bind(peer_certificate)
    if isinstance(mechanism, TokenMechanism) and mechanism.token_provider is not None:
        provider = mechanism.token_provider
        token = yield Invoke(lambda c: provider())
        if inspect.iscoroutine(token):  # the blocking client does not await
            token.close()
            raise TypeError(
                "the token provider is a coroutine function: use it with the asyncio clients"
            )
        mechanism.use_token(token)
    initial = mechanism.initial_response()
    line = None
    if initial is not None and initial_response_ok:
        argument = f"{name} {_encode(initial) or '='}"  # "=": an empty initial response
        if len(f"AUTH {argument}\r\n") <= MAX_AUTH_LINE:
            line = argument
    pending: bytes | None = None  # an initial response still to send after a 334
    if line is not None:
        code, text = yield Invoke(lambda c: c.docmd("AUTH", line))
    else:
        pending = initial
        code, text = yield Invoke(lambda c: c.docmd("AUTH", name))
    challenges = 0
    while code == 334:
        challenges += 1
        if challenges > max_challenges:
            yield from _cancel()
            raise mechanism.error(
                code, f"{name}: more than {max_challenges} challenges; cancelled".encode()
            )
        try:
            try:
                challenge = _decode(text)
            except binascii.Error:
                raise ChallengeError(f"the challenge is not valid base64: {text[:100]!r}") from None
            if pending is not None:
                # RFC 4422 section 5: a client-first mechanism without its initial
                # response on the AUTH line gets an empty challenge first.
                if challenge:
                    raise ChallengeError(f"{name}: expected an empty challenge first")
                response, pending = pending, None
            else:
                response = mechanism.respond(challenge)
        except ServerSignatureError as exc:
            yield from _cancel()
            raise SMTPServerSignatureError(code, str(exc).encode()) from None
        except ValueError as exc:  # ChallengeError, or a plug-in's own
            yield from _cancel()
            raise mechanism.error(code, f"{name} cancelled: {exc}".encode()) from None
        code, text = yield _send(_encode(response))
    if code == 235:
        try:
            mechanism.verify(None)
        except ServerSignatureError as exc:
            # The server let us in without proving it knows the password: whoever it is,
            # nothing more goes to it.
            yield Invoke(lambda c: c.close())
            raise SMTPServerSignatureError(code, str(exc).encode()) from None
        except ValueError as exc:  # a plug-in's own check
            yield Invoke(lambda c: c.close())
            raise mechanism.error(code, f"{name}: {exc}".encode()) from None
        return code, text
    if code == 503:
        return code, text
    raise mechanism.error(code, text)
