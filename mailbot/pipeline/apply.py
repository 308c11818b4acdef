"""Apply step: the one place that writes what a message leads to (tickets, outbox, events)."""

from __future__ import annotations

import re
from datetime import timedelta
from sqlite3 import Row

from mailbot import attachments, loops, outbox, sla_timers
from mailbot.config import Config
from mailbot.db import from_db, to_db
from mailbot.pipeline import Duplicate, Ignore, Job, agents
from mailbot.pipeline.thread import clean_subject, tag_re
from mailbot.templates import format_hours, format_when


def _event(job: Job, kind: str, detail: str, actor: str = "mailbot") -> None:
    job.ctx.store.add_event(
        kind, detail, at=job.now, ticket_id=job.ticket_id, inbound_id=job.inbound_id, actor=actor
    )


def _store_message(job: Job, kind: str, text: str | None = None, verified: bool = True) -> int:
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


def _subject(job: Job) -> str:
    """The ticket subject: the customer's, minus reply prefixes and any ticket tag."""
    assert job.parsed is not None
    subject = tag_re(job.ctx.cfg.mailbot.name).sub("", clean_subject(job.parsed.subject))
    return " ".join(subject.split())[:300] or "(no subject)"


def _topic(job: Job) -> tuple[str | None, str]:
    assert job.parsed is not None
    haystack = f"{job.parsed.subject}\n{job.parsed.text[:4000]}".lower()
    for topic in job.ctx.cfg.topics:
        for keyword in topic.keywords:
            if re.search(rf"(?<!\w){re.escape(keyword.lower())}", haystack):
                return topic.name, f"keyword {keyword!r}"
    return None, "no topic keyword matched"


def agents_for(job: Job, ticket: Row) -> list[str]:
    """Who hears about a ticket: its assignee, else its topic's agents, else every agent."""
    return ticket_agents(job.ctx.cfg, ticket)


def ticket_agents(cfg: Config, ticket: Row) -> list[str]:
    """`agents_for` without a message in hand (SLA reminders fire from timers)."""
    if ticket["assignee"]:
        return [ticket["assignee"]]
    topic = next((t for t in cfg.topics if t.name == ticket["topic"]), None)
    if topic and topic.agents:
        return list(topic.agents)
    return [agent.email for agent in cfg.agents]


def _customer_mail(job: Job, ticket: Row, template: str, purpose: str, context: dict) -> None:
    """Enqueue an automatic answer to the requester and record it on the ticket."""
    assert job.parsed is not None
    to = ticket["requester"]
    if job.no_replies:
        _event(job, "no-reply", f"{template} not sent: imported with --no-replies")
        return
    refused = loops.answer_refused(job.ctx.store, job.ctx.cfg, to, job.now)
    if refused:
        _event(job, "no-answer", f"{template} not sent: {refused}")
        return
    refs = [m for m in (*job.parsed.references, job.parsed.message_id) if m]
    row_id, message_id = outbox.enqueue(
        job.ctx,
        now=job.now,
        ticket_id=ticket["id"],
        template=template,
        language=ticket["language"],
        to=to,
        purpose=purpose,
        context=context,
        in_reply_to=job.parsed.message_id,
        references=refs,
    )
    job.ctx.store.insert(
        "messages",
        {
            "ticket_id": ticket["id"],
            "outbox_id": row_id,
            "direction": "out",
            "kind": "system",
            "from_addr": job.ctx.cfg.mailbot.address,
            "from_name": job.ctx.cfg.mailbot.name,
            "message_id": message_id,
            "subject": None,
            "text": f"({template} sent to {to})",
            "created_at": to_db(job.now),
        },
    )


def _ticket_context(job: Job, ticket: Row) -> dict:
    cfg = job.ctx.cfg
    language = ticket["language"]
    due = from_db(ticket["first_response_due"])
    manager = cfg.manager_for(ticket["requester"])
    return {
        "company": cfg.mailbot.name,
        "address": cfg.mailbot.address,
        "tag": job.ctx.tag(ticket["id"]),
        "ticket": dict(ticket),
        "subject": ticket["subject"],
        "customer_name": ticket["requester_name"] or "",
        "due_text": format_when(due.astimezone(cfg.tz), language) if due else "",
        "hours_text": format_hours(cfg.hours.days, cfg.hours.opens, cfg.hours.closes, language),
        "timezone": str(cfg.tz),
        "manager": manager,
    }


