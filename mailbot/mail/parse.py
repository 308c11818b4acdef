"""Turn raw inbound bytes into a ParsedMessage: decoded headers, a text body, attachments.

Parsing never raises for ugly mail: broken charsets fall back to a best guess, broken headers
are read as absent. It raises `Unparseable` only for input that is not an email message at all
(no header block), which the worker quarantines.
"""

from __future__ import annotations

import email
import email.utils
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import errors
from email.feedparser import BytesFeedParser
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from functools import lru_cache

from mailbot.mail import flowed
from mailbot.mail.headers import (
    addresses,
    decode_header_text,
    header_value,
    header_values,
    message_ids,
)
from mailbot.mail.html import html_to_text
from mailbot.mail.limits import HEADER_END_RE
from mailbot.mail.mime import (
    DSN_TYPES,
    MESSAGE_TYPES,
    children,
    content_type,
    is_attachment,
    iter_parts,
    part_bytes,
    part_text,
)


class Unparseable(Exception):
    """The input is not an email message we can take; the text says why."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool = False  # shown in the body (Content-ID, not "attachment"): logos, pastes


@dataclass(frozen=True)
class ParsedMessage:
    message: EmailMessage
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_addr: str  # '' when the message names no usable sender
    from_name: str
    reply_to: tuple[tuple[str, str], ...]
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    date: datetime | None
    text: str
    from_html: bool
    attachments: tuple[Attachment, ...] = field(default=())

    def header(self, name: str) -> str:
        """A decoded header value, '' when absent or unreadable."""
        return header_value(self.message, name)


# -- bodies ------------------------------------------------------------------------------------


def _leaves(msg: Message) -> tuple[Message | None, list[Message]]:
    """(the text body part, the attachment parts): plain text preferred over HTML.

    Like EmailMessage.get_body() and iter_attachments(), but reading types from the raw
    headers (see mailbot.mail.mime) and never descending into attached messages.
    """
    plain = html = None
    attachments = []
    for part in iter_parts(msg):
        ctype = content_type(part)
        if ctype.startswith("multipart/") or ctype in DSN_TYPES:
            continue
        if ctype == "text/plain" and plain is None and not is_attachment(part):
            plain = part
        elif ctype == "text/html" and html is None and not is_attachment(part):
            html = part
        elif part is not msg:
            attachments.append(part)
    return plain or html, attachments


FLOWED_RE = re.compile(r";\s*format\s*=\s*\"?flowed\b", re.IGNORECASE)
DELSP_RE = re.compile(r";\s*delsp\s*=\s*\"?yes\b", re.IGNORECASE)
# Outlook's plain-text part stands "[cid:image001.png@01DB4A2B.5C3D6E70]" where the HTML part
# shows an inline image (a logo, a pasted screenshot): nothing a reader of the text can use.
CID_RE = re.compile(r"\[cid:[^\]\s]*\]")


def _without_cid_placeholders(text: str) -> str:
    """The text without "[cid:…]" placeholders; a line that held only those goes too."""
    lines = []
    for line in text.split("\n"):
        if "[cid:" in line:
            cleaned = CID_RE.sub("", line)
            if cleaned.strip() or not line.strip():
                lines.append(cleaned.rstrip())
            continue
        lines.append(line)
    return "\n".join(lines)


def _body(part: Message | None) -> tuple[str, bool]:
    if part is None:
        return "", False
    text = part_text(part)
    if content_type(part) == "text/html":
        return html_to_text(text), True
    text = text.replace("\r\n", "\n")
    ctype = header_value(part, "content-type")
    if FLOWED_RE.search(ctype):  # RFC 3676: Thunderbird, Apple Mail
        text = flowed.decode(text, delsp=bool(DELSP_RE.search(ctype)))
    if "[cid:" in text:
        text = _without_cid_placeholders(text)
    return text, False


def _attachment(part: Message) -> Attachment | None:
    ctype = content_type(part)
    try:
        if ctype in MESSAGE_TYPES:
            inner = children(part)
            data = inner[0].as_bytes() if inner else b""
        else:
            data = part_bytes(part)
        filename = part.get_filename() or ""
    except Exception:  # a part we cannot even read is left out; the raw message keeps it
        return None
    inline = bool(header_value(part, "content-id")) and not header_value(
        part, "content-disposition"
    ).lower().startswith("attachment")
    return Attachment(
        filename=decode_header_text(str(filename)), content_type=ctype, data=data, inline=inline
    )


def _date(msg: Message) -> datetime | None:
    raw = header_value(msg, "date")
    try:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed and parsed.tzinfo else None


class MemoizingPolicy(EmailPolicy):
    """policy.default, remembering parsed header values.

    EmailPolicy parses a header through the header registry on *every* access, and the parser
    itself asks each part for its Content-Type and Content-Transfer-Encoding. In a stream of
    mail the same values ("text/plain; charset=utf-8", "base64") come again and again, so the
    parsed (immutable) header objects are kept in a bounded, thread-safe lru_cache. Behaviour
    is that of policy.default; only repeated work is skipped.
    """

    def header_fetch_parse(self, name: str, value: str):
        if hasattr(value, "name") or len(value) >= 1000:  # long values are rare repeats
            return super().header_fetch_parse(name, value)
        return _parse_header(self, name, value)


# EmailPolicy's own header_fetch_parse, remembered per (policy, name, value).
_parse_header = lru_cache(maxsize=4096)(EmailPolicy.header_fetch_parse)


POLICY = MemoizingPolicy()

HEADER_LINE_RE = re.compile(rb"^(?:[!-9;-~]+[ \t]*:|[ \t])")


def _repair_header_block(raw: bytes) -> bytes | None:
    """The message with non-header lines dropped from its header block, or None if none were.

    A stray line among the headers ends the header block for the parser, which would lose
    From, Subject and everything after it.
    """
    end = HEADER_END_RE.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    lines = head.splitlines(keepends=True)
    kept = [line for line in lines if HEADER_LINE_RE.match(line)]
    return b"".join(kept) + rest if len(kept) < len(lines) else None


FEED_CHUNK = 1 << 20


def _feed(raw: bytes) -> EmailMessage:
    """email.message_from_bytes() without its copies of the whole message.

    message_from_bytes decodes all of it to one str and wraps that in a StringIO, which keeps
    four bytes a character: a 25 MB message cost 125 MB before parsing began. The feed parser
    takes the bytes in 1 MB slices instead.
    """
    parser = BytesFeedParser(policy=POLICY)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(raw[start : start + FEED_CHUNK])
    return parser.close()  # type: ignore[return-value]


def _message(raw: bytes) -> EmailMessage:
    # A leading blank line (seen in the wild) would make every header part of the body.
    raw = raw.lstrip(b"\r\n")
    msg = _feed(raw)
    if any(isinstance(d, errors.MissingHeaderBodySeparatorDefect) for d in msg.defects):
        repaired = _repair_header_block(raw)
        if repaired is not None:
            msg = _feed(repaired)
    return msg


def parse(raw: bytes) -> ParsedMessage:
    """Parse raw message bytes; raise Unparseable when it is not mail at all."""
    try:
        return _parse(raw)
    except RecursionError as exc:
        # The stdlib parser recurses per MIME level and per nested comment in a header;
        # limits.check stops the common shapes, this catches the rest.
        raise Unparseable("MIME structure or a header nested too deeply to parse") from exc


def _parse(raw: bytes) -> ParsedMessage:
    msg = _message(raw)
    if not list(msg.raw_items()):
        raise Unparseable("no header block: not an email message")
    senders = addresses(msg, "from") or addresses(msg, "sender")
    from_name, from_addr = senders[0] if senders else ("", "")
    body, attachment_parts = _leaves(msg)
    text, from_html = _body(body)
    ids = message_ids(header_value(msg, "message-id"))
    return ParsedMessage(
        message=msg,
        message_id=ids[0] if ids else None,
        in_reply_to=message_ids(" ".join(header_values(msg, "in-reply-to"))),
        references=message_ids(" ".join(header_values(msg, "references"))),
        subject=header_value(msg, "subject"),
        from_addr=from_addr,
        from_name=from_name,
        reply_to=addresses(msg, "reply-to"),
        to=addresses(msg, "to"),
        cc=addresses(msg, "cc"),
        date=_date(msg),
        text=text,
        from_html=from_html,
        attachments=tuple(filter(None, map(_attachment, attachment_parts))),
    )
