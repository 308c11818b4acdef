"""MIME structure without the header registry: part types, bounded walks, decoded part text.

`Message.get_content_type()` re-parses Content-Type through policy.default's header registry
on every call; reading the raw header with a regular expression is an order of magnitude
cheaper, and it never raises on a malformed header.
"""

from __future__ import annotations

import binascii
import contextlib
import re
from collections.abc import Iterator
from email.message import Message

from mailbot.mail.charsets import decode_bytes
from mailbot.mail.headers import header_value

# Caps on MIME walking: hostile mail nests message/rfc822 thousands of levels deep.
MAX_DEPTH = 12
MAX_PARTS = 300
DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_CTYPE_RE = re.compile(r"^\s*([\w.+-]+/[\w.+-]+)")
_CHARSET_RE = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
_ATTACHMENT_RE = re.compile(r"^\s*attachment\b", re.IGNORECASE)


def content_type(part: Message) -> str:
    """Lower-case maintype/subtype; the MIME default when missing or unparseable."""
    match = _CTYPE_RE.match(header_value(part, "content-type").lower())
    if match:
        return match.group(1)
    try:
        return part.get_default_type()  # message/rfc822 inside multipart/digest
    except Exception:
        return "text/plain"


def charset(part: Message) -> str | None:
    match = _CHARSET_RE.search(header_value(part, "content-type"))
    return match.group(1) if match else None


def is_attachment(part: Message) -> bool:
    """Content-Disposition: attachment, or a filename on the part."""
    disposition = header_value(part, "content-disposition")
    return (
        bool(_ATTACHMENT_RE.match(disposition))
        or "name=" in disposition.lower()
        or ("name=" in header_value(part, "content-type").lower())
    )


def children(part: Message) -> list[Message]:
    """Sub-parts of a multipart or message/* part; [] otherwise or when unreadable."""
    if not part.is_multipart():  # get_payload() would parse Content-Transfer-Encoding
        return []
    try:
        payload = part.get_payload()
    except Exception:  # broken structure
        return []
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return []


def iter_parts(msg: Message) -> Iterator[Message]:
    """Depth-first parts, bounded, without entering attached messages or DSN field blocks."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        ctype = content_type(part)
        if depth < MAX_DEPTH and ctype not in DSN_TYPES and ctype not in MESSAGE_TYPES:
            stack.extend((child, depth + 1) for child in reversed(children(part)))


def part_bytes(part: Message) -> bytes:
    """The transfer-decoded payload of a leaf part (base64, quoted-printable, 8bit)."""
    if header_value(part, "content-transfer-encoding").strip().lower() == "base64":
        # Straight from the str: get_payload(decode=True) first makes a bytes copy of the
        # whole encoded text (a 25 MB message held three copies of its attachment at once).
        encoded = part.get_payload()
        if isinstance(encoded, str | bytes):  # a multipart's list of parts is not base64
            with contextlib.suppress(binascii.Error, ValueError):
                return binascii.a2b_base64(encoded)
    try:
        data = part.get_payload(decode=True)
    except Exception:  # undecodable transfer encoding: the raw text is all there is
        data = None
    if isinstance(data, bytes):
        return data
    try:
        payload = part.get_payload()
    except Exception:
        return b""
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def part_text(part: Message, limit: int | None = None) -> str:
    """The decoded text of a leaf part, lenient about charsets and transfer encodings."""
    data = part_bytes(part)
    if limit is not None:
        data = data[:limit]
    return decode_bytes(data, charset(part))
