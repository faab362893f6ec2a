"""Server URLs (``smtpx._url``): every scheme, credentials, and the errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx._url import Endpoint, parse_url


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "lmtp"),
    [
        ("smtps://mail.example.org", "mail.example.org", 465, "implicit", False),
        ("smtps://mail.example.org:2465", "mail.example.org", 2465, "implicit", False),
        ("smtp+starttls://mail.example.org", "mail.example.org", 587, "starttls", False),
        ("SMTP+STARTTLS://Mail.Example.org:25", "mail.example.org", 25, "starttls", False),
        ("smtp://mail.example.org", "mail.example.org", 25, "none", False),
        ("smtp://[::1]:2525", "::1", 2525, "none", False),
        ("smtp://127.0.0.1:2525/", "127.0.0.1", 2525, "none", False),
        ("lmtp://mx.example.org", "mx.example.org", 24, "none", True),
        ("lmtp://mx.example.org:2003", "mx.example.org", 2003, "none", True),
    ],
)
def test_schemes(url: str, host: str, port: int, tls: str, lmtp: bool) -> None:
    endpoint = parse_url(url)
    assert (endpoint.host, endpoint.port, endpoint.tls, endpoint.lmtp) == (host, port, tls, lmtp)
    assert not endpoint.unix
    assert endpoint.username is None and endpoint.password is None


def test_lmtp_unix_socket() -> None:
    endpoint = parse_url("lmtp+unix:///var/run/dovecot/lmtp")
    assert endpoint.unix and endpoint.lmtp
    assert endpoint.host == "/var/run/dovecot/lmtp"
    assert repr(endpoint) == "Endpoint('lmtp+unix:///var/run/dovecot/lmtp')"


def test_percent_encoded_credentials() -> None:
    endpoint = parse_url("smtps://al%40ice:p%3As%2Fs%20w%C3%B6rd@mail.example.org")
    assert endpoint.username == "al@ice"
    assert endpoint.password == "p:s/s wörd"


def test_user_name_with_a_bare_at_sign() -> None:
    endpoint = parse_url("smtp+starttls://alice@example.org:s3cret@smtp.example.org")
    assert endpoint.username == "alice@example.org"
    assert endpoint.password == "s3cret"
    assert endpoint.host == "smtp.example.org"


def test_repr_and_errors_never_show_the_password() -> None:
    endpoint = parse_url("smtps://alice:hunter2@mail.example.org")
    assert "hunter2" not in repr(endpoint)
    assert repr(endpoint) == "Endpoint('smtps://alice:***@mail.example.org:465')"
    with pytest.raises(ValueError) as caught:
        parse_url("smtps://alice:hunter2@mail.example.org:99999")
    assert "hunter2" not in str(caught.value)
    assert "alice:***@" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail.example.org", "unknown server URL scheme"),
        ("mail.example.org:25", "unknown server URL scheme"),
        ("smtp://", "names no host"),
        ("smtp://mail.example.org:notaport", "invalid port"),
        ("smtp://mail.example.org:70000", "invalid port"),
        ("smtp://mail.example.org/path", "has a path"),
        ("smtp://mail.example.org?auth=plain", "query or fragment"),
        ("smtp://mail.example.org\r\nRCPT TO:<x>", "CR, LF or NUL"),
        ("lmtp+unix://relative/path", "absolute socket path"),
        ("smtps://alice:%FF@mail.example.org", "not UTF-8"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_url(url)


def test_not_a_string() -> None:
    with pytest.raises(TypeError):
        parse_url(b"smtp://mail.example.org")  # type: ignore[arg-type]


@given(
    user=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    password=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)
def test_any_credentials_round_trip_through_percent_encoding(user: str, password: str) -> None:
    from urllib.parse import quote

    url = f"smtps://{quote(user, safe='')}:{quote(password, safe='')}@mail.example.org"
    endpoint = parse_url(url)
    assert (endpoint.username, endpoint.password) == (user, password)
    assert isinstance(endpoint, Endpoint)
