"""Decisions about agents' mail: replies to customers, commands, internal notes, spoof handling.

An agent's message on a ticket is stripped of quoted history and signature, its command lines
are validated all together (one bad line and none is applied: the agent gets the list of valid
commands), and then the plan holds, for one transaction: the ticket changes, the customer's reply
from the support address, and every change as an event naming the agent. An agent given the
ticket by someone else's `#assign` is told, with the ticket's story so far.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from mailbot import digest, notices, references, sla_timers
from mailbot.config import Config
from mailbot.decisions import Plan, Record, Send
from mailbot.mail.charsets import fold
from mailbot.mail.quotes import signature_block, strip_reply
from mailbot.pipeline import Ignore, Job
from mailbot.pipeline import commands as agent_commands
from mailbot.pipeline.commands import Command, CommandError, Problem
from mailbot.pipeline.thread import clean_subject
from mailbot.store import to_db

# Applied before the reply goes out (they shape it); the status changes come after it.
BEFORE_REPLY = ("assign", "priority", "lang", "topic")
AFTER_REPLY = ("reopen", "pending", "close")
# The story a new assignee gets: the first message and the latest ones, each cut at this length.
STORY_MESSAGES = 10
STORY_CHARS = 1500
# Agents are warned of forged mail claiming one agent's address at most this often; later
# forgeries are kept as unverified notes all the same.
UNVERIFIED_WARNING_EVERY = timedelta(hours=1)


def _tell_agent(job: Job, plan: Plan, to: str, problems: list[Problem], text: str) -> None:
    """What was wrong with an agent's own mail (nothing was sent), with their text to reuse.

    In the staff language ([mailbot] default_language); replying to it authenticates.
    """
    cfg = job.ctx.cfg
    language = cfg.mailbot.default_language
    plan.add(
        notices.to_staff(
            cfg,
            template="agent_error",
            to=to,
            in_reply_to=job.parsed.message_id if job.parsed else None,
            auto_submitted="auto-replied",
            problems=[asdict(problem) for problem in problems],
            topics=[topic.name_in(language) for topic in cfg.topics],
            languages=list(cfg.mailbot.languages),
            text=text,
            nothing_sent=True,
        )
    )


def unverified(job: Job) -> Plan:
    """Mail that claims an agent's address but proves nothing: a flagged note, agents told
    (once an hour per claimed address)."""
    sender, store = job.sender, job.ctx.store
    assert sender is not None and job.match is not None and job.parsed is not None
    assert job.match.ticket_id is not None
    ticket = store.tickets.get(job.match.ticket_id)
    assert ticket is not None
    plan = job.new_plan()
    plan.start(ticket)
    plan.add(job.kept("note", verified=False))
    if store.events.warned_about(sender.address, job.now - UNVERIFIED_WARNING_EVERY):
        # A forger sending many cannot flood the agents: one warning an hour per address.
        plan.event(
            "unverified",
            f"{sender.address}: {sender.reason}; no command run; agents warned within the hour",
        )
        return plan
    plan.event("unverified", f"{sender.address}: {sender.reason}; no command run")
    plan.event("unverified-warned", sender.address)
    cfg = job.ctx.cfg
    text, text_cut = notices.quoted_text(job.parsed.text, cfg.notifications.text_max)
    for agent in cfg.agents:  # all of them: the real owner of the address too
        plan.add(
            notices.to_staff(
                cfg,
                template="agent_unverified",
                to=agent.email,
                sender=sender,
                text=text,
                text_cut=text_cut,
                text_max=cfg.notifications.text_max,
                raw_size=len(job.raw),
                inbound_id=job.inbound_id,
            )
        )
    return plan


def _command(job: Job, plan: Plan, command: Command, actor: str) -> None:
    """One command's changes to the ticket, its event, and what it means for the SLA clock."""
    store, cfg, now = job.ctx.store, job.ctx.cfg, job.now
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
        changes.update(status="closed", closed_at=now)
    if changes:
        plan.update(**changes, updated_at=now)
    detail = ", ".join(f"{k} {v}" for k, v in changes.items() if k != "closed_at")
    plan.event(command.name, f"{command.line} → {detail or 'note'}", actor)
    if command.name == "pending":
        sla_timers.on_pending(plan, store, cfg)
    elif command.name == "reopen":
        sla_timers.on_resumed(plan, store, cfg)
    elif command.name == "close":
        sla_timers.on_closed(plan, store, cfg)
    elif command.name == "priority":
        sla_timers.on_priority(plan, store, cfg, actor)


