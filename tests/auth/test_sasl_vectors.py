"""The RFCs' examples, byte for byte: each mechanism run through ``auth_exchange``
against the server's side of the published exchange."""

from __future__ import annotations

import base64

import pytest
from exchange_harness import b64, challenge, decoded, run

import smtpx
from smtpx.auth import (
    CramMD5,
    External,
    Login,
    OAuthBearer,
    Plain,
    ScramSHA1,
    ScramSHA256,
    XOAuth2,
    auth_exchange,
)

OK = (235, b"2.7.0 Authentication successful")


# ---------------------------------------------------------------- RFC 4616, PLAIN


def test_rfc4616_plain_example() -> None:
    # Section 4: authcid "tim", passwd "tanstaaftanstaaf", no authzid.
    result, client = run(auth_exchange(Plain("tim", "tanstaaftanstaaf")), [OK])
    assert client.sent == ["AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm"]
    assert result == OK


def test_rfc4616_plain_example_with_authzid() -> None:
    # Section 4: Kurt asks to act as Ursel.
    mechanism = Plain("Kurt", "xipj3plmq", authzid="Ursel")
    _, client = run(auth_exchange(mechanism), [OK])
    assert client.sent == ["AUTH PLAIN VXJzZWwAS3VydAB4aXBqM3BsbXE="]


def test_plain_utf8_credentials() -> None:
    _, client = run(auth_exchange(Plain("jörg", "pässwörd")), [OK])
    assert decoded(client.sent[0].split()[2]) == "\0jörg\0pässwörd".encode()


@pytest.mark.parametrize("field", ["user", "password", "authzid"])
def test_plain_refuses_nul(field: str) -> None:
    values = {"user": "u", "password": "p", "authzid": "", field: "a\0b"}
    with pytest.raises(ValueError, match="NUL"):
        Plain(values["user"], values["password"], authzid=values["authzid"])


# ------------------------------------------------------------ RFC 2195, CRAM-MD5


