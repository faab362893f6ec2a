"""``choose_mechanisms`` and ``create_mechanism``: the ranking is pure and total."""

from __future__ import annotations

import itertools

import pytest

from smtpx.auth import (
    MECHANISMS,
    CramMD5,
    External,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    ScramSHA1,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
    choose_mechanisms,
    create_mechanism,
)

EVERYTHING = " ".join(MECHANISMS)


def test_strongest_first_with_everything_available() -> None:
    assert choose_mechanisms(
        EVERYTHING, tls=True, channel_binding=True, has_password=True, has_token=True
    ) == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
        "LOGIN",
        "OAUTHBEARER",
        "XOAUTH2",
    ]


def test_without_tls_only_scram() -> None:
    assert choose_mechanisms(EVERYTHING, tls=False, has_password=True, has_token=True) == [
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
    ]


def test_plus_needs_channel_binding() -> None:
    offered = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN"
    assert choose_mechanisms(offered, tls=True, has_password=True) == ["SCRAM-SHA-256", "PLAIN"]


def test_a_token_alone() -> None:
    offered = "PLAIN LOGIN XOAUTH2 OAUTHBEARER"
    assert choose_mechanisms(offered, tls=True, has_token=True) == ["OAUTHBEARER", "XOAUTH2"]
    assert choose_mechanisms(offered, tls=False, has_token=True) == []


def test_cram_md5_is_never_chosen() -> None:
    assert choose_mechanisms("CRAM-MD5", tls=True, has_password=True) == []
    assert choose_mechanisms("CRAM-MD5", tls=False, has_password=True) == []


def test_external_needs_a_client_certificate_and_tls() -> None:
    offered = ["external", "plain"]
    assert choose_mechanisms(offered, tls=True, has_client_certificate=True) == ["EXTERNAL"]
    assert choose_mechanisms(offered, tls=False, has_client_certificate=True) == []
    assert choose_mechanisms(offered, tls=True, has_password=True) == ["PLAIN"]


def test_names_in_any_case_and_unknown_names_ignored() -> None:
    assert choose_mechanisms(["scram-sha-256", "GSSAPI", "NTLM"], tls=True, has_password=True) == [
        "SCRAM-SHA-256"
    ]


@pytest.mark.parametrize(
    "flags",
    list(itertools.product([False, True], repeat=5)),
    ids=lambda f: "".join(map(str, map(int, f))),
)
def test_every_choice_is_safe(flags: tuple[bool, ...]) -> None:
    tls, binding, password, token, certificate = flags
    chosen = choose_mechanisms(
        EVERYTHING,
        tls=tls,
        channel_binding=binding,
        has_password=password,
        has_token=token,
        has_client_certificate=certificate,
    )
    for name in chosen:
        cls = MECHANISMS[name]
        assert tls or not cls.requires_tls, name
        assert binding or cls.channel_binding is None, name
    assert len(chosen) == len(set(chosen))


def test_the_registry_names_match_the_classes() -> None:
    assert all(cls.name == name for name, cls in MECHANISMS.items())
    assert set(MECHANISMS) == {
        "CRAM-MD5",
        "EXTERNAL",
        "LOGIN",
        "OAUTHBEARER",
        "PLAIN",
        "SCRAM-SHA-1",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
        "XOAUTH2",
    }


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("plain", Plain),
        ("LOGIN", Login),
        ("CRAM-MD5", CramMD5),
        ("SCRAM-SHA-1", ScramSHA1),
        ("SCRAM-SHA-256", ScramSHA256),
        ("SCRAM-SHA-256-PLUS", ScramSHA256Plus),
    ],
)
def test_create_from_a_password(name: str, cls: type[Mechanism]) -> None:
    mechanism = create_mechanism(name, user="alice", password="s3cret")
    assert type(mechanism) is cls


def test_create_from_a_token() -> None:
    assert type(create_mechanism("XOAUTH2", user="a", token="t")) is XOAuth2
    assert type(create_mechanism("OAUTHBEARER", user="a", token=lambda: "t")) is OAuthBearer
    assert type(create_mechanism("EXTERNAL")) is External


def test_create_scram_with_the_y_flag() -> None:
    mechanism = create_mechanism("SCRAM-SHA-256", user="a", password="p", binding_supported=True)
    assert mechanism.initial_response().startswith(b"y,,")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("GSSAPI", {"password": "p"}, "does not speak"),
        ("PLAIN", {}, "needs a password"),
        ("XOAUTH2", {"password": "p"}, "needs a token"),
    ],
)
def test_create_refuses(name: str, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_mechanism(name, user="a", **kwargs)  # type: ignore[arg-type]
