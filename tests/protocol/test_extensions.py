"""Extensions: the EHLO/LHLO capability set, parsed as smtplib's ``esmtp_features``."""

from __future__ import annotations

import smtplib
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx._protocol import Extensions

# Hypothesis keys its internal caches by choice sequences, where b"" and 0 (or False) hash
# alike; a lookup then compares bytes with int inside hypothesis, which python -bb turns
# into an error.  Only warnings raised from hypothesis's own modules are ignored: a bytes
# comparison in smtpx or in these tests still fails.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:hypothesis")

SETTINGS = settings(max_examples=300, deadline=None)

POSTFIX = [
    b"mx.example.org",
    b"PIPELINING",
    b"SIZE 10240000",
    b"VRFY",
    b"ETRN",
    b"STARTTLS",
    b"ENHANCEDSTATUSCODES",
    b"8BITMIME",
    b"DSN",
    b"SMTPUTF8",
    b"CHUNKING",
]
EXCHANGE_OLD_AUTH = [
    b"mail.example.com Hello [192.0.2.1]",
    b"SIZE 37748736",
    b"AUTH GSSAPI NTLM LOGIN",
    b"AUTH=LOGIN",
    b"8BITMIME",
    b"BINARYMIME",
]
ODD = [
    b"weird.example OK",
    b"-leading-dash",
    b"#comment",
    b" SPACE-FIRST 1",
    b"",
    b"auth=PLAIN",
    b"Auth cram-md5",
    b"X-EXPS=LOGIN",
    b"SIZE   100   ",
    b"size 200",
    b"x\xe9 latin",
    b"AUTH",
    b"\xe9CLAIR",
]


def smtplib_features(lines: list[bytes]) -> dict[str, str]:
    """smtplib.SMTP.ehlo's esmtp_features for a 250 reply with *lines*."""
    client = smtplib.SMTP(local_hostname="localhost")
    client.putcmd = lambda *args: None  # type: ignore[method-assign]
    client.getreply = lambda: (250, b"\n".join(lines))  # type: ignore[method-assign]
    assert client.ehlo("x")[0] == 250
    return client.esmtp_features


def test_keywords() -> None:
    ext = Extensions.from_ehlo_lines(POSTFIX)
    assert ext.as_dict() == {
        "pipelining": "",
        "size": "10240000",
        "vrfy": "",
        "etrn": "",
        "starttls": "",
        "enhancedstatuscodes": "",
        "8bitmime": "",
        "dsn": "",
        "smtputf8": "",
        "chunking": "",
    }


def test_first_line_is_the_greeting_not_a_keyword() -> None:
    assert Extensions.from_ehlo_lines([b"SIZE 100"]).as_dict() == {}
    assert Extensions.from_ehlo_lines([b"AUTH=PLAIN", b"DSN"]).as_dict() == {"dsn": ""}
    assert Extensions.from_ehlo_lines([]).as_dict() == {}


def test_keys_are_lower_case_and_params_stripped() -> None:
    ext = Extensions.from_ehlo_lines([b"mx", b"StartTLS", b"SIZE   100   ", b"X-Foo a  b "])
    assert ext.as_dict() == {"starttls": "", "size": "100", "x-foo": "a  b"}


def test_auth_lines_are_merged() -> None:
    ext = Extensions.from_ehlo_lines(EXCHANGE_OLD_AUTH)
    # The leading spaces are smtplib's: each AUTH line appends " " + its text.
    assert ext.params("auth") == " GSSAPI NTLM LOGIN LOGIN"
    assert ext.auth_mechanisms == {"GSSAPI", "NTLM", "LOGIN"}


def test_old_style_auth_alone() -> None:
    ext = Extensions.from_ehlo_lines([b"mx", b"AUTH=LOGIN PLAIN"])
    assert ext.as_dict() == {"auth": " LOGIN PLAIN"}
    assert ext.auth_mechanisms == {"LOGIN", "PLAIN"}


def test_repeated_auth() -> None:
    ext = Extensions.from_ehlo_lines([b"mx", b"AUTH PLAIN", b"auth cram-md5", b"AUTH=xoauth2"])
    assert ext.params("AUTH") == " PLAIN cram-md5 xoauth2"
    assert ext.auth_mechanisms == {"PLAIN", "CRAM-MD5", "XOAUTH2"}


