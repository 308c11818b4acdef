"""Decide step: what a message leads to (tickets, messages, outgoing mail, timers), as a `Plan`.

The last step of the pipeline. It reads the database but writes nothing: it returns the
decisions in `job.plan`, and the worker has `mailbot.writer` apply them in the message's
transaction. Agents' mail is decided in `agents`, SLA timers in `sla_timers`.
"""

from __future__ import annotations

from datetime import timedelta
from sqlite3 import Row

from mailbot import notices, references, sla_timers
from mailbot.decisions import AddParticipant, Event, MarkUndeliverable, OpenTicket, Plan
from mailbot.mail.quotes import strip_reply
from mailbot.pipeline import Duplicate, Ignore, Job, Step, agents, history
from mailbot.pipeline.thread import ticket_subject
from mailbot.pipeline.topics import topic_of
from mailbot.store import from_db
from mailbot.thanks import short_thanks


def subject_of(job: Job) -> str:
    """The ticket subject: the customer's, minus reply prefixes and any ticket tag."""
    assert job.parsed is not None
    return ticket_subject(job.ctx.cfg.mailbot.name, job.parsed.subject)


def _customer_mail(job: Job, plan: Plan, template: str, **extra: object) -> None:
    """An automatic answer to the requester, threaded under the message being processed."""
    assert job.parsed is not None
    if job.history:
        plan.event("no-reply", f"{template} not sent: old mail imported with --history")
        return
    if job.no_replies:
        plan.event("no-reply", f"{template} not sent: imported with --no-replies")
        return
    refused = notices.to_customer(
        plan, job.ctx.store, job.ctx.cfg, template=template, purpose=template, **extra
    )
    if refused:
        plan.event("no-answer", f"{template} not sent: {refused}")


def _notify_agents(
    job: Job, plan: Plan, template: str, new_text_only: bool, stranger: bool = False
) -> None:
    """The customer's words and files to the agents who look after the ticket.

    A new ticket shows the whole text: there is no history of ours in it, and what a customer
    forwards is part of the request. A follow-up (`new_text_only`; also a reply to a ticket
    closed too long ago, which opens a new one) shows the new text only: the quoted history,
    our own ack included, is stripped as for agents' replies, and the message goes along as
    it arrived, for when the stripping cut too much. Files travel within
    `[notifications] attachments_max` (see `notices.carried_files`). `stranger`: the notice
    says the mail referred to the previous ticket, in which its sender takes no part.
    """
    parsed, sender, cfg = job.parsed, job.sender, job.ctx.cfg
    assert parsed is not None and sender is not None
    if job.history:
        return  # old mail: agents see it in the ticket, nobody is told of it
    text = (strip_reply(parsed.text) if new_text_only else parsed.text).strip()
    # One text, quoted by every agent's notice: bounded, so ten agents do not make ten
    # copies of a pasted 25 MB log (the ticket keeps the whole text).
    text, text_cut = notices.quoted_text(text, cfg.notifications.text_max)
    files = notices.carried_files(cfg, parsed.attachments, len(job.raw) if new_text_only else None)
    box = notices.mailbox(cfg, plan.ticket)
    for address in notices.ticket_agents(cfg, plan.ticket):
        plan.add(
            notices.to_staff(
                cfg,
                template=template,
                to=address,
                in_reply_to=parsed.message_id,
                references=references.staff_thread(plan, job.ctx.store, address, parsed.message_id),
                from_name=f"{sender.name or sender.address} via {box.name}",
                attach=files.carried,
                attach_original=bool(files.original and files.original["carried"]),
                text=text,
                text_cut=text_cut,
                text_max=cfg.notifications.text_max,
                raw_size=len(job.raw),
                sender=sender,
                files=files.files,
                left_out=files.left_out,
                original=files.original,
                inbound_id=job.inbound_id,
                attachments_max=cfg.notifications.attachments_max,
                stranger=stranger,
            )
        )