def _reply(job: Job, plan: Plan, text: str, agent_name: str) -> None:
    """The agent's words to the customer, with their attachments, recorded as outgoing."""
    ctx, ticket = job.ctx, plan.ticket
    assert plan.ticket_id is not None and job.sender is not None
    # The customer's chain and our mail to them: never this agent's own Message-ID.
    in_reply_to, refs = references.customer_thread(plan, ctx.store)
    first_name = agent_name.split()[0] if agent_name.strip() else agent_name
    plan.add(
        Send(
            template="reply",
            to=ticket["requester"],
            language=ticket["language"],
            purpose="reply",
            context={
                "text": text,
                "agent_name": agent_name,
                "footer": ctx.cfg.outbound.footer,
            },
            in_reply_to=in_reply_to,
            references=refs,
            auto_submitted=None,  # a person's answer, not an automatic one
            from_name=f"{first_name} | {notices.mailbox(ctx.cfg, ticket).name}",
            cc=tuple(ctx.store.participants.ccs(plan.ticket_id)),
            attach_message=True,
            record=Record("agent", text, job.sender.address, agent_name),
        )
    )


def agent_mail(job: Job) -> Plan:
    """An authenticated agent wrote on a ticket: commands, then the reply or the note."""
    sender, store, parsed = job.sender, job.ctx.store, job.parsed
    assert sender is not None and sender.agent is not None and parsed is not None
    assert job.match is not None and job.match.ticket_id is not None
    ticket = store.tickets.get(job.match.ticket_id)
    assert ticket is not None
    plan = job.new_plan()
    plan.start(ticket)
    actor = sender.address
    own = strip_reply(parsed.text)
    lines, body = agent_commands.split(own, signature_block(parsed.text))
    try:
        commands = agent_commands.parse(job.ctx.cfg, lines)
    except CommandError as exc:
        plan.add(job.kept("note", keep_inline=False))
        plan.event("commands-rejected", "; ".join(map(str, exc.problems)), actor)
        _tell_agent(job, plan, actor, exc.problems, own)
        return plan
    names = {c.name for c in commands}
    # #lista is a request to mailbot: with it nothing reaches the customer (not even a
    # signature the mail client added below the command).
    internal = "note" in names or "list" in names or not body
    plan.add(job.kept("note" if internal else "agent", body or parsed.text, keep_inline=False))
    plan.event("agent-mail", f"{sender.reason}; {job.match.reason}", actor)
    for command in (c for c in commands if c.name in BEFORE_REPLY):
        _command(job, plan, command, actor)
    if not internal:
        _reply(job, plan, body, sender.agent.name)
        plan.event("replied", f"{sender.agent.name} answered the customer", actor)
        _first_response(job, plan, actor, assigned="assign" in names)
    elif not body and not commands:
        _tell_agent(job, plan, actor, [Problem("", "empty")], own)
    for command in sorted(
        (c for c in commands if c.name in AFTER_REPLY), key=lambda c: AFTER_REPLY.index(c.name)
    ):
        _command(job, plan, command, actor)
    if "note" in names:
        plan.event("note", "internal note; nothing sent to the customer", actor)
    assigned = next((c.value for c in commands if c.name == "assign"), None)
    if assigned and assigned.lower() not in (actor.lower(), (ticket["assignee"] or "").lower()):
        _tell_assignee(job, plan, assigned, body, internal)
    if "list" in names:
        _digest(job, plan, actor)
    return plan


def _tell_assignee(job: Job, plan: Plan, to: str, body: str, internal: bool) -> None:
    """The ticket's story so far to the agent it was just given; replying answers the customer.

    Sent after the reply and the status changes of the same mail, so it shows the ticket as
    they leave it; the ticket's files are listed with the command that gets them, not attached.
    """
    ctx, sender = job.ctx, job.sender
    assert sender is not None and sender.agent is not None and plan.ticket_id is not None
    cfg, store = ctx.cfg, ctx.store
    language = cfg.mailbot.default_language
    entries = _story(job, plan.ticket_id, language)
    if body:
        kind = "note" if internal else "agent"
        entries.append(_entry(kind, sender.agent.name, body, to_db(job.now), cfg, language))
    omitted = max(0, len(entries) - STORY_MESSAGES)
    if omitted:
        entries = entries[:1] + entries[1 + omitted :]
    files = [
        {"id": a["id"], "filename": a["filename"], "size": a["size"], "from": a["from_addr"]}
        for a in store.attachments.of_ticket(plan.ticket_id)
        if not (a["content_type"].startswith("image/") and a["size"] < notices.SIGNATURE_IMAGE_MAX)
    ]
    plan.add(
        notices.to_staff(
            cfg,
            template="agent_assigned",
            to=to,
            in_reply_to=store.outbox.first_notification(plan.ticket_id, to),
            from_name=f"{sender.agent.name} via {notices.mailbox(cfg, plan.ticket).name}",
            assigned_by=sender.agent.name,
            note=body if internal else "",
            story=entries,
            omitted=omitted,
            ticket_files=files,
        )
    )
    plan.event("assign-notice", f"{to} told, with the ticket's story", sender.address)


