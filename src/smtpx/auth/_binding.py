"""TLS channel binding for the SCRAM -PLUS mechanisms: ``tls-server-end-point``
(RFC 5929 section 4), computed from the server's certificate in DER.

The binding ties the SASL exchange to the TLS connection it runs in: a man in the middle
who terminates TLS with another certificate cannot relay the exchange, because the
server sees a binding for a certificate it does not have.

``tls-exporter`` (RFC 9266), the binding TLS 1.3 prefers, needs the TLS keying material
exporter (RFC 5705), which Python's ``ssl`` module does not expose; ``tls-unique`` is
not defined for TLS 1.3 and is weak before it.  So only ``tls-server-end-point`` is
offered.  This module imports no TLS code: the driver passes the certificate as bytes
(``SSLSocket.getpeercert(binary_form=True)``).

The hash is the certificate's own signature hash, except that MD5 and SHA-1 are replaced
by SHA-256 (RFC 5929 section 4.1); signature algorithms with no single hash (Ed25519,
Ed448) have no binding defined, and are refused rather than guessed.  The hash is found
with a small DER reader (X.690) that walks only the three outer fields of the
certificate (RFC 5280 section 4.1).
"""

from __future__ import annotations

import hashlib

__all__ = ["TLS_SERVER_END_POINT", "certificate_hash", "tls_server_end_point"]

TLS_SERVER_END_POINT = "tls-server-end-point"

_SEQUENCE = 0x30
_OID = 0x06
_CONTEXT_0 = 0xA0  # [0], constructed: RSASSA-PSS-params' hashAlgorithm

# Signature algorithm OIDs and the hash each uses (RFC 3279, 4055, 5758, 8017).
_SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.4": "md5",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha1",  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
    "1.2.840.10045.4.1": "sha1",  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.10040.4.3": "sha1",  # dsa-with-sha1
    "2.16.840.1.101.3.4.3.1": "sha224",  # dsa-with-sha224
    "2.16.840.1.101.3.4.3.2": "sha256",  # dsa-with-sha256
}
_RSASSA_PSS = "1.2.840.113549.1.1.10"
# Hash algorithm OIDs, for RSASSA-PSS parameters (RFC 4055 section 3.1).
_HASHES = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_NO_HASH = {"1.3.101.112": "Ed25519", "1.3.101.113": "Ed448"}


class _Reader:
    """X.690 DER: tag, length, value; definite lengths only (DER has no others)."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def read(self, expected: int | None = None) -> tuple[int, int, int]:
        """The next element: (tag, start of its value, end of its value)."""
        data, pos = self.data, self.pos
        if pos >= self.end:
            raise ValueError("not a DER certificate: truncated")
        tag = data[pos]
        if expected is not None and tag != expected:
            raise ValueError(
                f"not a DER certificate: tag 0x{tag:02x} where 0x{expected:02x} is due"
            )
        if pos + 2 > self.end:
            raise ValueError("not a DER certificate: truncated")
        first = data[pos + 1]
        if tag & 0x1F == 0x1F:
            raise ValueError("not a DER certificate: multi-byte tags are not used there")
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            # 0x80 is BER's indefinite length, which DER forbids; four length bytes are
            # 4 GiB, far beyond any certificate.
            if count == 0 or count > 4 or pos + count > self.end:
                raise ValueError("not a DER certificate: bad length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > self.end:
            raise ValueError("not a DER certificate: truncated")
        self.pos = pos + length
        return tag, pos, pos + length

    def expect(self, tag: int) -> tuple[int, int]:
        _, start, end = self.read(tag)
        return start, end


def _oid(value: bytes) -> str:
    """An OBJECT IDENTIFIER's dotted form (X.690 section 8.19)."""
    if not value or value[-1] & 0x80:
        raise ValueError("not a DER certificate: bad object identifier")
    arcs: list[int] = []
    number = 0
    for byte in value:
        number = (number << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(number)
            number = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def _algorithm(reader: _Reader) -> tuple[str, int, int]:
    """An AlgorithmIdentifier: its OID and the span of its parameters (may be empty)."""
    start, end = reader.expect(_SEQUENCE)
    inner = _Reader(reader.data, start, end)
    oid_start, oid_end = inner.expect(_OID)
    return _oid(reader.data[oid_start:oid_end]), inner.pos, end


def _pss_hash(der: bytes, start: int, end: int) -> str:
    # RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1,
    # ... } (RFC 4055 section 3.1)
    params = _Reader(der, start, end)
    seq_start, seq_end = params.expect(_SEQUENCE)
    fields = _Reader(der, seq_start, seq_end)
    if fields.at_end():
        return "sha1"
    tag, value_start, value_end = fields.read()
    if tag != _CONTEXT_0:
        return "sha1"
    oid, _, _ = _algorithm(_Reader(der, value_start, value_end))
    try:
        return _HASHES[oid]
    except KeyError:
        raise ValueError(f"unknown hash algorithm {oid} in the certificate") from None


def certificate_hash(der: bytes) -> str:
    """The ``hashlib`` name of the hash tls-server-end-point uses for this certificate.

    Raises ValueError for bytes that are not a certificate, or a signature algorithm
    for which RFC 5929 defines no binding.
    """
    outer = _Reader(der)
    cert_start, cert_end = outer.expect(_SEQUENCE)  # Certificate
    if cert_end != len(der):
        raise ValueError("not a DER certificate: bytes after the certificate")
    fields = _Reader(der, cert_start, cert_end)
    fields.expect(_SEQUENCE)  # tbsCertificate, skipped
    oid, params_start, params_end = _algorithm(fields)  # signatureAlgorithm
    if oid == _RSASSA_PSS:
        name = _pss_hash(der, params_start, params_end)
    elif oid in _SIGNATURE_HASHES:
        name = _SIGNATURE_HASHES[oid]
    elif oid in _NO_HASH:
        raise ValueError(
            f"RFC 5929 defines no tls-server-end-point binding for {_NO_HASH[oid]} certificates"
        )
    else:
        raise ValueError(f"unknown signature algorithm {oid} in the certificate")
    # RFC 5929 section 4.1: "if the certificate's signatureAlgorithm uses a single hash
    # function and that hash function is either MD5 or SHA-1, then use SHA-256".
    return "sha256" if name in ("md5", "sha1") else name


def tls_server_end_point(der: bytes) -> bytes:
    """The ``tls-server-end-point`` channel binding data for a server certificate in DER.

    >>> tls_server_end_point(b"not a certificate")
    Traceback (most recent call last):
    ...
    ValueError: not a DER certificate: tag 0x6e where 0x30 is due
    """
    return hashlib.new(certificate_hash(der), der).digest()