def _notify_agents(job: Job, ticket: Row, template: str, text: str) -> None:
    assert job.parsed is not None
    cfg = job.ctx.cfg
    context = _ticket_context(job, ticket) | {
        "text": text,
        "sender": job.sender,
        "attachments": [safe.filename for safe in job.parsed.attachments],
    }
    refs = [m for m in (job.parsed.message_id,) if m]
    for address in agents_for(job, ticket):
        outbox.enqueue(
            job.ctx,
            now=job.now,
            ticket_id=ticket["id"],
            template=template,
            language=cfg.mailbot.default_language,
            to=address,
            purpose="agent",
            context=context,
            in_reply_to=job.parsed.message_id,
            references=refs,
            auto_submitted="auto-generated",
            from_name=f"{job.sender.name or job.sender.address} via {cfg.mailbot.name}"
            if job.sender
            else None,
        )


def new_ticket(job: Job, previous: int | None = None) -> None:
    parsed, sender, ctx = job.parsed, job.sender, job.ctx
    assert parsed is not None and sender is not None
    cfg, store = ctx.cfg, ctx.store
    due = cfg.calendar.first_response_due(job.received_at, cfg.sla.first_response)
    topic, topic_reason = _topic(job)
    created = to_db(job.received_at)
    job.ticket_id = store.insert(
        "tickets",
        {
            "subject": _subject(job),
            "status": "open",
            "priority": job.priority,
            "language": job.language,
            "requester": sender.address,
            "requester_name": sender.name,
            "topic": topic,
            "created_at": created,
            "updated_at": to_db(job.now),
            "first_response_due": to_db(due),
            "previous_ticket": previous,
        },
    )
    ticket = store.ticket(job.ticket_id)
    assert ticket is not None
    store.execute(
        "INSERT OR IGNORE INTO participants (ticket_id, address, name, role) VALUES (?, ?, ?, ?)",
        (job.ticket_id, sender.address, sender.name, "requester"),
    )
    _record_ccs(job)
    _store_message(job, "customer")
    _event(job, "created", f"new ticket: {job.match.reason if job.match else ''}; {sender.reason}")
    if previous:
        _event(job, "linked", f"follows closed ticket #{previous} (reopen window passed)")
    _event(job, "classified", "; ".join(job.notes))
    if job.priority == "urgent":
        _event(job, "priority", f"urgent: {job.priority_reason}")
    if topic:
        _event(job, "topic", f"{topic}: {topic_reason}")
    _event(job, "due", f"first response due {due.isoformat()} ({cfg.sla.first_response})")
    context = _ticket_context(job, ticket) | {
        "position": store.queue_position(job.ticket_id, created),
    }
    _customer_mail(job, ticket, "ack", "ack", context)
    _notify_agents(job, ticket, "agent_new", parsed.text)
    sla_timers.on_new_ticket(ctx, ticket, job.now)


def _record_ccs(job: Job) -> None:
    """The customer's CCs take part in the ticket (never our address or an agent's)."""
    parsed, cfg = job.parsed, job.ctx.cfg
    assert parsed is not None
    for name, address in (*parsed.to, *parsed.cc):
        local, _, domain = address.partition("@")
        if (
            address == cfg.mailbot.address
            or (
                domain == cfg.mailbot.domain
                and local.split("+")[0] == cfg.mailbot.address.split("@")[0]
            )
            or cfg.agent(address)
            or address in cfg.mailbot.contact_forms
        ):
            continue
        job.ctx.store.execute(
            "INSERT OR IGNORE INTO participants (ticket_id, address, name, role) VALUES (?,?,?,?)",
            (job.ticket_id, address, name, "cc"),
        )


