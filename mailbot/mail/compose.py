"""Build the MIME message of an outbox row: threading and automation headers, no injection."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime
from sqlite3 import Row
from typing import Any, cast

from mailbot import loops
from mailbot.config import Config
from mailbot.store import from_db

# Any control character (CR, LF, NUL, ...) in a header value could start a new header.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
# A msg-id as it may go on the wire: printable ASCII, no space, no brackets inside; one on a
# line of its own (after the folding space) stays within RFC 5322's 998 characters.
WIRE_MSGID_RE = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,994}>")
MSGID_HEADERS = frozenset({"message-id", "in-reply-to", "references"})
MAX_LINE = 998  # RFC 5322 §2.1.1: never longer, CRLF excluded


def wire_msg_ids(text: str) -> list[str]:
    """The msg-ids in `text` that can be written as they are, in order, without repeats."""
    return list(dict.fromkeys(WIRE_MSGID_RE.findall(text)))


def fold_msg_ids(name: str, ids: Iterable[str], width: int = 78, linesep: str = "\r\n") -> str:
    """A Message-ID, In-Reply-To or References field, folded between ids, never encoded.

    RFC 5322 §2.1.1: lines of at most `width` (78) characters wherever the content allows, an
    id that does not fit goes to a continuation line of its own, and an id longer than a line
    stays whole on it (an RFC 2047 encoded-word is not a msg-id: clients would not thread).
    """
    lines = [f"{name}:"]
    for mid in ids:
        if len(lines[-1]) + 1 + len(mid) <= width:
            lines[-1] += f" {mid}"
        else:
            lines.append(f" {mid}")
    return linesep.join(lines) + linesep


class _Policy(EmailPolicy):
    """policy.SMTP, but msg-id fields are folded by `fold_msg_ids`.

    The email package treats In-Reply-To and References as unstructured text and turns a
    "word" longer than the line (an Exchange Online id of 78+ characters) into an RFC 2047
    encoded-word. The generator still checks every folded header (verify_generated_headers).
    """

    def fold(self, name: str, value: Any) -> str:
        if name.lower() in MSGID_HEADERS:
            return fold_msg_ids(name, wire_msg_ids(str(value)), self._width(), self.linesep)
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in MSGID_HEADERS:
            return self.fold(name, value).encode("ascii")
        return super().fold_binary(name, value)

    def _width(self) -> int:
        return min(self.max_line_length or MAX_LINE, MAX_LINE)


SMTP_POLICY = _Policy().clone(linesep="\r\n", max_line_length=78, raise_on_defect=True)
if hasattr(SMTP_POLICY, "verify_generated_headers"):  # Python ≥ 3.11.10 / 3.12.5
    SMTP_POLICY = SMTP_POLICY.clone(verify_generated_headers=True)


def clean_header(value: str) -> str:
    """One safe header line: control characters and folding from inbound data become spaces."""
    return CONTROL_RE.sub(" ", value).strip()


def mailbox(name: str, address: str) -> Address:
    """An address header value whose display name is quoted/encoded by the email package."""
    username, _, domain = clean_header(address).partition("@")
    return Address(display_name=clean_header(name), username=username, domain=domain)


ORIGINAL_FILENAME = "original.eml"
# RFC 5322 §2.1.1: a line is at most 998 octets; RFC 2045: 7bit and 8bit bodies have no NUL.
LONG_LINE_RE = re.compile(rb"[^\r\n]{999}")


def _crlf(raw: bytes) -> bytes:
    """Lines ending in CRLF, as on the wire (mail kept from a Maildir may end them in LF)."""
    if b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b""):
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def original_part(raw: bytes) -> tuple[MIMEPart, bytes | None]:
    """A received message as an attachment every mail client opens, and the bytes its
    placeholder payload stands for (None when the part holds them itself).

    RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822, so the bytes go
    unencoded: 7bit when they are ASCII, 8bit otherwise. A message that is not valid 8bit
    (a NUL, or a line over 998 octets) could be broken by relays; it goes as a base64
    application/octet-stream file of the same name instead, which decodes to the same bytes.
    The email package would re-generate a parsed message (not the bytes received) and cannot
    write 8-bit text, so the part holds a placeholder that `build` replaces with the bytes.
    """
    raw = _crlf(raw)
    part = MIMEPart(policy=SMTP_POLICY)
    if b"\0" in raw or LONG_LINE_RE.search(raw):
        part.set_content(
            raw, maintype="application", subtype="octet-stream", filename=ORIGINAL_FILENAME
        )
        return part, None
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = f'attachment; filename="{ORIGINAL_FILENAME}"'
    part["Content-Transfer-Encoding"] = "7bit" if raw.isascii() else "8bit"
    part.set_payload(_placeholder(raw).decode())
    return part, raw


def _placeholder(raw: bytes) -> bytes:
    return b"mailbot-original-" + hashlib.sha256(raw).hexdigest().encode()


def from_address(row: Row, cfg: Config) -> str:
    """The mailbox an outbox row goes out from (rows from before m010: the [mailbot] address)."""
    return row["from_addr"] or cfg.mailbot.address


def build(
    row: Row, cfg: Config, attachment_rows: list[Row], original: bytes | None = None
) -> bytes:
    """The bytes to hand to the transport for an outbox row (`original`: a received message
    to carry whole, as message/rfc822)."""
    msg = EmailMessage(policy=SMTP_POLICY)
    sender = from_address(row, cfg)
    msg["From"] = mailbox(row["from_name"], sender)
    msg["To"] = mailbox("", row["to_addr"])
    cc = [mailbox("", a) for a in json.loads(row["cc"] or "[]")]
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = clean_header(row["subject"])
    created = from_db(row["created_at"])
    assert created is not None  # outbox.created_at is NOT NULL
    msg["Date"] = format_datetime(created)
    # Ids exactly as stored (case kept), only those that can go on the wire as they are.
    msg["Message-ID"] = clean_header(row["message_id"])
    in_reply_to = wire_msg_ids(row["in_reply_to"] or "")[:1]  # exactly one msg-id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to[0]
    refs = wire_msg_ids(row["refs"] or "")
    if refs:
        msg["References"] = " ".join(refs)
    headers = loops.outbound_headers(cfg, row["auto_submitted"], row["importance"], sender)
    for name, value in headers.items():
        msg[name] = value
    msg["X-Mailbot-Ticket"] = str(row["ticket_id"] or "")
    msg.set_content(row["body"], charset="utf-8", cte="quoted-printable")
    for att in attachment_rows:
        if att["purged_at"]:
            continue  # removed by retention or `customer forget` since the row was queued
        maintype, _, subtype = att["content_type"].partition("/")
        msg.add_attachment(
            (cfg.mailbot.data_dir / att["path"]).read_bytes(),
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=att["filename"],
        )
    spliced = None
    if original is not None:
        if msg.get_content_type() != "multipart/mixed":  # not yet, without other attachments
            msg.make_mixed()
        # A boundary of our own choosing: the generator cannot see the bytes spliced in
        # below, so it could not make sure they do not contain its boundary.
        msg.set_boundary(f"=_mailbot_{hashlib.sha256(original).hexdigest()[:40]}")
        part, spliced = original_part(original)
        msg.attach(cast(EmailMessage, part))  # any MIMEPart is a part; typeshed says otherwise
    data = msg.as_bytes()
    if spliced is not None:
        data = data.replace(_placeholder(spliced), spliced, 1)
    return data