def test_rfc2195_cram_md5_example() -> None:
    # Section 2, as base64 on the wire.
    server = (334, b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
    _, client = run(auth_exchange(CramMD5("tim", "tanstaaftanstaaf")), [server, OK])
    assert client.sent == ["AUTH CRAM-MD5", "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"]


def test_cram_md5_refuses_a_second_challenge() -> None:
    server = (334, b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
    with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
        run(auth_exchange(CramMD5("tim", "x")), [server, challenge(b"again"), (501, b"ok")])
    assert caught.value.client.sent[-1] == "*"  # type: ignore[attr-defined]


# -------------------------------------------------------------------- LOGIN


def test_login_answers_user_then_password() -> None:
    replies = [challenge(b"Username:"), challenge(b"Password:"), OK]
    _, client = run(auth_exchange(Login("alice", "s3cret")), replies)
    assert client.sent == ["AUTH LOGIN", "YWxpY2U=", "czNjcmV0"]


def test_login_refuses_a_third_challenge() -> None:
    replies = [challenge(b"Username:"), challenge(b"Password:"), challenge(b"?"), (501, b"")]
    with pytest.raises(smtpx.SMTPAuthenticationError):
        run(auth_exchange(Login("alice", "s3cret")), replies)


# ------------------------------------------------------------ RFC 5802, RFC 7677

RFC5802 = {
    "nonce": "fyko+d2lbbFgONRv9qkxdawL",
    "client_first": b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "server_first": b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "client_final": b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
    b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "server_final": b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
}
RFC7677 = {
    "nonce": "rOprNGfwEbeRWgbNEkqO",
    "client_first": b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}
SCRAM_VECTORS = [(ScramSHA1, RFC5802), (ScramSHA256, RFC7677)]


@pytest.mark.parametrize(("cls", "vector"), SCRAM_VECTORS, ids=["RFC5802", "RFC7677"])
def test_scram_rfc_example(cls: type[ScramSHA1], vector: dict[str, object]) -> None:
    mechanism = cls("user", "pencil", nonce=str(vector["nonce"]))
    replies = [
        challenge(vector["server_first"]),  # type: ignore[arg-type]
        challenge(vector["server_final"]),  # type: ignore[arg-type]
        OK,
    ]
    result, client = run(auth_exchange(mechanism), replies)
    assert result == OK
    auth, final, empty = client.sent
    assert auth.split()[:2] == ["AUTH", cls.name]
    assert decoded(auth.split()[2]) == vector["client_first"]
    assert decoded(final) == vector["client_final"]
    assert empty == ""  # RFC 4954 section 4: the server-final challenge gets an empty line


@pytest.mark.parametrize(("cls", "vector"), SCRAM_VECTORS, ids=["RFC5802", "RFC7677"])
def test_scram_wrong_server_signature_cancels(
    cls: type[ScramSHA1], vector: dict[str, bytes]
) -> None:
    forged = b"v=" + base64.b64encode(b"\0" * len(base64.b64decode(vector["server_final"][2:])))
    replies = [challenge(vector["server_first"]), challenge(forged), (501, b"5.7.0 cancelled")]
    with pytest.raises(smtpx.SMTPServerSignatureError) as caught:
        run(auth_exchange(cls("user", "pencil", nonce=str(vector["nonce"]))), replies)
    assert caught.value.client.sent[-1] == "*"  # type: ignore[attr-defined]
    assert isinstance(caught.value, smtpx.SMTPAuthenticationError)


def test_scram_success_without_server_signature_closes() -> None:
    """A server that says 235 right after the client's proof never proved it knows the
    password: an impostor that accepts anything.  The connection is closed."""
    replies = [challenge(RFC7677["server_first"]), OK]
    with pytest.raises(smtpx.SMTPServerSignatureError) as caught:
        run(auth_exchange(ScramSHA256("user", "pencil", nonce=RFC7677["nonce"])), replies)
    assert caught.value.smtp_code == 235
    assert caught.value.client.sent[-1] == "<close>"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("server_first", "reason"),
    [
        (b"r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", b"nonce"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", b"nonce"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", b"iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000000", b"iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096", b"number"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=%%%,i=4096", b"base64"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096", b"empty"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", b"lacks"),
        (b"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", b"extension"),
        (b"garbage", b"malformed"),
        (b"r=rOprNGfwEbeRWgbNEkqO\xff,s=W22Z,i=4096", b"UTF-8"),
    ],
)
def test_scram_bad_server_first_cancels(server_first: bytes, reason: bytes) -> None:
    mechanism = ScramSHA256("user", "pencil", nonce=RFC7677["nonce"])
    with pytest.raises(smtpx.SMTPAuthenticationError) as caught:
        run(auth_exchange(mechanism), [challenge(server_first), (501, b"cancelled")])
    assert not isinstance(caught.value, smtpx.SMTPServerSignatureError)
    assert caught.value.smtp_code == 334
    assert reason in caught.value.smtp_error
    assert caught.value.client.sent[-1] == "*"  # type: ignore[attr-defined]


def test_scram_server_error_in_final_message() -> None:
    replies = [
        challenge(RFC7677["server_first"]),
        challenge(b"e=invalid-proof"),
        (501, b"cancelled"),
    ]
    with pytest.raises(smtpx.SMTPAuthenticationError, match="invalid-proof") as caught:
        run(auth_exchange(ScramSHA256("user", "pencil", nonce=RFC7677["nonce"])), replies)
    assert not isinstance(caught.value, smtpx.SMTPServerSignatureError)


def test_scram_escapes_names_and_prepares_them() -> None:
    mechanism = ScramSHA256("a,b=c\u00ad", "pencil", authzid="x=y", nonce="abc")
    assert mechanism.initial_response() == b"n,a=x=3Dy,n=a=2Cb=3Dc,r=abc"


def test_scram_password_is_saslprepped() -> None:
    """RFC 4013 section 3 example 1: "I<U+00AD>X" and "IX" are the same password."""

    def proof(password: str) -> bytes:
        mechanism = ScramSHA256("user", password, nonce=RFC7677["nonce"])
        mechanism.initial_response()
        return mechanism.respond(RFC7677["server_first"])

    assert proof("I\u00adX") == proof("IX") == proof("\u2168")
    assert proof("IX") != proof("ix")


def test_scram_refuses_a_prohibited_password_before_sending() -> None:
    with pytest.raises(ValueError, match="U\\+0007"):
        ScramSHA256("user", "bell\u0007")


def test_scram_binding_supported_flag() -> None:
    """RFC 5802 section 6: "y" says the client could bind but the server offered no
    -PLUS; the flag is part of the signed c= attribute too."""
    mechanism = ScramSHA256("user", "pencil", binding_supported=True, nonce=RFC7677["nonce"])
    assert mechanism.initial_response().startswith(b"y,,n=user,")
    assert mechanism.respond(RFC7677["server_first"]).startswith(b"c=eSws,")


def test_scram_new_nonce_for_each_exchange() -> None:
    mechanism = ScramSHA256("user", "pencil")
    first, second = mechanism.initial_response(), mechanism.initial_response()
    assert first != second
    assert len(first.split(b",r=")[1]) >= 24


def test_scram_repr_hides_the_password() -> None:
    assert "pencil" not in repr(ScramSHA256("user", "pencil"))
    assert repr(ScramSHA256("user", "pencil")) == "<ScramSHA256 SCRAM-SHA-256>"


# ------------------------------------------------------------ RFC 7628, OAUTHBEARER

RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="


def test_rfc7628_smtp_example() -> None:
    mechanism = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=587)
    _, client = run(auth_exchange(mechanism), [(235, b"Authentication successful.")])
    assert client.sent == [
        "AUTH OAUTHBEARER bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9"
        "NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    ]


def test_rfc7628_imap_example_initial_response() -> None:
    mechanism = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=143)
    assert b64(mechanism.initial_response()) == (
        b"bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9"
        b"QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    )


def test_rfc7628_smtp_failure_example() -> None:
    """The server's error challenge is answered with a single ^A ("AQ=="), and its
    final 535 comes back as SMTPOAuthError with the JSON."""
    mechanism = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=587)
    error_challenge = (
        334,
        b"eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciBtYWMiLCJzY29wZSI6Imh0dHBz"
        b"Oi8vbWFpbC5leGFtcGxlLmNvbS8ifQ==",
    )
    final = (535, b"5.7.8 Authentication credentials invalid")
    with pytest.raises(smtpx.SMTPOAuthError) as caught:
        run(auth_exchange(mechanism), [error_challenge, final])
    error = caught.value
    assert error.client.sent[1] == "AQ=="  # type: ignore[attr-defined]
    assert (error.smtp_code, error.smtp_error) == final
    assert error.details == {
        "status": "invalid_token",
        "schemes": "bearer mac",
        "scope": "https://mail.example.com/",
    }
    assert error.status == "invalid_token"
    assert isinstance(error, smtpx.SMTPAuthenticationError)


def test_oauthbearer_without_user_or_host() -> None:
    assert OAuthBearer("", "t0k").initial_response() == b"n,,\x01auth=Bearer t0k\x01\x01"


# ------------------------------------------------------------------ XOAUTH2


def test_xoauth2_google_example() -> None:
    mechanism = XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    _, client = run(auth_exchange(mechanism), [OK])
    assert client.sent == [
        "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRx"
        "bVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    ]


def test_xoauth2_error_challenge() -> None:
    google = b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
    replies = [challenge(google), (535, b"5.7.8 Username and Password not accepted")]
    with pytest.raises(smtpx.SMTPOAuthError) as caught:
        run(auth_exchange(XOAuth2("me@gmail.com", "expired")), replies)
    assert caught.value.client.sent[1] == ""  # type: ignore[attr-defined]
    assert caught.value.status == "400"


def test_oauth_error_challenge_that_is_not_json() -> None:
    replies = [challenge(b"not json"), (535, b"no")]
    with pytest.raises(smtpx.SMTPOAuthError) as caught:
        run(auth_exchange(XOAuth2("me@example.com", "t")), replies)
    assert caught.value.details == {"error": "not json"}


@pytest.mark.parametrize("token", ["", "a b", "a\x01b", "a\r\nb", "t\u00e9"])
def test_oauth_refuses_tokens_that_would_break_the_message(token: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        XOAuth2("me@example.com", token)


def test_oauth_refuses_control_characters_in_the_user() -> None:
    with pytest.raises(ValueError, match="control"):
        OAuthBearer("me\x01auth=Bearer evil", "t")


# ----------------------------------------------------------------- EXTERNAL


def test_external_empty_initial_response_is_an_equals_sign() -> None:
    _, client = run(auth_exchange(External()), [OK])
    assert client.sent == ["AUTH EXTERNAL ="]


def test_external_with_authzid() -> None:
    _, client = run(auth_exchange(External("list@example.org")), [OK])
    assert client.sent == ["AUTH EXTERNAL bGlzdEBleGFtcGxlLm9yZw=="]
