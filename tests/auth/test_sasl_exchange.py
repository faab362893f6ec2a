"""``auth_exchange``, the one driver of any mechanism: the AUTH line and its limit,
base64 both ways, the challenge limit, cancelling, token providers, plug-in mechanisms,
and the smtplib ``authobject`` protocol."""

from __future__ import annotations

import base64
import smtplib

import pytest
from exchange_harness import challenge, decoded, run
from hypothesis import given
from hypothesis import strategies as st

import smtpx
from smtpx._protocol import MAX_CHALLENGES
from smtpx.auth import (
    MAX_AUTH_LINE,
    ChallengeError,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
    auth_exchange,
)

OK = (235, b"2.7.0 ok")


class Echo(Mechanism):
    """A plug-in mechanism: records each challenge and answers with a fixed response."""

    name = "X-ECHO"

    def __init__(self, initial: bytes | None, answer: bytes = b"") -> None:
        self.initial = initial
        self.answer = answer
        self.seen: list[bytes] = []
        self.verified: list[bytes | None] = []

    def initial_response(self) -> bytes | None:
        return self.initial

    def respond(self, challenge: bytes) -> bytes:
        self.seen.append(challenge)
        if challenge == b"refuse":
            raise ValueError("cannot answer that")
        return self.answer

    def verify(self, final: bytes | None = None) -> None:
        self.verified.append(final)


# ------------------------------------------------------------- the AUTH line


