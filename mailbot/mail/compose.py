"""Build the MIME message of an outbox row: threading and automation headers, no injection."""

from __future__ import annotations

import json
import re
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from sqlite3 import Row

from mailbot import loops
from mailbot.config import Config
from mailbot.store import from_db

# Any control character (CR, LF, NUL, ...) in a header value could start a new header.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
SMTP_POLICY = policy.SMTP.clone(max_line_length=78, raise_on_defect=True)
if hasattr(SMTP_POLICY, "verify_generated_headers"):  # Python ≥ 3.11.10 / 3.12.5
    SMTP_POLICY = SMTP_POLICY.clone(verify_generated_headers=True)


def clean_header(value: str) -> str:
    """One safe header line: control characters and folding from inbound data become spaces."""
    return CONTROL_RE.sub(" ", value).strip()


def mailbox(name: str, address: str) -> Address:
    """An address header value whose display name is quoted/encoded by the email package."""
    username, _, domain = clean_header(address).partition("@")
    return Address(display_name=clean_header(name), username=username, domain=domain)


def build(row: Row, cfg: Config, attachment_rows: list[Row]) -> bytes:
    """The bytes to hand to the transport for an outbox row."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = mailbox(row["from_name"], cfg.mailbot.address)
    msg["To"] = mailbox("", row["to_addr"])
    cc = [mailbox("", a) for a in json.loads(row["cc"] or "[]")]
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = clean_header(row["subject"])
    created = from_db(row["created_at"])
    assert created is not None  # outbox.created_at is NOT NULL
    msg["Date"] = format_datetime(created)
    msg["Message-ID"] = clean_header(row["message_id"])
    if row["in_reply_to"]:
        msg["In-Reply-To"] = clean_header(row["in_reply_to"])
    if row["refs"]:
        msg["References"] = clean_header(row["refs"])
    headers = loops.outbound_headers(cfg, row["auto_submitted"], row["importance"])
    for name, value in headers.items():
        msg[name] = value
    msg["X-Mailbot-Ticket"] = str(row["ticket_id"] or "")
    msg.set_content(row["body"], charset="utf-8", cte="quoted-printable")
    for att in attachment_rows:
        maintype, _, subtype = att["content_type"].partition("/")
        msg.add_attachment(
            (cfg.mailbot.data_dir / att["path"]).read_bytes(),
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=att["filename"],
        )
    return msg.as_bytes()
