"""Enhanced status codes (RFC 3463), as servers put them in reply text (RFC 2034)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EnhancedStatus"]

# RFC 3463 section 2: class "." subject "." detail; class is 2, 4 or 5, subject and detail
# 1 to 3 digits without leading zeros other than a lone 0.
_CLASSES = frozenset(b"245")
_MAX_PART = 3


def _number(part: bytes) -> int | None:
    if not 1 <= len(part) <= _MAX_PART or not part.isdigit():
        return None
    if len(part) > 1 and part[0] == 0x30:  # "01" is not a valid subject or detail
        return None
    return int(part)


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """``class.subject.detail``, e.g. ``5.1.1`` (bad destination mailbox address).

    >>> status = EnhancedStatus.parse(b"5.1.1 <nobody@example.org>: user unknown", 550)
    >>> str(status), status.is_permanent
    ('5.1.1', True)
    """

    klass: int
    subject: int
    detail: int

    @classmethod
    def parse(cls, text: bytes, code: int | None = None) -> EnhancedStatus | None:
        """The status at the start of *text*, or None.

        With *code*, a status whose class differs from the reply code's first digit is
        ignored (RFC 2034 section 3 requires them to agree).
        """
        head = text.split(None, 1)[0] if text else b""
        parts = head.split(b".")
        if len(parts) != 3 or len(parts[0]) != 1 or parts[0][0] not in _CLASSES:
            return None
        subject, detail = _number(parts[1]), _number(parts[2])
        if subject is None or detail is None:
            return None
        klass = parts[0][0] - 0x30
        if code is not None and code // 100 != klass:
            return None
        return cls(klass, subject, detail)

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"

    @property
    def is_success(self) -> bool:
        return self.klass == 2

    @property
    def is_transient(self) -> bool:
        """4.x.x: a persistent transient failure; the same message may succeed later."""
        return self.klass == 4

    @property
    def is_permanent(self) -> bool:
        """5.x.x: a permanent failure; resending will not help."""
        return self.klass == 5