def _echo_with_line_length(length: int) -> Echo:
    """A mechanism whose "AUTH X-AB <base64>\\r\\n" line is *length* bytes (a multiple of 4:
    the line's overhead is 12 bytes, and base64 comes in fours)."""
    mechanism = Echo(b"p" * ((length - 12) // 4 * 3))
    mechanism.name = "X-AB"  # type: ignore[misc]
    line = f"AUTH X-AB {base64.b64encode(mechanism.initial_response() or b'').decode()}\r\n"
    assert len(line) == length
    return mechanism


def test_initial_response_that_fits_exactly_goes_on_the_auth_line() -> None:
    _, client = run(auth_exchange(_echo_with_line_length(MAX_AUTH_LINE)), [OK])
    assert len(client.sent) == 1
    assert len(client.sent[0]) + 2 == MAX_AUTH_LINE == 512


def test_initial_response_that_does_not_fit_waits_for_the_empty_challenge() -> None:
    """RFC 4954 section 4: a response that would make AUTH longer than a command line
    MUST NOT be on it."""
    mechanism = _echo_with_line_length(MAX_AUTH_LINE + 4)
    _, client = run(auth_exchange(mechanism), [(334, b""), OK])
    assert client.sent[0] == "AUTH X-AB"
    assert decoded(client.sent[1]) == mechanism.initial_response()


def test_initial_response_not_ok_waits_for_the_empty_challenge() -> None:
    _, client = run(auth_exchange(Plain("u", "p"), initial_response_ok=False), [(334, b""), OK])
    assert client.sent == ["AUTH PLAIN", "AHUAcA=="]


def test_non_empty_first_challenge_for_a_client_first_mechanism_cancels() -> None:
    replies = [challenge(b"hello?"), (501, b"cancelled")]
    with pytest.raises(smtpx.SMTPAuthenticationError, match="empty challenge"):
        run(auth_exchange(Plain("u", "p"), initial_response_ok=False), replies)


def test_empty_initial_response_on_the_line_is_an_equals_sign() -> None:
    _, client = run(auth_exchange(Echo(b"")), [OK])
    assert client.sent == ["AUTH X-ECHO ="]


def test_empty_initial_response_after_a_challenge_is_an_empty_line() -> None:
    _, client = run(auth_exchange(Echo(b""), initial_response_ok=False), [(334, b""), OK])
    assert client.sent == ["AUTH X-ECHO", ""]


@pytest.mark.parametrize("name", ["", "TWO WORDS", "A" * 21, "CR\rLF", "ÉTÉ"])
def test_a_bad_mechanism_name_sends_nothing(name: str) -> None:
    mechanism = Echo(None)
    mechanism.name = name  # type: ignore[misc]
    with pytest.raises(ValueError, match="not a SASL mechanism name"):
        run(auth_exchange(mechanism), [])


def test_lower_case_names_are_sent_upper_case() -> None:
    mechanism = Echo(None)
    mechanism.name = "x-echo"  # type: ignore[misc]
    _, client = run(auth_exchange(mechanism), [OK])
    assert client.sent == ["AUTH X-ECHO"]


# ------------------------------------------------------------ challenges


@given(st.binary(max_size=300))
def test_each_challenge_reaches_the_mechanism_exactly(data: bytes) -> None:
    mechanism = Echo(None)
    run(auth_exchange(mechanism), [challenge(data), OK])
    assert mechanism.seen == [data]


@given(st.binary(max_size=300))
def test_each_response_is_sent_exactly(data: bytes) -> None:
    _, client = run(auth_exchange(Echo(None, answer=data)), [challenge(b"x"), OK])
    assert decoded(client.sent[1]) == data


@given(st.binary(max_size=300))
def test_each_initial_response_is_sent_exactly(data: bytes) -> None:
    _, client = run(auth_exchange(Echo(data)), [OK])
    argument = client.sent[0].split()[2]
    assert (b"" if argument == "=" else decoded(argument)) == data


@given(st.text(alphabet="!#$%&()-.:;<>?@[]^_{|}~ \t\x00\xff", min_size=1, max_size=40))
def test_a_challenge_that_is_not_base64_cancels(text: str) -> None:
    raw = text.encode("latin-1")
    try:
        base64.b64decode(raw.strip(b" \t"), validate=True)
    except ValueError:
        pass
    else:
        return  # valid after all (only padding or whitespace): nothing to check
    with pytest.raises(smtpx.SMTPAuthenticationError, match="not valid base64") as caught:
        run(auth_exchange(Echo(None)), [(334, raw), (501, b"cancelled")])
    assert caught.value.client.sent == ["AUTH X-ECHO", "*"]  # type: ignore[attr-defined]


def test_a_refused_challenge_cancels_and_waits_for_the_501() -> None:
    with pytest.raises(smtpx.SMTPAuthenticationError, match="cannot answer that") as caught:
        run(auth_exchange(Echo(None)), [challenge(b"refuse"), (501, b"5.7.0 cancelled")])
    assert caught.value.smtp_code == 334
    # The harness checks that every scripted reply was read: the 501 was waited for.
    assert caught.value.client.sent == ["AUTH X-ECHO", "*"]  # type: ignore[attr-defined]


def test_cancel_survives_a_server_that_hangs_up() -> None:
    class Gone:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
            self.sent.append(cmd)
            if cmd == "*":
                raise smtpx.SMTPServerDisconnected("gone")
            return challenge(b"refuse")

    flow = auth_exchange(Echo(None))
    gone = Gone()
    step = next(flow)
    with pytest.raises(smtpx.SMTPAuthenticationError):
        while True:
            try:
                result = step.call(gone)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    assert gone.sent == ["AUTH", "*"]


def test_the_challenge_limit() -> None:
    replies = [challenge(b"more")] * (MAX_CHALLENGES + 1) + [(501, b"cancelled")]
    with pytest.raises(smtpx.SMTPAuthenticationError, match="more than 5 challenges") as caught:
        run(auth_exchange(Echo(None)), replies)
    sent = caught.value.client.sent  # type: ignore[attr-defined]
    assert len(sent) == 1 + MAX_CHALLENGES + 1 and sent[-1] == "*"


def test_the_challenge_limit_is_a_parameter() -> None:
    replies = [challenge(b"1"), challenge(b"2"), (501, b"cancelled")]
    with pytest.raises(smtpx.SMTPAuthenticationError):
        run(auth_exchange(Echo(None), max_challenges=1), replies)
    run(auth_exchange(Echo(None), max_challenges=2), [challenge(b"1"), challenge(b"2"), OK])


# ----------------------------------------------------------------- the end


def test_success_is_verified_with_no_final_data() -> None:
    mechanism = Echo(b"hi")
    result, _ = run(auth_exchange(mechanism), [OK])
    assert result == OK
    assert mechanism.verified == [None]


def test_a_plug_in_that_fails_verification_closes() -> None:
    class Doubtful(Echo):
        def verify(self, final: bytes | None = None) -> None:
            raise ChallengeError("the server did not show its badge")

    with pytest.raises(smtpx.SMTPAuthenticationError, match="badge") as caught:
        run(auth_exchange(Doubtful(b"hi")), [OK])
    assert caught.value.client.sent[-1] == "<close>"  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", [535, 534, 454, 504, 530, 538])
def test_a_refusal_raises_with_the_servers_reply(code: int) -> None:
    with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
        run(auth_exchange(Plain("u", "p")), [(code, b"no")])
    assert (caught.value.smtp_code, caught.value.smtp_error) == (code, b"no")
    assert isinstance(caught.value, smtplib.SMTPAuthenticationError)


def test_503_already_authenticated_is_returned_as_smtplib_does() -> None:
    result, _ = run(auth_exchange(Plain("u", "p")), [(503, b"5.5.1 already authenticated")])
    assert result == (503, b"5.5.1 already authenticated")


# ------------------------------------------------------------ token providers


def test_the_token_provider_is_asked_at_each_exchange() -> None:
    """How a rejected token is retried: run the exchange again with the same object; the
    provider is asked once more."""
    tokens = iter(["expired", "fresh"])
    calls: list[str] = []

    def provider() -> str:
        token = next(tokens)
        calls.append(token)
        return token

    mechanism = XOAuth2("me@example.com", provider)
    with pytest.raises(smtpx.SMTPAuthenticationError):
        run(auth_exchange(mechanism), [(535, b"5.7.8 no")])
    _, client = run(auth_exchange(mechanism), [OK])
    assert calls == ["expired", "fresh"]
    assert b"auth=Bearer fresh" in decoded(client.sent[0].split()[2])


def test_a_provider_that_returns_no_str() -> None:
    with pytest.raises(TypeError, match="must return a str"):
        run(auth_exchange(OAuthBearer("me@example.com", lambda: None)), [])


def test_a_coroutine_provider_on_the_blocking_path() -> None:
    async def provider() -> str:
        return "t"

    mechanism = XOAuth2("me@example.com", provider)
    with pytest.raises(TypeError, match="asyncio"):
        mechanism()  # smtplib's protocol: no driver to await it
    # (pytest runs with -W error: an un-awaited coroutine would have failed the test.)


def test_a_token_provider_driven_by_hand() -> None:
    mechanism = XOAuth2("me@example.com", lambda: "abc")
    assert mechanism.initial_response() == b"user=me@example.com\x01auth=Bearer abc\x01\x01"


# ------------------------------------------------------------- channel binding


def test_plus_without_tls_sends_nothing() -> None:
    with pytest.raises(ValueError, match="needs a TLS connection"):
        run(auth_exchange(ScramSHA256Plus("user", "pencil")), [])


# ------------------------------------------------- smtplib's authobject protocol


def test_mechanism_as_smtplib_authobject_client_first() -> None:
    plain = Plain("u", "p")
    assert plain() == "\0u\0p"


def test_mechanism_as_smtplib_authobject_without_initial_response() -> None:
    """smtplib with initial_response_ok=False calls authobject(challenge) first."""
    plain = Plain("u", "p")
    assert plain(b"") == "\0u\0p"
    login = Login("u", "p")
    assert [login(b"Username:"), login(b"Password:")] == ["u", "p"]


def test_mechanism_as_smtplib_authobject_server_first() -> None:
    login = Login("u", "p")
    assert [login(), login(b"Username:"), login(b"Password:")] == [None, "u", "p"]


def test_scram_as_smtplib_authobject() -> None:
    from test_sasl_vectors import RFC7677

    scram = ScramSHA256("user", "pencil", nonce=RFC7677["nonce"])
    assert scram() == RFC7677["client_first"].decode()
    assert scram(RFC7677["server_first"]) == RFC7677["client_final"].decode()
    assert scram(RFC7677["server_final"]) == ""
    with pytest.raises(ChallengeError):
        scram(b"v=forged")
