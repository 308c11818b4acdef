"""Apply step for agents' mail: replies to customers, commands, internal notes, spoof handling.

An agent's message on a ticket is stripped of quoted history and signature, its command lines
are validated all together (one bad line and none is applied: the agent gets the list of valid
commands), and then, in one transaction: the ticket changes, the customer's reply is enqueued
from the support address, and every change is an event naming the agent.
"""

from __future__ import annotations

from sqlite3 import Row

from mailbot import notices, outbox, sla_timers
from mailbot.mail.quotes import strip_reply
from mailbot.pipeline import Job
from mailbot.pipeline import commands as agent_commands
from mailbot.pipeline.commands import Command, CommandError
from mailbot.pipeline.records import event, store_message
from mailbot.store import to_db

# Applied before the reply goes out (they shape it); the status changes come after it.
BEFORE_REPLY = ("assign", "priority", "lang", "topic")
AFTER_REPLY = ("reopen", "pending", "close")


def _tell_agent(job: Job, ticket: Row, to: str, template: str, **context: object) -> None:
    """A message to an agent about their own mail (errors); replying to it authenticates."""
    notices.send(
        job.ctx,
        ticket,
        template=template,
        to=to,
        now=job.now,
        in_reply_to=job.parsed.message_id if job.parsed else None,
        auto_submitted="auto-replied",
        **context,
    )


def unverified(job: Job) -> None:
    """Mail that claims an agent's address but proves nothing: a flagged note, agents told."""
    sender, store = job.sender, job.ctx.store
    assert sender is not None and job.match is not None and job.parsed is not None
    job.ticket_id = job.match.ticket_id
    ticket = store.tickets.get(job.ticket_id) if job.ticket_id else None
    assert ticket is not None
    store_message(job, "note", verified=False)
    event(job, "unverified", f"{sender.address}: {sender.reason}; no command run", "mailbot")
    for agent in job.ctx.cfg.agents:  # all of them: the real owner of the address too
        notices.send(
            job.ctx,
            ticket,
            template="agent_unverified",
            to=agent.email,
            now=job.now,
            sender=sender,
            text=job.parsed.text,
        )


def _apply(job: Job, ticket: Row, command: Command, actor: str) -> None:
    store, now = job.ctx.store, job.now
    changes: dict[str, object] = {}
    if command.name == "assign":
        changes["assignee"] = command.value
    elif command.name == "priority":
        changes["priority"] = command.value
    elif command.name == "lang":
        changes["language"] = command.value
    elif command.name == "topic":
        changes["topic"] = command.value
    elif command.name == "pending":
        changes["status"] = "pending"
    elif command.name == "reopen":
        changes.update(status="open", closed_at=None)
    elif command.name == "close":
        changes.update(status="closed", closed_at=to_db(now))
    if changes:
        store.tickets.update(ticket["id"], {**changes, "updated_at": to_db(now)})
    detail = ", ".join(f"{k} {v}" for k, v in changes.items() if k != "closed_at")
    event(job, command.name, f"{command.line} → {detail or 'note'}", actor)
    hook = {
        "pending": sla_timers.on_pending,
        "reopen": sla_timers.on_reopened,
        "close": sla_timers.on_closed,
        "priority": sla_timers.on_priority,
    }.get(command.name)
    if hook:
        hook(job.ctx, ticket["id"], now)


def _thread_refs(job: Job, ticket_id: int) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) so the customer's client shows one conversation."""
    rows = job.ctx.store.all(
        "SELECT direction, kind, message_id FROM messages WHERE ticket_id = ?"
        " AND message_id IS NOT NULL AND kind IN ('customer', 'agent', 'system') ORDER BY id",
        (ticket_id,),
    )
    last_customer = next((r["message_id"] for r in reversed(rows) if r["kind"] == "customer"), None)
    refs = list(dict.fromkeys(r["message_id"] for r in rows))
    return last_customer, refs[:1] + refs[-9:] if len(refs) > 10 else refs