def new_ticket(job: Job, previous: int | None = None, stranger: bool = False) -> Plan:
    """A new ticket; `previous`: the closed ticket it follows, or with `stranger` the ticket
    the mail referred to by Message-ID, which its sender takes no part in (left unchanged)."""
    parsed, sender, ctx = job.parsed, job.sender, job.ctx
    assert parsed is not None and sender is not None
    cfg, store = ctx.cfg, ctx.store
    plan = job.new_plan()
    due = cfg.calendar.first_response_due(job.received_at, cfg.sla.first_response)
    topic, topic_reason = topic_of(cfg.topics, parsed.subject, parsed.text)
    mailbox = job.mailbox or cfg.mailboxes[0]
    if topic is None and mailbox.topic:
        topic, topic_reason = mailbox.topic, f"{topic_reason}: {mailbox.address}'s topic"
    plan.add(
        OpenTicket(
            subject=subject_of(job),
            priority=job.priority,
            language=job.language,
            requester=sender.address,
            requester_name=sender.name,
            topic=topic,
            created_at=job.received_at,
            first_response_due=due,
            previous_ticket=previous,
            mailbox=mailbox.address,
        ),
        AddParticipant(sender.address, sender.name, "requester"),
        *_ccs(job),
        job.kept("customer"),
    )
    plan.event("created", f"new ticket: {job.match.reason if job.match else ''}; {sender.reason}")
    if previous and stranger:
        plan.event(
            "linked",
            f"refers to ticket #{previous}, in which {sender.address} takes no part:"
            f" opened apart, #{previous} unchanged",
        )
        plan.add(
            Event(
                "linked",
                f"{sender.address}, who takes no part in this ticket, referred to it"
                " (a quoted Message-ID): their mail opened a new ticket, this one is unchanged",
                ticket_id=previous,
            )
        )
    elif previous:
        plan.event("linked", f"follows closed ticket #{previous} (reopen window passed)")
    plan.event("classified", "; ".join(job.notes))
    if job.history:
        plan.event("history", f"old mail, imported {job.history:%Y-%m-%d %H:%M} UTC: nobody told")
    if job.priority == "urgent":
        plan.event("priority", f"urgent: {job.priority_reason}")
    if topic:
        plan.event("topic", f"{topic}: {topic_reason}")
    plan.event("due", f"first response due {due.isoformat()} ({cfg.sla.first_response})")
    # The new ticket joins the back of the queue.
    _customer_mail(job, plan, "ack", position=store.tickets.queue_length() + 1)
    _notify_agents(
        job,
        plan,
        "agent_new",
        new_text_only=previous is not None and not stranger,
        stranger=stranger,
    )
    sla_timers.on_new_ticket(plan, store, cfg, quietly=job.no_replies or bool(job.history))
    return plan


def _ccs(job: Job) -> list[AddParticipant]:
    """The customer's CCs take part in the ticket (never one of our mailboxes or an agent)."""
    parsed, cfg = job.parsed, job.ctx.cfg
    assert parsed is not None
    return [
        AddParticipant(address, name, "cc")
        for name, address in (*parsed.to, *parsed.cc)
        if not (
            cfg.mailbox_receiving(address)  # any support address, +tag variants too
            or cfg.agent(address)
            or address in cfg.mailbot.contact_forms
        )
    ]


def follow_up(job: Job, ticket: Row) -> Plan:
    """A customer wrote again on an existing ticket."""
    parsed, sender, ctx = job.parsed, job.sender, job.ctx
    assert parsed is not None and sender is not None
    store, cfg = ctx.store, ctx.cfg
    plan = job.new_plan()
    plan.start(ticket)
    participant = store.participants.takes_part(ticket["id"], sender.address)
    plan.add(job.kept("customer"))
    plan.event(
        "follow-up",
        f"{job.match.reason if job.match else ''}"
        + ("" if participant else f"; {sender.address} does not take part (not added)"),
    )
    was = ticket["status"]
    thanks = _short_thanks(job) if was == "closed" else None
    if thanks:
        # Kept for the record; the ticket stays closed and nobody is paged or answered.
        plan.update(updated_at=job.now)
        plan.event("thanks", f"{thanks} after the ticket was closed: not reopened, nobody told")
        return plan
    if was == "closed":
        plan.update(updated_at=job.now, status="open", closed_at=None)
        plan.event("reopened", f"customer replied within {cfg.mailbot.reopen_days} days")
    elif was == "pending":
        plan.update(updated_at=job.now, status="open")
        plan.event("resumed", "customer replied while the ticket waited on them")
    else:
        plan.update(updated_at=job.now)
    if was in ("closed", "pending"):
        sla_timers.on_resumed(plan, store, cfg)
    current = plan.ticket
    if (
        participant
        and current["first_response_at"] is None
        and current["queued_notice_at"] is None
        and not job.history
    ):
        position = store.tickets.queue_position(current["created_at"])
        _customer_mail(job, plan, "queued", position=position)
        plan.update(queued_notice_at=job.now)
    _notify_agents(job, plan, "agent_followup", new_text_only=True)
    return plan