def test_repeated_keyword_keeps_the_last() -> None:
    assert Extensions.from_ehlo_lines([b"mx", b"SIZE 1", b"SIZE 2"]).params("size") == "2"


@pytest.mark.parametrize(
    "line", [b"-dash", b"#hash", b" space", b"\ttab", b"", b"=x", b"\xe9t\xe9", b"*"]
)
def test_lines_not_starting_with_a_letter_or_digit_are_skipped(line: bytes) -> None:
    assert Extensions.from_ehlo_lines([b"mx", line, b"DSN"]).as_dict() == {"dsn": ""}


def test_no_auth() -> None:
    assert Extensions.from_ehlo_lines(POSTFIX).auth_mechanisms == frozenset()
    assert Extensions().auth_mechanisms == frozenset()


@pytest.mark.parametrize(
    ("lines", "limit"),
    [
        ([b"SIZE 1000"], 1000),
        ([b"size 35882577"], 35882577),
        ([b"SIZE 0"], None),  # RFC 1870 section 4: 0 means no fixed limit
        ([b"SIZE"], None),
        ([], None),
        ([b"SIZE abc"], None),
        ([b"SIZE -5"], None),
        ([b"SIZE 1e6"], None),
        # "\xb2" is latin-1 superscript two: str.isdigit() says yes, int() says no.
        ([b"SIZE \xb2"], None),
        ([b"SIZE 1\xb3"], None),
    ],
)
def test_size_limit(lines: list[bytes], limit: int | None) -> None:
    assert Extensions.from_ehlo_lines([b"mx", *lines]).size_limit == limit


def test_contains_is_case_insensitive() -> None:
    ext = Extensions.from_ehlo_lines([b"mx", b"PIPELINING", b"starttls"])
    assert "pipelining" in ext
    assert "PIPELINING" in ext
    assert "StartTLS" in ext
    assert "size" not in ext
    assert b"pipelining" not in ext
    assert 1 not in ext
    assert None not in ext


def test_params() -> None:
    ext = Extensions.from_ehlo_lines([b"mx", b"SIZE 5", b"DSN"])
    assert ext.params("SIZE") == "5"
    assert ext.params("dsn") == ""
    assert ext.params("auth") is None


def test_empty() -> None:
    ext = Extensions()
    assert ext.as_dict() == {}
    assert "size" not in ext
    assert ext.size_limit is None


def test_keywords_cannot_be_changed() -> None:
    ext = Extensions.from_ehlo_lines([b"mx", b"DSN"])
    assert isinstance(ext.keywords, MappingProxyType)
    with pytest.raises(TypeError):
        ext.keywords["size"] = "1"  # type: ignore[index]
    copy = ext.as_dict()
    copy["size"] = "1"
    assert "size" not in ext
    assert ext.as_dict() == {"dsn": ""}


@pytest.mark.parametrize("lines", [POSTFIX, EXCHANGE_OLD_AUTH, ODD, [b"only.greeting"]])
def test_same_as_smtplib(lines: list[bytes]) -> None:
    assert Extensions.from_ehlo_lines(lines).as_dict() == smtplib_features(lines)


_LINE = st.one_of(
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"AUTH", b"auth=", b"Auth ", b"SIZE", b"8BITMIME", b"X-", b"a-b", b"-"]),
    st.tuples(
        st.sampled_from([b"AUTH", b"auth=", b"SIZE", b"pipelining", b"X1", b"9"]),
        st.sampled_from([b"", b" ", b"=", b"\t", b"\r", b"\x85", b"\xa0"]),
        st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
    ).map(b"".join),
)


@SETTINGS
@given(st.lists(_LINE, max_size=8))
def test_same_as_smtplib_for_any_lines(lines: list[bytes]) -> None:
    ext = Extensions.from_ehlo_lines(lines)
    assert ext.as_dict() == smtplib_features(lines)
    for keyword in ext.keywords:
        assert keyword in ext
        assert keyword.upper() in ext