def _reply(job: Job, ticket: Row, text: str, agent_name: str, message_row: int) -> None:
    """Enqueue the agent's words to the customer and record them as outgoing."""
    ctx, store = job.ctx, job.ctx.store
    att_ids = [
        r["id"]
        for r in store.all("SELECT id FROM attachments WHERE message_row = ?", (message_row,))
    ]
    cc = [
        r["address"]
        for r in store.all(
            "SELECT address FROM participants WHERE ticket_id = ? AND role = 'cc'", (ticket["id"],)
        )
    ]
    in_reply_to, refs = _thread_refs(job, ticket["id"])
    first_name = agent_name.split()[0] if agent_name.strip() else agent_name
    row_id, message_id = outbox.enqueue(
        ctx,
        now=job.now,
        ticket_id=ticket["id"],
        template="reply",
        language=ticket["language"],
        to=ticket["requester"],
        cc=cc,
        purpose="reply",
        context={
            "tag": ctx.tag(ticket["id"]),
            "subject": ticket["subject"],
            "ticket": dict(ticket),
            "text": text,
            "agent_name": agent_name,
            "footer": ctx.cfg.outbound.footer,
            "company": ctx.cfg.mailbot.name,
        },
        in_reply_to=in_reply_to,
        references=refs,
        auto_submitted=None,  # a person's answer, not an automatic one
        from_name=f"{first_name} | {ctx.cfg.mailbot.name}",
        attachments=att_ids,
    )
    store.insert(
        "messages",
        {
            "ticket_id": ticket["id"],
            "outbox_id": row_id,
            "direction": "out",
            "kind": "agent",
            "from_addr": job.sender.address if job.sender else None,
            "from_name": agent_name,
            "message_id": message_id,
            "subject": None,
            "text": text,
            "created_at": to_db(job.now),
        },
    )


def agent_mail(job: Job) -> None:
    """An authenticated agent wrote on a ticket: commands, then the reply or the note."""
    sender, store, parsed = job.sender, job.ctx.store, job.parsed
    assert sender is not None and sender.agent is not None and parsed is not None
    assert job.match is not None and job.match.ticket_id is not None
    job.ticket_id = job.match.ticket_id
    ticket = store.tickets.get(job.ticket_id)
    assert ticket is not None
    actor = sender.address
    lines, body = agent_commands.split(strip_reply(parsed.text))
    try:
        commands = agent_commands.parse(job.ctx.cfg, lines)
    except CommandError as exc:
        store_message(job, "note", keep_inline=False)
        event(job, "commands-rejected", "; ".join(exc.problems), actor)
        _tell_agent(
            job,
            ticket,
            actor,
            "agent_error",
            problems=exc.problems,
            help=agent_commands.HELP,
            nothing_sent=True,
        )
        return
    names = {c.name for c in commands}
    internal = "note" in names or not body
    message_row = store_message(
        job, "note" if internal else "agent", body or parsed.text, keep_inline=False
    )
    event(job, "agent-mail", f"{sender.reason}; {job.match.reason}", actor)
    for command in (c for c in commands if c.name in BEFORE_REPLY):
        _apply(job, ticket, command, actor)
    ticket = store.tickets.get(ticket["id"])
    assert ticket is not None
    if not internal:
        _reply(job, ticket, body, sender.agent.name, message_row)
        event(job, "replied", f"{sender.agent.name} answered the customer", actor)
        _first_response(job, ticket, actor, assigned="assign" in names)
    elif not body and not commands:
        _tell_agent(
            job,
            ticket,
            actor,
            "agent_error",
            problems=["the reply had no text"],
            help=agent_commands.HELP,
            nothing_sent=True,
        )
    for command in sorted(
        (c for c in commands if c.name in AFTER_REPLY), key=lambda c: AFTER_REPLY.index(c.name)
    ):
        _apply(job, store.tickets.get(ticket["id"]) or ticket, command, actor)
    if "note" in names:
        event(job, "note", "internal note; nothing sent to the customer", actor)


def _first_response(job: Job, ticket: Row, actor: str, assigned: bool) -> None:
    changes: dict[str, object] = {}
    if ticket["first_response_at"] is None:
        changes["first_response_at"] = to_db(job.now)
    if ticket["assignee"] is None and not assigned:
        changes["assignee"] = actor  # the first to answer owns the ticket from now on
        event(job, "assign", f"assignee {actor} (first to answer)", actor)
    if changes:
        job.ctx.store.tickets.update(ticket["id"], changes)
    if "first_response_at" in changes:
        event(job, "first-response", f"first response by {actor}", actor)
        sla_timers.on_first_response(job.ctx, ticket["id"], job.now)