def _entry(
    kind: str, who: str, text: str, at: str, cfg: Config, language: str, verified: bool = True
) -> dict[str, Any]:
    """One message of a ticket's story as the agent_assigned template shows it."""
    text = text.strip()
    cut = len(text) > STORY_CHARS
    return {
        "kind": kind,  # customer | agent (our answer) | note (internal)
        "who": who,
        "at": notices.when(cfg, at, language),
        "text": text[:STORY_CHARS].rstrip() if cut else text,
        "cut": cut,
        "verified": verified,
    }


def _story(job: Job, ticket_id: int, language: str) -> list[dict[str, Any]]:
    """The customer's messages (new text only after the first), our answers and internal
    notes, oldest first. Acks, notices and robots' mail are left out."""
    cfg, entries = job.ctx.cfg, []
    customers = 0
    for m in job.ctx.store.messages.of_ticket(ticket_id):
        who = m["from_name"] or m["from_addr"] or ""
        if m["direction"] == "in" and m["kind"] == "customer":
            text = m["text"] if customers == 0 else strip_reply(m["text"])
            customers += 1
            entries.append(_entry("customer", who, text, m["created_at"], cfg, language))
        elif m["direction"] == "out" and m["kind"] == "agent":
            entries.append(_entry("agent", who, m["text"], m["created_at"], cfg, language))
        elif m["kind"] == "note":
            entries.append(
                _entry("note", who, m["text"], m["created_at"], cfg, language, bool(m["verified"]))
            )
    return entries


def _digest(job: Job, plan: Plan, actor: str) -> None:
    """`#lista`: the agent's digest, threaded under their mail; the ticket is not touched."""
    parsed = job.parsed
    assert parsed is not None
    digest.on_request(
        plan,
        job.ctx.store,
        job.ctx.cfg,
        actor,
        in_reply_to=parsed.message_id,
        references=tuple(parsed.references),
    )


def _first_response(job: Job, plan: Plan, actor: str, assigned: bool) -> None:
    ticket = plan.ticket
    changes: dict[str, object] = {}
    if ticket["first_response_at"] is None:
        changes["first_response_at"] = job.now
    if ticket["assignee"] is None and not assigned:
        changes["assignee"] = actor  # the first to answer owns the ticket from now on
        plan.event("assign", f"assignee {actor} (first to answer)", actor)
    if changes:
        plan.update(**changes)
    if "first_response_at" in changes:
        plan.event("first-response", f"first response by {actor}", actor)
        sla_timers.on_first_response(plan, job.ctx.store, job.ctx.cfg)


def asks_for_digest(job: Job) -> bool:
    """Mail about no ticket whose subject is `#lista` / `#list`, or whose text starts with it.

    What follows the command lines (a signature, a greeting) does not matter.
    """
    parsed = job.parsed
    assert parsed is not None
    lines = [clean_subject(parsed.subject), *agent_commands.split(strip_reply(parsed.text))[0]]
    return any(
        agent_commands.ALIASES.get(fold(m.group(1))) == "list" and not m.group(2)
        for line in lines
        if (m := agent_commands.COMMAND_LINE_RE.match(line))
    )


def digest_request(job: Job) -> Plan:
    """`#lista` in a fresh mail (or a reply to a daily digest): the digest, if authenticated.

    Only a verified agent gets it (a signed token of ours for that address, or a trusted DMARC
    pass): the answer goes to the agent's own address, but a forged request must not make
    mailbot send anything at all.
    """
    sender, parsed = job.sender, job.parsed
    assert sender is not None and sender.agent is not None and parsed is not None
    if sender.kind != "agent":
        raise Ignore(f"#lista from {sender.address} not answered: {sender.reason}")
    plan = job.new_plan()
    _digest(job, plan, sender.address)
    return plan
