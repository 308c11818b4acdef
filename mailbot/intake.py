"""Intake: the raw bytes of an arriving message, committed before its source is acknowledged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from mailbot.mail.limits import HEADER_END_RE
from mailbot.store import Store

MESSAGE_ID_RE = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,250}>)", re.I | re.M)


def sniff_message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block, cheaply, for the inbound row (no full parse)."""
    end = HEADER_END_RE.search(raw, 0, 256 * 1024)
    match = MESSAGE_ID_RE.search(raw, 0, end.start() if end else min(len(raw), 256 * 1024))
    return match.group(1).decode("ascii", "replace") if match else None


def accept(
    store: Store,
    raw: bytes,
    *,
    source: str,
    now: datetime,
    source_ref: str | None = None,
    envelope_from: str | None = None,
    envelope_to: Iterable[str] = (),
    no_replies: bool = False,
) -> tuple[int, bool]:
    """Store one message durably; (inbound id, new?). The same bytes twice are kept once."""
    with store.atomic():
        return store.inbound.add(
            raw,
            source=source,
            received_at=now,
            source_ref=source_ref,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            message_id=sniff_message_id(raw),
            no_replies=no_replies,
        )
