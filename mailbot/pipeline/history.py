"""Decisions about the support mailbox's own old mail, met when its history is imported.

`mailbot import --history` replays a mailbox that was answered by hand before mailbot: the
answers the support address sent (its Sent folder, or mail From it in the folders given) are
kept on the customer's ticket as outgoing agent messages at the time they were sent. The
first one is the ticket's first response, so the SLA report shows the old figures truthfully,
and a ticket whose latest message is ours waits on the customer (status `pending`). Automatic
mail of ours (an old autoresponder's acknowledgements) is kept but answers nothing, and so is
our mail on a ticket that went to none of its participants (a forward to a colleague): a note.
Nothing here sends or schedules anything: the job's plan replays history (`Plan.history`).
"""

from __future__ import annotations

from dataclasses import replace

from mailbot import sla_timers
from mailbot.decisions import Plan
from mailbot.pipeline import Ignore, Job
from mailbot.store import to_db


def past_answer(job: Job) -> Plan:
    """Our old answer on the ticket it belongs to, and what it meant for the ticket's SLA."""
    sender, match, store, cfg = job.sender, job.match, job.ctx.store, job.ctx.cfg
    assert sender is not None and match is not None
    if match.ticket_id is None:
        raise Ignore(f"our old mail belongs to no imported ticket: {match.reason}")
    ticket = store.tickets.get(match.ticket_id)
    assert ticket is not None
    plan = job.new_plan()
    plan.start(ticket)
    parsed = job.parsed
    assert parsed is not None
    recipients = [address for _, address in (*parsed.to, *parsed.cc)]
    if not any(store.participants.takes_part(ticket["id"], a) for a in recipients):
        # Forwarded to a colleague or a supplier: part of the story, no answer to the customer.
        plan.add(job.kept("note"))
        plan.event("history", f"our mail to {', '.join(recipients) or 'nobody'}: kept as a note")
        return plan
    if sender.automatic is not None:
        plan.add(replace(job.kept("system"), direction="out"))
        plan.event("history", f"our automatic mail ({sender.automatic.reason}): not an answer")
        return plan
    plan.add(replace(job.kept("agent"), direction="out"))
    plan.event("history", f"answered from {sender.address} ({sender.reason}); {match.reason}")
    sent = to_db(job.now)
    first = ticket["first_response_at"]
    if first is None or sent < first:  # Sent folder imported after the inbox: the earliest wins
        plan.update(first_response_at=job.now)
        plan.event("first-response", f"first response by {sender.address}", sender.address)
        sla_timers.on_first_response(plan, store, cfg)
    if ticket["status"] == "open" and sent >= ticket["updated_at"]:
        plan.update(status="pending", updated_at=job.now)
        plan.event("pending", "our answer is the latest message: waiting on the customer")
        sla_timers.on_pending(plan, store, cfg)
    return plan
