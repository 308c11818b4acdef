"""Apply step: the one place that writes what a message leads to (tickets, outbox, events)."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from sqlite3 import Row

from mailbot import notices, sla_timers
from mailbot.config import Topic
from mailbot.pipeline import Duplicate, Ignore, Job, agents
from mailbot.pipeline.records import event, store_message
from mailbot.pipeline.thread import clean_subject, tag_re
from mailbot.store import from_db, to_db


def _subject(job: Job) -> str:
    """The ticket subject: the customer's, minus reply prefixes and any ticket tag."""
    assert job.parsed is not None
    subject = tag_re(job.ctx.cfg.mailbot.name).sub("", clean_subject(job.parsed.subject))
    return " ".join(subject.split())[:300] or "(no subject)"


@lru_cache(maxsize=8)
def _topic_patterns(topics: tuple[Topic, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """One pattern per topic: any of its keywords at the start of a word, any case."""
    return tuple(
        (
            topic.name,
            re.compile("|".join(rf"(?<!\w){re.escape(k.lower())}" for k in topic.keywords)),
        )
        for topic in topics
        if topic.keywords
    )


def _topic(job: Job) -> tuple[str | None, str]:
    """The first configured topic whose keywords the subject or text mention."""
    assert job.parsed is not None
    haystack = f"{job.parsed.subject}\n{job.parsed.text[:4000]}".lower()
    for name, pattern in _topic_patterns(job.ctx.cfg.topics):
        found = pattern.search(haystack)
        if found:
            return name, f"keyword {found.group(0)!r}"
    return None, "no topic keyword matched"


def _customer_mail(job: Job, ticket: Row, template: str, **extra: object) -> None:
    """An automatic answer to the requester, threaded under the message being processed."""
    assert job.parsed is not None
    if job.no_replies:
        event(job, "no-reply", f"{template} not sent: imported with --no-replies")
        return
    refs = [m for m in (*job.parsed.references, job.parsed.message_id) if m]
    refused = notices.send_to_customer(
        job.ctx,
        ticket,
        template=template,
        now=job.now,
        purpose=template,
        in_reply_to=job.parsed.message_id,
        references=refs,
        **extra,
    )
    if refused:
        event(job, "no-answer", f"{template} not sent: {refused}")


def _notify_agents(job: Job, ticket: Row, template: str) -> None:
    """The customer's words to the agents who look after the ticket."""
    parsed, sender, cfg = job.parsed, job.sender, job.ctx.cfg
    assert parsed is not None and sender is not None
    for address in notices.ticket_agents(cfg, ticket):
        notices.send(
            job.ctx,
            ticket,
            template=template,
            to=address,
            now=job.now,
            in_reply_to=parsed.message_id,
            from_name=f"{sender.name or sender.address} via {cfg.mailbot.name}",
            text=parsed.text,
            sender=sender,
            attachments=[att.filename for att in parsed.attachments],
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
    ticket = store.tickets.get(job.ticket_id)
    assert ticket is not None
    store.execute(
        "INSERT OR IGNORE INTO participants (ticket_id, address, name, role) VALUES (?, ?, ?, ?)",
        (job.ticket_id, sender.address, sender.name, "requester"),
    )
    _record_ccs(job)
    store_message(job, "customer")
    event(job, "created", f"new ticket: {job.match.reason if job.match else ''}; {sender.reason}")
    if previous:
        event(job, "linked", f"follows closed ticket #{previous} (reopen window passed)")
    event(job, "classified", "; ".join(job.notes))
    if job.priority == "urgent":
        event(job, "priority", f"urgent: {job.priority_reason}")
    if topic:
        event(job, "topic", f"{topic}: {topic_reason}")
    event(job, "due", f"first response due {due.isoformat()} ({cfg.sla.first_response})")
    _customer_mail(job, ticket, "ack", position=store.tickets.queue_position(created, newest=True))
    _notify_agents(job, ticket, "agent_new")
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
    participant = store.participants.takes_part(ticket["id"], sender.address)
    store_message(job, "customer")
    event(
        job,
        "follow-up",
        f"{job.match.reason if job.match else ''}"
        + ("" if participant else f"; {sender.address} does not take part (not added)"),
    )
    changes: dict[str, object] = {"updated_at": to_db(job.now)}
    was = ticket["status"]
    if was == "closed":
        changes.update(status="open", closed_at=None)
        event(job, "reopened", f"customer replied within {job.ctx.cfg.mailbot.reopen_days} days")
    elif was == "pending":
        changes.update(status="open")
        event(job, "resumed", "customer replied while the ticket waited on them")
    store.tickets.update(ticket["id"], changes)
    if was == "closed":
        sla_timers.on_reopened(job.ctx, ticket["id"], job.now)
    elif was == "pending":
        sla_timers.on_resumed(job.ctx, ticket["id"], job.now)
    ticket = store.tickets.get(ticket["id"])
    assert ticket is not None
    if participant and ticket["first_response_at"] is None and ticket["queued_notice_at"] is None:
        position = store.tickets.queue_position(ticket["created_at"])
        _customer_mail(job, ticket, "queued", position=position)
        store.tickets.update(ticket["id"], {"queued_notice_at": to_db(job.now)})
    _notify_agents(job, ticket, "agent_followup")


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
    store_message(job, kind, text)
    event(job, sender.automatic.kind, f"{sender.automatic.reason}; {job.match.reason}")
    if bounce and bounce.permanent:
        _mark_bounced(job, bounce.recipients)


def _mark_bounced(job: Job, recipients: tuple[str, ...]) -> None:
    """No automatic mail to an address that bounced hard, for `undeliverable_days`."""
    store, cfg = job.ctx.store, job.ctx.cfg
    if not recipients:  # the bounce named nobody: the ticket's requester is the likely one
        ticket = store.tickets.get(job.ticket_id) if job.ticket_id else None
        recipients = (ticket["requester"],) if ticket else ()
    for address in recipients:
        until = job.now + timedelta(days=cfg.limits.undeliverable_days)
        store.addresses.mark_undeliverable(address, until, "hard bounce", job.now)
        event(
            job,
            "undeliverable",
            f"{address}: no automatic mail for {cfg.limits.undeliverable_days} days (hard bounce)",
        )


def run(job: Job) -> None:
    """Write what the earlier steps decided."""
    parsed, sender, match, store = job.parsed, job.sender, job.match, job.ctx.store
    assert parsed is not None and sender is not None and match is not None
    if parsed.message_id and store.messages.has(parsed.message_id, sender.address):
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
    ticket = store.tickets.get(match.ticket_id)
    assert ticket is not None
    closed_at = from_db(ticket["closed_at"])
    if closed_at and job.received_at - closed_at > timedelta(days=job.ctx.cfg.mailbot.reopen_days):
        new_ticket(job, previous=ticket["id"])
        return
    follow_up(job, ticket)
