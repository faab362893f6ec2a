"""tls-server-end-point (RFC 5929 section 4.1): the hash chosen from the certificate's
signature algorithm, checked against ``cryptography``'s reading of real certificates."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from exchange_harness import challenge, decoded, run
from hypothesis import given
from hypothesis import strategies as st

from smtpx.auth import (
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    auth_exchange,
    certificate_hash,
    tls_server_end_point,
)

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())


def _certificate(key: Any, algorithm: Any, **sign: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    certificate = builder.sign(key, algorithm, **sign)
    return certificate.public_bytes(serialization.Encoding.DER)


def _expected(der: bytes) -> bytes:
    """RFC 5929 section 4.1, from cryptography's reading of the certificate."""
    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    assert algorithm is not None
    name = algorithm.name
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, der).digest()


SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")


def _resigned(oid_last_byte: int) -> bytes:
    """An RSA certificate whose outer signatureAlgorithm names another hash (the
    ``cryptography`` library no longer signs with MD5 or SHA-1; the signature itself
    is not checked by the binding)."""
    der = _certificate(_RSA, hashes.SHA256())
    at = der.rindex(SHA256_WITH_RSA)
    assert at > len(der) // 2  # the outer field, after tbsCertificate
    return der[: at + 10] + bytes([oid_last_byte]) + der[at + 11 :]


@pytest.mark.parametrize(("last", "algorithm"), [(4, "md5"), (5, "sha1")])
def test_md5_and_sha1_signatures_use_sha256(last: int, algorithm: str) -> None:
    """RFC 5929 section 4.1: "if ... that hash function is either MD5 or SHA-1, then
    use SHA-256"."""
    der = _resigned(last)
    assert x509.load_der_x509_certificate(der).signature_hash_algorithm.name == algorithm  # type: ignore[union-attr]
    assert certificate_hash(der) == "sha256"
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


CASES = {
    "rsa-sha224": lambda: _certificate(_RSA, hashes.SHA224()),
    "rsa-sha256": lambda: _certificate(_RSA, hashes.SHA256()),
    "rsa-sha384": lambda: _certificate(_RSA, hashes.SHA384()),
    "rsa-sha512": lambda: _certificate(_RSA, hashes.SHA512()),
    "ecdsa-sha256": lambda: _certificate(_EC, hashes.SHA256()),
    "ecdsa-sha384": lambda: _certificate(_EC, hashes.SHA384()),
    "ecdsa-sha512": lambda: _certificate(_EC, hashes.SHA512()),
    "dsa-sha256": lambda: _certificate(dsa.generate_private_key(2048), hashes.SHA256()),
    "rsa-pss-sha384": lambda: _certificate(
        _RSA,
        hashes.SHA384(),
        rsa_padding=padding.PSS(padding.MGF1(hashes.SHA384()), padding.PSS.DIGEST_LENGTH),
    ),
    "rsa-pss-sha512": lambda: _certificate(
        _RSA,
        hashes.SHA512(),
        rsa_padding=padding.PSS(padding.MGF1(hashes.SHA512()), padding.PSS.DIGEST_LENGTH),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_hash_follows_the_signature(case: str) -> None:
    der = CASES[case]()
    assert tls_server_end_point(der) == _expected(der)


def test_sha2_signatures_keep_their_hash() -> None:
    assert certificate_hash(CASES["rsa-sha384"]()) == "sha384"
    assert certificate_hash(CASES["ecdsa-sha512"]()) == "sha512"
    assert certificate_hash(CASES["rsa-pss-sha384"]()) == "sha384"


def test_a_trustme_certificate() -> None:
    """The certificates the driver tests use (ECDSA or RSA, SHA-256)."""
    ca = trustme.CA()
    pem = ca.issue_cert("localhost").cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_ed25519_has_no_binding() -> None:
    der = _certificate(ed25519.Ed25519PrivateKey.generate(), None)
    with pytest.raises(ValueError, match="no tls-server-end-point binding for Ed25519"):
        tls_server_end_point(der)


@pytest.mark.parametrize("cut", [1, 2, 10, 100, -1])
def test_a_truncated_certificate(cut: int) -> None:
    der = CASES["rsa-sha256"]()
    with pytest.raises(ValueError, match="not a DER certificate"):
        tls_server_end_point(der[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="bytes after"):
        tls_server_end_point(CASES["rsa-sha256"]() + b"\0")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_value_error_only(data: bytes) -> None:
    try:
        tls_server_end_point(data)
    except ValueError:
        pass


@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=255))
def test_a_corrupted_certificate_raises_value_error_only(position: int, value: int) -> None:
    der = bytearray(CASES["rsa-sha256"]())
    der[position % len(der)] = value
    try:
        tls_server_end_point(bytes(der))
    except ValueError:
        pass


# ------------------------------------------------------------- SCRAM -PLUS

NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)


def test_scram_plus_binds_the_certificate() -> None:
    der = CASES["rsa-sha384"]()
    mechanism = ScramSHA256Plus("user", "pencil", nonce=NONCE, peer_certificate=der)
    header = b"p=tls-server-end-point,,"
    assert mechanism.initial_response() == header + b"n=user,r=" + NONCE.encode()
    final = mechanism.respond(SERVER_FIRST)
    channel = final.split(b",")[0]
    assert decoded(channel[2:].decode()) == header + hashlib.sha384(der).digest()


def test_scram_plus_gets_the_certificate_from_the_exchange() -> None:
    der = CASES["ecdsa-sha256"]()
    replies = [challenge(SERVER_FIRST), (535, b"5.7.8 no")]
    with pytest.raises(Exception) as caught:
        mechanism = ScramSHA1Plus("user", "pencil", nonce=NONCE)
        run(auth_exchange(mechanism, peer_certificate=der), replies)
    sent = caught.value.client.sent  # type: ignore[attr-defined]
    assert sent[0].startswith("AUTH SCRAM-SHA-1-PLUS ")
    assert decoded(sent[0].split()[2]).startswith(b"p=tls-server-end-point,,n=user,r=")
    channel = decoded(sent[1]).split(b",")[0][2:]
    assert decoded(channel.decode()) == b"p=tls-server-end-point,," + hashlib.sha256(der).digest()


def test_plain_scram_ignores_the_certificate() -> None:
    mechanism = ScramSHA256("user", "pencil", nonce=NONCE)
    replies = [challenge(SERVER_FIRST), (535, b"no")]
    with pytest.raises(Exception) as caught:
        run(auth_exchange(mechanism, peer_certificate=CASES["rsa-sha256"]()), replies)
    assert decoded(caught.value.client.sent[1]).startswith(b"c=biws,")  # type: ignore[attr-defined]