SIGNATURE_IMAGE_MAX = 50_000  # bytes: company logos in signatures are smaller


def _short_thanks(job: Job) -> str | None:
    """Why the customer's mail is only a short thank-you, or None (`mailbot.thanks`)."""
    parsed, sender, cfg = job.parsed, job.sender, job.ctx.cfg
    assert parsed is not None and sender is not None
    return short_thanks(
        parsed.text,
        cfg.thanks,
        names=[sender.name, *(agent.name for agent in cfg.agents)],
        # Small inline images are a signature's logos (Outlook); a pasted screenshot is not.
        attachments=sum(
            not att.inline or len(att.data) > SIGNATURE_IMAGE_MAX for att in parsed.attachments
        ),
    )


def automatic(job: Job) -> Plan:
    """Robots get no answer; mail that threads onto a ticket is kept there for agents."""
    sender, cfg = job.sender, job.ctx.cfg
    assert sender is not None and sender.automatic is not None and job.match is not None
    if job.match.ticket_id is None:
        raise Ignore(f"automatic mail ({sender.automatic.kind}): {sender.automatic.reason}")
    plan = job.new_plan(job.match.ticket_id)
    bounce = sender.automatic.bounce
    text = job.parsed.text if job.parsed else ""
    if bounce:
        text = (
            f"Delivery failed ({'permanent' if bounce.permanent else 'temporary'}"
            f"{', ' + bounce.status if bounce.status else ''}) for "
            f"{', '.join(bounce.recipients) or 'unknown recipient'}.\n\n{text}"
        )
    plan.add(job.kept("system" if bounce else "auto", text))
    plan.event(sender.automatic.kind, f"{sender.automatic.reason}; {job.match.reason}")
    if bounce and bounce.permanent:
        # The bounce named nobody: the ticket's requester is the likely one.
        ticket = job.ctx.store.tickets.get(job.match.ticket_id)
        recipients = bounce.recipients or ((ticket["requester"],) if ticket else ())
        days = cfg.limits.undeliverable_days
        for address in recipients:
            plan.add(MarkUndeliverable(address, job.now + timedelta(days=days), "hard bounce"))
            plan.event(
                "undeliverable", f"{address}: no automatic mail for {days} days (hard bounce)"
            )
    return plan


def decide(job: Job) -> Plan:
    """What the earlier steps' findings lead to."""
    parsed, sender, match, store = job.parsed, job.sender, job.match, job.ctx.store
    assert parsed is not None and sender is not None and match is not None
    if parsed.message_id and store.messages.has(parsed.message_id, sender.address):
        raise Duplicate(f"already have {parsed.message_id} from {sender.address}")
    if sender.kind == "support":
        return history.past_answer(job)
    if sender.kind == "automatic":
        return automatic(job)
    if sender.agent and match.ticket_id is not None:
        # A token authenticates its own ticket only: a token for A never acts on B.
        if sender.kind == "agent" and sender.token_ticket in (None, match.ticket_id):
            return agents.agent_mail(job)
        return agents.unverified(job)
    if match.ticket_id is None and sender.agent and agents.asks_for_digest(job):
        return agents.digest_request(job)
    if match.ticket_id is None and sender.kind == "agent" and sender.token_ticket == 0:
        # Only digests are signed without a ticket: a reply to one is about no customer.
        raise Ignore(f"{sender.address} replied to a digest without #lista: nothing to do")
    if match.ticket_id is None:
        return new_ticket(job)
    if (
        match.by == "message-id"
        and not sender.agent
        and not store.participants.takes_part(match.ticket_id, sender.address)
    ):
        # Anyone who saw a message of the ticket can quote its Message-ID (DESIGN §2): a
        # stranger's mail gets a ticket of its own, linked, and the old one stays as it was.
        return new_ticket(job, previous=match.ticket_id, stranger=True)
    ticket = store.tickets.get(match.ticket_id)
    assert ticket is not None
    closed_at = from_db(ticket["closed_at"])
    if closed_at and job.received_at - closed_at > timedelta(days=job.ctx.cfg.mailbot.reopen_days):
        return new_ticket(job, previous=ticket["id"])
    return follow_up(job, ticket)


def run(job: Job) -> None:
    """Decide; the worker writes `job.plan` in the message's transaction."""
    job.plan = decide(job)


STEP = Step("decide", run, reads_store=True)
