"""Which support address a message came in through: its IMAP folder, envelope or headers.

With one mailbox (no `[[mailboxes]]`) that is all there is. With several, in this order:
1. the IMAP folder, when it is the folder of one mailbox only;
2. the SMTP/LMTP envelope recipients (RCPT TO), when they name one mailbox only;
3. the To, then Cc, then X-Original-To and Delivered-To headers, among the mailboxes still in
   question: a customer writing to pomoc@ with support@ in Cc gets pomoc@, on each copy;
4. otherwise the first mailbox still in question (the [mailbot] address when nothing narrowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message

from mailbot.config import Config, Mailbox, folder_key
from mailbot.mail.headers import address_specs

RECIPIENT_HEADERS = ("to", "cc", "x-original-to", "delivered-to")


def folder_of(source_ref: str | None) -> str | None:
    """The IMAP folder in an inbound row's `source_ref` ("folder;uidvalidity;uid")."""
    if not source_ref or source_ref.count(";") < 2:
        return None
    return source_ref.rsplit(";", 2)[0]


def folders(cfg: Config) -> list[str]:
    """The IMAP folders to watch: each mailbox's, without repeats, the default one's first."""
    return list({folder_key(m.folder): m.folder for m in cfg.mailboxes}.values())


def _matching(boxes: Sequence[Mailbox], addresses: Sequence[str]) -> list[Mailbox]:
    """The mailboxes these addresses are for, in the addresses' order, without repeats."""
    found: list[Mailbox] = []
    for address in addresses:
        exact = [m for m in boxes if m.address == address.strip().strip("<>").lower()]
        for box in exact or [m for m in boxes if m.receives(address)]:
            if box not in found:
                found.append(box)
    return found


def arrived_at(
    cfg: Config, message: Message, envelope_to: Sequence[str] = (), folder: str | None = None
) -> tuple[Mailbox, str]:
    """(the mailbox the message came in through, why)."""
    boxes: Sequence[Mailbox] = cfg.mailboxes
    if len(boxes) == 1:
        return boxes[0], "the only mailbox"
    if folder is not None:
        in_folder = [m for m in boxes if folder_key(m.folder) == folder_key(folder)]
        if len(in_folder) == 1:
            return in_folder[0], f"IMAP folder {folder}"
        boxes = in_folder or boxes
    enveloped = _matching(boxes, envelope_to)
    if len(enveloped) == 1:
        return enveloped[0], f"envelope recipient {enveloped[0].address}"
    boxes = enveloped or boxes
    for header in RECIPIENT_HEADERS:
        found = _matching(boxes, address_specs(message, header))
        if found:
            return found[0], f"{header} {found[0].address}"
    return boxes[0], "no recipient names a mailbox; the first in question"
