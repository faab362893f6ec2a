"""Named limits of the wire layer, each with the reason behind its number."""

from __future__ import annotations

__all__ = ["MAX_CHALLENGES", "MAX_LINE", "MAX_REPLY_BYTES", "MAX_REPLY_LINES"]

#: Longest reply line accepted, CRLF excluded.  RFC 5321 section 4.5.3.1.5 allows 512
#: octets; smtplib accepts 8192 ("more than 8 times larger than RFC 821"), and servers in
#: the wild send long EHLO and 5xx texts, so we keep smtplib's number.
MAX_LINE = 8192

#: Most lines in one reply.  Real EHLO replies have about 20; an EXPN of a large list a few
#: hundred.  Past this a server is flooding us, not answering.
MAX_REPLY_LINES = 1000

#: Most bytes in one reply, all lines together.  Bounds the memory a hostile server can make
#: the client hold for a single reply (MAX_LINE * MAX_REPLY_LINES would be 8 MB).
MAX_REPLY_BYTES = 1024 * 1024

#: Most 334 challenges answered in one AUTH exchange before the client gives up; the same
#: number as smtplib's ``_MAXCHALLENGE``.  No mechanism we speak needs more than three.
MAX_CHALLENGES = 5
