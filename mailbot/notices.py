"""Notices written by timers and escalations: template context, recipients and the outbox row.

Mail to staff who are not agents (leads, account managers) names the ticket and the customer's
address but never carries the customer's words: inbound content reaches agents only (DESIGN §2).
"""

from __future__ import annotations

from datetime import datetime
from sqlite3 import Row

from mailbot import loops, outbox
from mailbot.config import Config
from mailbot.context import Context
from mailbot.store import from_db, to_db
from mailbot.templates import format_hours, format_when


def when(ctx: Context, value: str | None, language: str) -> str:
    """A stored UTC time as people read it, in the configured zone ('' when unset)."""
    moment = from_db(value)
    return format_when(moment.astimezone(ctx.cfg.tz), language) if moment else ""


def iso(ctx: Context, value: str | None) -> str:
    """A stored UTC time in the configured zone, ISO 8601 with offset, for events and logs."""
    moment = from_db(value)
    return moment.astimezone(ctx.cfg.tz).isoformat() if moment else "-"


def context(ctx: Context, ticket: Row, language: str) -> dict[str, object]:
    """What every template about a ticket may use."""
    cfg = ctx.cfg
    return {
        "company": cfg.mailbot.name,
        "address": cfg.mailbot.address,
        "tag": ctx.tag(ticket["id"]),
        "ticket": dict(ticket),
        "subject": ticket["subject"],
        "requester": ticket["requester"],
        "customer_name": ticket["requester_name"] or "",
        "due_text": when(ctx, ticket["first_response_due"], language),
        "created_text": when(ctx, ticket["created_at"], language),
        "hours_text": format_hours(cfg.hours.days, cfg.hours.opens, cfg.hours.closes, language),
        "timezone": str(cfg.tz),
        "manager": cfg.manager_for(ticket["requester"]),
    }


def ticket_agents(cfg: Config, ticket: Row) -> list[str]:
    """Who hears about a ticket: its assignee, else its topic's agents, else every agent."""
    if ticket["assignee"]:
        return [ticket["assignee"]]
    topic = next((t for t in cfg.topics if t.name == ticket["topic"]), None)
    if topic and topic.agents:
        return list(topic.agents)
    return [agent.email for agent in cfg.agents]


def leads(cfg: Config) -> list[str]:
    """Who hears about breaches and suspended customers: [sla] notify, else every agent."""
    return list(cfg.sla.notify) or [agent.email for agent in cfg.agents]


def agent_thread(ctx: Context, ticket_id: int, to: str) -> str | None:
    """The Message-ID of the new-ticket notification `to` got, so reminders thread under it."""
    return ctx.store.scalar(
        "SELECT message_id FROM outbox WHERE ticket_id = ? AND to_addr = ?"
        " AND template = 'agent_new' ORDER BY id LIMIT 1",
        (ticket_id, to),
    )


def send(
    ctx: Context,
    ticket: Row,
    *,
    template: str,
    to: str,
    now: datetime,
    purpose: str = "agent",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    from_name: str | None = None,
    auto_submitted: str = "auto-generated",
    **extra: object,
) -> int:
    """Enqueue an automatic notice to staff, in the default language; returns the outbox id.

    `auto_submitted="auto-replied"` for an answer to the staff member's own mail (RFC 3834).
    """
    language = ctx.cfg.mailbot.default_language
    row_id, _ = outbox.enqueue(
        ctx,
        now=now,
        ticket_id=ticket["id"],
        template=template,
        language=language,
        to=to,
        # "agent": an agent's reply to a reminder is authenticated like one to a notification.
        purpose=purpose,
        context=context(ctx, ticket, language) | extra,
        in_reply_to=in_reply_to,
        references=references if references is not None else [in_reply_to] if in_reply_to else (),
        auto_submitted=auto_submitted,
        from_name=from_name,
    )
    return row_id


def send_to_customer(
    ctx: Context,
    ticket: Row,
    *,
    template: str,
    now: datetime,
    purpose: str = "notice",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    **extra: object,
) -> str | None:
    """Enqueue an automatic answer to the requester in their language, recorded on the ticket.

    Threaded under `in_reply_to`, by default the customer's first message. Returns why it was
    not sent (the limits on automatic answers), or None when it was.
    """
    store = ctx.store
    refused = loops.answer_refused(store, ctx.cfg, ticket["requester"], now)
    if refused:
        return refused
    first = in_reply_to or store.scalar(
        "SELECT message_id FROM messages WHERE ticket_id = ? AND kind = 'customer'"
        " AND message_id IS NOT NULL ORDER BY id LIMIT 1",
        (ticket["id"],),
    )
    language = ticket["language"]
    row_id, message_id = outbox.enqueue(
        ctx,
        now=now,
        ticket_id=ticket["id"],
        template=template,
        language=language,
        to=ticket["requester"],
        purpose=purpose,
        context=context(ctx, ticket, language) | extra,
        in_reply_to=first,
        references=references if references is not None else [first] if first else (),
        auto_submitted="auto-replied",  # caused by the customer's own message (RFC 3834)
    )
    store.insert(
        "messages",
        {
            "ticket_id": ticket["id"],
            "outbox_id": row_id,
            "direction": "out",
            "kind": "system",
            "from_addr": ctx.cfg.mailbot.address,
            "from_name": ctx.cfg.mailbot.name,
            "message_id": message_id,
            "subject": None,
            "text": f"({template} sent to {ticket['requester']})",
            "created_at": to_db(now),
        },
    )
    return None
