"""The EHLO/LHLO capability set (RFC 5321 section 4.1.1.1, RFC 1869)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Extensions"]

_KEYWORD_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


def _keyword_length(line: bytes) -> int:
    """Length of the ehlo-keyword at the start of *line* (RFC 5321: ALPHA/DIGIT then -)."""
    if not line or line[0] not in _KEYWORD_CHARS or line[0] == 0x2D:
        return 0
    n = 1
    while n < len(line) and line[n] in _KEYWORD_CHARS:
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class Extensions:
    """Service extensions a server offered, keyed by lower-case keyword.

    Values are the parameter text, exactly as smtplib's ``esmtp_features`` holds them
    (``AUTH`` lines, including the pre-standard ``AUTH=`` form, are merged).

    >>> ext = Extensions.from_ehlo_lines([b"mx.example", b"SIZE 1000", b"AUTH PLAIN"])
    >>> "size" in ext, ext.size_limit, sorted(ext.auth_mechanisms)
    (True, 1000, ['PLAIN'])
    """

    keywords: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_ehlo_lines(cls, lines: Iterable[bytes]) -> Extensions:
        """Parse the lines of a 250 reply to EHLO/LHLO (the first line is the greeting)."""
        found: dict[str, str] = {}
        for index, line in enumerate(lines):
            if index == 0:
                continue  # the server's name and greeting text, not a capability
            if line[:5].lower() == b"auth=":
                # Old servers advertise "AUTH=LOGIN PLAIN" (before RFC 2554 was final).
                found["auth"] = found.get("auth", "") + " " + line[5:].decode("latin-1")
                continue
            n = _keyword_length(line)
            if not n:
                continue
            keyword = line[:n].decode("ascii").lower()
            params = line[n:].decode("latin-1").strip()
            if keyword == "auth":
                found["auth"] = found.get("auth", "") + " " + params
            else:
                found[keyword] = params
        return cls(MappingProxyType(found))

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.lower() in self.keywords

    def params(self, keyword: str) -> str | None:
        """The parameter text of *keyword*, or None when it was not offered."""
        return self.keywords.get(keyword.lower())

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """SASL mechanisms offered with AUTH (RFC 4954 section 3), upper-cased."""
        return frozenset(m.upper() for m in self.keywords.get("auth", "").split())

    @property
    def size_limit(self) -> int | None:
        """The SIZE limit in octets (RFC 1870 section 4); None if absent or 0 (no limit)."""
        text = self.keywords.get("size", "")
        # isascii(): str.isdigit() also accepts digits such as "\xb2" that int() refuses.
        return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None

    def as_dict(self) -> dict[str, str]:
        """A fresh dict in the shape of smtplib's ``esmtp_features``."""
        return dict(self.keywords)
