"""What ``smtpx probe`` reads from a certificate: subject, issuer, names and validity,
with a small DER reader (``smtpx.auth._binding``'s), and RFC 6125's host name rule."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from smtpx.auth._binding import _oid, _Reader

__all__ = ["CertificateFacts", "hostname_matches", "parse_certificate"]


_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_EXPLICIT_0, _EXPLICIT_3 = 0xA0, 0xA3
_BOOLEAN, _OCTET_STRING = 0x01, 0x04
_DNS_NAME, _IP_ADDRESS = 0x82, 0x87  # GeneralName [2] and [7] (RFC 5280 section 4.2.1.6)
_SUBJECT_ALT_NAME = "2.5.29.17"
# Attribute types as OpenSSL and RFC 4514 write them.
_ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}
# String types in names (X.690): BMPString is UTF-16, UniversalString UTF-32, the
# others are read as UTF-8 (a superset of the ASCII ones; T61 is Latin-1 in practice).
_STRING_CODECS = {
    0x0C: "utf-8",
    0x13: "utf-8",
    0x16: "utf-8",
    0x14: "latin-1",
    0x1E: "utf-16-be",
    0x1C: "utf-32-be",
}


class CertificateFacts:
    """What the probe shows of one certificate."""

    def __init__(
        self,
        subject: str,
        issuer: str,
        sans: list[str],
        not_before: datetime.datetime,
        not_after: datetime.datetime,
    ) -> None:
        self.subject, self.issuer, self.sans = subject, issuer, sans
        self.not_before, self.not_after = not_before, not_after

    def as_dict(self, now: datetime.datetime | None = None) -> dict[str, Any]:
        now = now or datetime.datetime.now(datetime.UTC)
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": self.sans,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "expires_in_days": (self.not_after - now).days,
            "not_yet_valid": now < self.not_before,
        }


def parse_certificate(der: bytes) -> CertificateFacts:
    """Subject, issuer, subject alternative names and validity of a DER certificate
    (RFC 5280 section 4.1). Raises ValueError for anything else.

    Example:
        >>> parse_certificate(b"0")
        Traceback (most recent call last):
        ...
        ValueError: not a DER certificate: truncated
    """
    if not isinstance(der, bytes):
        raise TypeError("a certificate in DER is bytes")
    outer = _Reader(der)
    start, end = outer.expect(_SEQUENCE)
    tbs_start, tbs_end = _Reader(der, start, end).expect(_SEQUENCE)
    fields = _Reader(der, tbs_start, tbs_end)
    tag, _, _ = fields.read()
    if tag == _EXPLICIT_0:  # version
        fields.read(0x02)  # serialNumber
    elif tag != 0x02:
        raise ValueError("not a DER certificate: no serial number")
    fields.expect(_SEQUENCE)  # signature
    issuer = _name(der, *fields.expect(_SEQUENCE))
    validity = _Reader(der, *fields.expect(_SEQUENCE))
    not_before, not_after = _time(der, validity), _time(der, validity)
    subject = _name(der, *fields.expect(_SEQUENCE))
    fields.expect(_SEQUENCE)  # subjectPublicKeyInfo
    sans: list[str] = []
    while not fields.at_end():
        tag, value_start, value_end = fields.read()
        if tag == _EXPLICIT_3:
            sans = _subject_alt_names(der, value_start, value_end)
    return CertificateFacts(subject, issuer, sans, not_before, not_after)


def _name(der: bytes, start: int, end: int) -> str:
    """A Name as ``CN=..., O=...``, in the certificate's order."""
    parts = []
    rdns = _Reader(der, start, end)
    while not rdns.at_end():
        attributes = _Reader(der, *rdns.expect(_SET))
        while not attributes.at_end():
            pair = _Reader(der, *attributes.expect(_SEQUENCE))
            oid = _oid(der[slice(*pair.expect(_OID))])
            tag, value_start, value_end = pair.read()
            codec = _STRING_CODECS.get(tag, "latin-1")
            value = der[value_start:value_end].decode(codec, errors="replace")
            parts.append(f"{_ATTRIBUTE_NAMES.get(oid, oid)}={value}")
    return ", ".join(parts)


def _time(der: bytes, reader: _Reader) -> datetime.datetime:
    # RFC 5280 section 4.1.2.5: UTCTime YYMMDDHHMMSSZ (years 1950-2049), else
    # GeneralizedTime YYYYMMDDHHMMSSZ; both in UTC with seconds and no fractions.
    tag, start, end = reader.read()
    text = der[start:end].decode("ascii", errors="replace")
    if tag == _UTC_TIME and len(text) == 13:
        year = int(text[:2]) if text[:2].isdigit() else -1
        text = ("19" if year >= 50 else "20") + text
    if tag not in (_UTC_TIME, _GENERALIZED_TIME) or len(text) != 15 or not text.endswith("Z"):
        raise ValueError("not a DER certificate: bad validity time")
    try:
        moment = datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError("not a DER certificate: bad validity time") from None
    return moment.replace(tzinfo=datetime.UTC)


def _subject_alt_names(der: bytes, start: int, end: int) -> list[str]:
    extensions = _Reader(der, *_Reader(der, start, end).expect(_SEQUENCE))
    while not extensions.at_end():
        extension = _Reader(der, *extensions.expect(_SEQUENCE))
        oid = _oid(der[slice(*extension.expect(_OID))])
        tag, value_start, value_end = extension.read()
        if tag == _BOOLEAN:  # critical
            tag, value_start, value_end = extension.read()
        if tag != _OCTET_STRING:
            raise ValueError("not a DER certificate: bad extension")
        if oid != _SUBJECT_ALT_NAME:
            continue
        names = _Reader(der, *_Reader(der, value_start, value_end).expect(_SEQUENCE))
        found = []
        while not names.at_end():
            tag, name_start, name_end = names.read()
            value = der[name_start:name_end]
            if tag == _DNS_NAME:
                found.append("DNS:" + value.decode("ascii", errors="replace"))
            elif tag == _IP_ADDRESS and len(value) in (4, 16):
                found.append(f"IP:{ipaddress.ip_address(value)}")
        return found
    return []


def hostname_matches(host: str, sans: list[str]) -> bool:
    """Whether a certificate with these subject alternative names is valid for *host*
    (RFC 6125 section 6.4: a wildcard only as the whole left-most label; no fallback to
    the common name, as Python's ``ssl`` does not fall back either).

    Example:
        >>> hostname_matches("mx.example.org", ["DNS:*.example.org"])
        True
        >>> hostname_matches("a.mx.example.org", ["DNS:*.example.org"])
        False
        >>> hostname_matches("127.0.0.1", ["DNS:localhost", "IP:127.0.0.1"])
        True
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return any(
            san.startswith("IP:") and ipaddress.ip_address(san[3:]) == address for san in sans
        )
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return False
    for san in sans:
        if not san.startswith("DNS:"):
            continue
        pattern = san[4:].lower().rstrip(".")
        if pattern == name:
            return True
        label, dot, rest = name.partition(".")
        if pattern.startswith("*.") and dot and label and rest == pattern[2:] and "." in rest:
            return True
    return False
