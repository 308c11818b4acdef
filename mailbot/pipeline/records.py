"""Writes the apply step shares: an inbound message (with its attachments) and audit events."""

from __future__ import annotations

from mailbot import attachments
from mailbot.pipeline import Job
from mailbot.store import to_db


def event(job: Job, kind: str, detail: str, actor: str = "mailbot") -> None:
    """An audit-trail row: what was decided about this message and why, and by whom."""
    job.ctx.store.events.add(
        kind, detail, at=job.now, ticket_id=job.ticket_id, inbound_id=job.inbound_id, actor=actor
    )


def store_message(
    job: Job,
    kind: str,
    text: str | None = None,
    *,
    verified: bool = True,
    keep_inline: bool = True,
) -> int:
    """The inbound message on job.ticket_id, and its attachments under generated names.

    `keep_inline=False` leaves out images shown in the body (an agent's signature logo).
    """
    parsed, sender, store = job.parsed, job.sender, job.ctx.store
    assert parsed is not None and sender is not None and job.ticket_id is not None
    row_id = store.insert(
        "messages",
        {
            "ticket_id": job.ticket_id,
            "inbound_id": job.inbound_id,
            "direction": "in",
            "kind": kind,
            "from_addr": sender.address,
            "from_name": sender.name,
            "message_id": parsed.message_id,
            "subject": parsed.subject,
            "text": parsed.text if text is None else text,
            "verified": int(verified),
            "created_at": to_db(job.received_at),
        },
    )
    for att in parsed.attachments:
        if att.inline and not keep_inline:
            continue
        rel, digest = attachments.save(job.ctx.data_dir, att.data)
        store.insert(
            "attachments",
            {
                "message_row": row_id,
                "filename": attachments.safe_filename(att.filename),
                "content_type": att.content_type
                if "/" in att.content_type
                else "application/octet-stream",
                "size": len(att.data),
                "sha256": digest,
                "path": rel,
            },
        )
    return row_id