def follow_up(job: Job, ticket: Row) -> None:
    """A customer wrote again on an existing ticket."""
    parsed, sender, store = job.parsed, job.sender, job.ctx.store
    assert parsed is not None and sender is not None
    job.ticket_id = ticket["id"]
    participant = store.is_participant(ticket["id"], sender.address)
    _store_message(job, "customer")
    _event(
        job,
        "follow-up",
        f"{job.match.reason if job.match else ''}"
        + ("" if participant else f"; {sender.address} does not take part (not added)"),
    )
    changes: dict[str, object] = {"updated_at": to_db(job.now)}
    was = ticket["status"]
    if was == "closed":
        changes.update(status="open", closed_at=None)
        _event(job, "reopened", f"customer replied within {job.ctx.cfg.mailbot.reopen_days} days")
    elif was == "pending":
        changes.update(status="open")
        _event(job, "resumed", "customer replied while the ticket waited on them")
    store.update("tickets", ticket["id"], changes)
    if was == "closed":
        sla_timers.on_reopened(job.ctx, ticket["id"], job.now)
    elif was == "pending":
        sla_timers.on_resumed(job.ctx, ticket["id"], job.now)
    ticket = store.ticket(ticket["id"])
    assert ticket is not None
    if participant and ticket["first_response_at"] is None and ticket["queued_notice_at"] is None:
        context = _ticket_context(job, ticket) | {
            "position": store.queue_position(ticket["id"], ticket["created_at"]),
        }
        _customer_mail(job, ticket, "queued", "queued", context)
        store.update("tickets", ticket["id"], {"queued_notice_at": to_db(job.now)})
    _notify_agents(job, ticket, "agent_followup", parsed.text)


def automatic(job: Job) -> None:
    """Robots get no answer; mail that threads onto a ticket is kept there for agents."""
    sender = job.sender
    assert sender is not None and sender.automatic is not None and job.match is not None
    if job.match.ticket_id is None:
        raise Ignore(f"automatic mail ({sender.automatic.kind}): {sender.automatic.reason}")
    job.ticket_id = job.match.ticket_id
    bounce = sender.automatic.bounce
    kind = "system" if bounce else "auto"
    text = job.parsed.text if job.parsed else ""
    if bounce:
        text = (
            f"Delivery failed ({'permanent' if bounce.permanent else 'temporary'}"
            f"{', ' + bounce.status if bounce.status else ''}) for "
            f"{', '.join(bounce.recipients) or 'unknown recipient'}.\n\n{text}"
        )
    _store_message(job, kind, text=text)
    _event(job, sender.automatic.kind, f"{sender.automatic.reason}; {job.match.reason}")
    if bounce and bounce.permanent:
        _mark_bounced(job, bounce.recipients)


def _mark_bounced(job: Job, recipients: tuple[str, ...]) -> None:
    """No automatic mail to an address that bounced hard, for `undeliverable_days`."""
    store, cfg = job.ctx.store, job.ctx.cfg
    if not recipients:  # the bounce named nobody: the ticket's requester is the likely one
        ticket = store.ticket(job.ticket_id) if job.ticket_id else None
        recipients = (ticket["requester"],) if ticket else ()
    for address in recipients:
        loops.mark_undeliverable(
            store, address, job.now, cfg.limits.undeliverable_days, "hard bounce"
        )
        _event(
            job,
            "undeliverable",
            f"{address}: no automatic mail for {cfg.limits.undeliverable_days} days (hard bounce)",
        )


def run(job: Job) -> None:
    """Write what the earlier steps decided."""
    parsed, sender, match, store = job.parsed, job.sender, job.match, job.ctx.store
    assert parsed is not None and sender is not None and match is not None
    if parsed.message_id and store.has_message(parsed.message_id, sender.address):
        raise Duplicate(f"already have {parsed.message_id} from {sender.address}")
    if sender.kind == "automatic":
        automatic(job)
        return
    if sender.agent and match.ticket_id is not None:
        # A token authenticates its own ticket only: a token for A never acts on B.
        if sender.kind == "agent" and sender.token_ticket in (None, match.ticket_id):
            agents.agent_mail(job)
        else:
            agents.unverified(job)
        return
    if match.ticket_id is None:
        new_ticket(job)
        return
    ticket = store.ticket(match.ticket_id)
    assert ticket is not None
    closed_at = from_db(ticket["closed_at"])
    if closed_at and job.received_at - closed_at > timedelta(days=job.ctx.cfg.mailbot.reopen_days):
        new_ticket(job, previous=ticket["id"])
        return
    follow_up(job, ticket)
