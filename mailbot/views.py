"""Read-only views of the store as plain documents, for the CLI's tables and --json output."""

from __future__ import annotations

import json
from sqlite3 import Row
from typing import Any

from mailbot.context import Context
from mailbot.store import from_db

TICKET_TIMES = ("created_at", "updated_at", "first_response_due", "first_response_at", "closed_at")


def local_time(ctx: Context, value: str | None) -> str | None:
    """Stored UTC text → ISO 8601 with the configured zone's offset."""
    moment = from_db(value)
    return moment.astimezone(ctx.cfg.tz).isoformat() if moment else None


def ticket_doc(ctx: Context, row: Row) -> dict[str, Any]:
    doc = {
        "id": row["id"],
        "subject": row["subject"],
        "status": row["status"],
        "priority": row["priority"],
        "language": row["language"],
        "requester": row["requester"],
        "requester_name": row["requester_name"],
        "assignee": row["assignee"],
        "topic": row["topic"],
        "previous_ticket": row["previous_ticket"],
        "mailbox": row["mailbox"] or ctx.cfg.mailbot.address,  # the address it came in through
    }
    for key in TICKET_TIMES:
        doc[key] = local_time(ctx, row[key])
    return doc


def tickets(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    return [ticket_doc(ctx, row) for row in ctx.store.tickets.listing(status)]


def show(ctx: Context, ticket_id: int) -> dict[str, Any] | None:
    store = ctx.store
    row = store.tickets.get(ticket_id)
    if row is None:
        return None
    doc = ticket_doc(ctx, row)
    doc["participants"] = [
        {"address": p["address"], "name": p["name"], "role": p["role"]}
        for p in store.participants.of_ticket(ticket_id)
    ]
    messages = []
    for m in store.messages.of_ticket(ticket_id):
        messages.append(
            {
                "id": m["id"],
                "direction": m["direction"],
                "kind": m["kind"],
                "from": m["from_addr"],
                "from_name": m["from_name"],
                "message_id": m["message_id"],
                "inbound": m["inbound_id"],  # `mailbot raw` prints it as it arrived
                "subject": m["subject"],
                "text": m["text"],
                "verified": bool(m["verified"]),
                "created_at": local_time(ctx, m["created_at"]),
                "attachments": [
                    {
                        "id": a["id"],
                        "filename": a["filename"],
                        "content_type": a["content_type"],
                        "size": a["size"],
                        "path": a["path"],
                    }
                    for a in store.attachments.of_message(m["id"])
                ],
            }
        )
    doc["messages"] = messages
    doc["events"] = [
        {
            "at": local_time(ctx, e["at"]),
            "actor": e["actor"],
            "kind": e["kind"],
            "detail": e["detail"],
        }
        for e in store.events.of_ticket(ticket_id)
    ]
    return doc


def show_text(doc: dict[str, Any]) -> str:
    lines = [
        f"#{doc['id']} {doc['subject']}",
        f"  status {doc['status']}, priority {doc['priority']}, language {doc['language']},"
        f" topic {doc['topic'] or '-'}, assignee {doc['assignee'] or '-'}",
        f"  requester {doc['requester']}; created {doc['created_at']};"
        f" first response due {doc['first_response_due']}, at {doc['first_response_at'] or '-'}",
        "",
    ]
    for m in doc["messages"]:
        flag = "" if m["verified"] else " UNVERIFIED"
        raw = f" (mailbot raw {m['inbound']})" if m["inbound"] else ""
        lines.append(
            f"--- {m['created_at']} {m['direction']} {m['kind']}{flag} from {m['from']}{raw}"
        )
        lines.extend("    " + line for line in m["text"].splitlines())
        lines.extend(
            f"    [attachment {a['id']}] {a['filename']} ({a['size']} bytes)"
            for a in m["attachments"]
        )
    lines.append("")
    lines.extend(
        f"{e['at']}  {e['actor']:<24} {e['kind']:<14} {e['detail']}" for e in doc["events"]
    )
    return "\n".join(lines)


def outbox(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "ticket": r["ticket_id"],
            "template": r["template"],
            "to": r["to_addr"],
            "from": r["from_addr"] or ctx.cfg.mailbot.address,  # the mailbox it goes out from
            "cc": json.loads(r["cc"]),
            "subject": r["subject"],
            "message_id": r["message_id"],
            "status": r["status"],
            "attempts": r["attempts"],
            "last_error": r["last_error"],
            "created_at": local_time(ctx, r["created_at"]),
            "next_attempt_at": local_time(ctx, r["next_attempt_at"])
            if r["status"] == "pending"
            else None,
            "sent_at": local_time(ctx, r["sent_at"]),
        }
        for r in ctx.store.outbox.listing(status)
    ]


def inbound(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "received_at": local_time(ctx, r["received_at"]),
            "source": r["source"],
            "source_ref": r["source_ref"],
            "envelope_from": r["envelope_from"],
            "message_id": r["message_id"],
            "size": r["size"],
            "status": r["status"],
            "attempts": r["attempts"],
            "reason": r["reason"],
            "error": r["error"],
            "ticket": r["ticket_id"],
            "processed_at": local_time(ctx, r["processed_at"]),
        }
        for r in ctx.store.inbound.listing(status)
    ]


def short_times(doc: dict[str, Any]) -> dict[str, Any]:
    """Times cut to minutes for the plain table."""
    return {k: (v[:16].replace("T", " ") if k in TICKET_TIMES and v else v) for k, v in doc.items()}
