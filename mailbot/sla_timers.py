"""SLA warnings and breaches as timers, and the hooks that keep them in step with tickets.

The pipeline and agent commands call the `on_*` hooks inside their transaction; the hooks
write or cancel rows in the `timers` table, and the handlers registered here fire them.

A ticket's first-response due time is a function of its arrival, the configured calendar and
SLA, and the pauses of its clock (`sla_pauses`: #pending, or closed before an answer): each
pause moves the due time by the business time it lasted. While the clock runs (status open, no
first response, not pending) the ticket has one `sla_warning` timer per `[sla] warn_before`
offset still ahead and one `sla_breach` timer at the due time. Each fires at most once per
ticket; handlers re-check the ticket and do nothing for one answered, closed or pending.
"""

from __future__ import annotations

import json
from datetime import datetime
from sqlite3 import Row

from mailbot import escalations, notices, scheduler
from mailbot.config import Config
from mailbot.context import Context
from mailbot.sla import Duration
from mailbot.store import from_db, to_db

SLA_KINDS = ("sla_warning", "sla_breach")


# -- the due time ------------------------------------------------------------------------------


def clock_running(ticket: Row) -> bool:
    return (
        ticket["status"] == "open"
        and ticket["first_response_at"] is None
        and ticket["pending_since"] is None
    )


def compute_due(ctx: Context, ticket: Row) -> datetime:
    """Arrival + SLA on the current calendar, moved by every finished pause of the clock."""
    cal = ctx.cfg.calendar
    created = from_db(ticket["created_at"])
    assert created is not None
    due = cal.first_response_due(created, ctx.cfg.sla.first_response)
    pauses = ctx.store.all(
        "SELECT started_at, ended_at FROM sla_pauses WHERE ticket_id = ?"
        " AND ended_at IS NOT NULL ORDER BY started_at, id",
        (ticket["id"],),
    )
    for pause in pauses:
        start, end = from_db(pause["started_at"]), from_db(pause["ended_at"])
        assert start is not None and end is not None
        if start >= due:
            continue  # the clock had run out already: pausing later forgives nothing
        paused = cal.business_seconds_between(start, end)
        if paused:  # zero would still move a due time outside hours to the next opening
            due = cal.add_business_seconds(due, paused)
    return due


def _update_due(ctx: Context, ticket: Row, now: datetime, why: str) -> Row:
    """Store the recomputed due time (with an event saying why); returns the fresh row."""
    due = to_db(compute_due(ctx, ticket))
    if due == ticket["first_response_due"]:
        return ticket
    ctx.store.tickets.update(ticket["id"], {"first_response_due": due})
    local = notices.iso(ctx, due)
    ctx.store.events.add(
        "due", f"first response due {local} ({why})", at=now, ticket_id=ticket["id"]
    )
    fresh = ctx.store.tickets.get(ticket["id"])
    assert fresh is not None
    return fresh


# -- keeping the timers in step ----------------------------------------------------------------


def _key(before: Duration) -> str:
    """Names a warning offset, so each fires once per ticket even when due times move."""
    return f"{before.business_days}d{before.seconds}s"


def _plan(cfg: Config, due: datetime) -> list[tuple[str, str, datetime]]:
    """(kind, key, when) of every SLA timer a ticket due at `due` should have."""
    plan = [("sla_warning", _key(b), cfg.calendar.subtract(due, b)) for b in cfg.sla.warn_before]
    plan.append(("sla_breach", "due", due))
    return plan


def schedule(ctx: Context, ticket_id: int, now: datetime) -> None:
    """Make the ticket's scheduled SLA timers match its due time; safe to call again."""
    store = ctx.store
    ticket = store.tickets.get(ticket_id)
    assert ticket is not None
    if not clock_running(ticket):
        scheduler.cancel_timers(ctx, ticket_id, SLA_KINDS)
        return
    rows = store.all(
        "SELECT * FROM timers WHERE ticket_id = ? AND kind IN (?, ?)", (ticket_id, *SLA_KINDS)
    )
    pending = {_slot(r): r for r in rows if r["status"] == "scheduled"}
    done = {_slot(r) for r in rows if r["status"] in ("fired", "failed")}
    due = ticket["first_response_due"]
    due_at = from_db(due)
    assert due_at is not None
    for kind, key, moment in _plan(ctx.cfg, due_at):
        row = pending.pop((kind, key), None)
        if row is not None and row["due_at"] == to_db(moment) and _payload(row)["due"] == due:
            continue  # unchanged, even if overdue: a restarted daemon fires it now
        if row is not None:
            store.update("timers", row["id"], {"status": "cancelled"})
        if (kind, key) in done:
            continue  # each reminder once per ticket
        if kind == "sla_warning" and moment <= now:
            continue  # its moment passed before the clock got there (late arrival, resume)
        scheduler.add_timer(
            ctx,
            kind=kind,
            due=moment,
            now=now,
            ticket_id=ticket_id,
            payload={"key": key, "due": due},
        )
    for row in pending.values():  # an offset no longer configured
        store.update("timers", row["id"], {"status": "cancelled"})


def _payload(timer: Row) -> dict:
    return json.loads(timer["payload"] or "{}")


def _slot(timer: Row) -> tuple[str, str]:
    return timer["kind"], _payload(timer).get("key", "")


def recompute_open(ctx: Context, now: datetime) -> int:
    """After a config change: due times and timers of tickets whose clock runs; # changed."""
    changed = 0
    for ticket in ctx.store.all(
        "SELECT * FROM tickets WHERE status = 'open' AND first_response_at IS NULL"
        " AND pending_since IS NULL ORDER BY id"
    ):
        fresh = _update_due(ctx, ticket, now, "calendar or SLA changed")
        changed += fresh is not ticket
        schedule(ctx, ticket["id"], now)
    return changed


# -- pauses --------------------------------------------------------------------------------------


def _pause(ctx: Context, ticket_id: int, now: datetime, reason: str) -> None:
    store = ctx.store
    ticket = store.tickets.get(ticket_id)
    assert ticket is not None
    already = store.scalar(
        "SELECT 1 FROM sla_pauses WHERE ticket_id = ? AND ended_at IS NULL", (ticket_id,)
    )
    if ticket["first_response_at"] is None and not already:
        store.insert(
            "sla_pauses", {"ticket_id": ticket_id, "reason": reason, "started_at": to_db(now)}
        )
    scheduler.cancel_timers(ctx, ticket_id)  # SLA reminders and any deferred manager page


def _end_pause(ctx: Context, ticket_id: int, now: datetime) -> None:
    """The clock runs again: the due time moves by the business time it stood still."""
    store = ctx.store
    pause = store.one(
        "SELECT * FROM sla_pauses WHERE ticket_id = ? AND ended_at IS NULL", (ticket_id,)
    )
    if pause is None:
        return
    store.update("sla_pauses", pause["id"], {"ended_at": to_db(now)})
    ticket = store.tickets.get(ticket_id)
    assert ticket is not None
    started = from_db(pause["started_at"])
    assert started is not None
    hours = ctx.cfg.calendar.business_seconds_between(started, now) / 3600
    _update_due(ctx, ticket, now, f"clock stood {hours:.1f} business hours ({pause['reason']})")


# -- hooks called by the pipeline and agent commands -------------------------------------------


def on_new_ticket(ctx: Context, ticket: Row, now: datetime) -> None:
    """A ticket was opened: schedule its SLA timers; page the manager if it is urgent."""
    schedule(ctx, ticket["id"], now)
    if ticket["priority"] == "urgent":
        escalations.escalate(ctx, ticket, now, source="customer")


def on_first_response(ctx: Context, ticket_id: int, now: datetime) -> None:
    """The first agent reply went to the customer: the SLA clock stops."""
    _end_pause(ctx, ticket_id, now)  # answered while paused: the due time credits the pause
    scheduler.cancel_timers(ctx, ticket_id)


def on_pending(ctx: Context, ticket_id: int, now: datetime) -> None:
    """The ticket waits on the customer: the clock pauses."""
    ctx.store.execute(
        "UPDATE tickets SET pending_since = COALESCE(pending_since, ?) WHERE id = ?",
        (to_db(now), ticket_id),
    )
    _pause(ctx, ticket_id, now, "pending")


def on_resumed(ctx: Context, ticket_id: int, now: datetime) -> None:
    """The customer answered a pending ticket: the clock runs again."""
    ctx.store.execute("UPDATE tickets SET pending_since = NULL WHERE id = ?", (ticket_id,))
    _end_pause(ctx, ticket_id, now)
    schedule(ctx, ticket_id, now)


def on_closed(ctx: Context, ticket_id: int, now: datetime) -> None:
    """The ticket was closed: nothing more fires for it (an unanswered one's clock pauses)."""
    _pause(ctx, ticket_id, now, "closed")


def on_reopened(ctx: Context, ticket_id: int, now: datetime) -> None:
    """A closed (or pending) ticket was reopened: the clock runs again if still unanswered."""
    on_resumed(ctx, ticket_id, now)


def on_priority(ctx: Context, ticket_id: int, now: datetime) -> None:
    """An agent changed the priority: urgent pages the manager, normal calls off a page."""
    ticket = ctx.store.tickets.get(ticket_id)
    assert ticket is not None
    if ticket["priority"] == "urgent":
        escalations.escalate(ctx, ticket, now, source="agent")
    else:
        scheduler.cancel_timers(ctx, ticket_id, (escalations.PAGE_KIND,))


# -- handlers ------------------------------------------------------------------------------------


def _still_due(ctx: Context, timer: Row) -> Row | None:
    """The timer's ticket, if its clock still runs toward the due time the timer was set for."""
    ticket = ctx.store.tickets.get(timer["ticket_id"]) if timer["ticket_id"] else None
    if ticket is None or not clock_running(ticket):
        return None
    if _payload(timer).get("due") != ticket["first_response_due"]:
        return None
    return ticket


@scheduler.handler("sla_warning")
def fire_warning(ctx: Context, timer: Row, now: datetime) -> bool:
    """Remind the assignee (or the ticket's agents) that the first response is due soon."""

    ticket = _still_due(ctx, timer)
    if ticket is None:
        return False
    if ticket["first_response_due"] <= to_db(now):
        return False  # fired late (the daemon was down past the due): the breach notice covers it
    recipients = notices.ticket_agents(ctx.cfg, ticket)
    for to in recipients:
        notices.send(
            ctx,
            ticket,
            template="sla_warning",
            to=to,
            now=now,
            in_reply_to=notices.agent_thread(ctx, ticket["id"], to),
        )
    ctx.store.events.add(
        "sla-warning",
        f"first response due {notices.iso(ctx, ticket['first_response_due'])};"
        f" reminded {', '.join(recipients) or 'nobody (no agents configured)'}",
        at=now,
        ticket_id=ticket["id"],
    )
    return True


@scheduler.handler("sla_breach")
def fire_breach(ctx: Context, timer: Row, now: datetime) -> bool:
    """Tell the leads that a first response is overdue."""
    ticket = _still_due(ctx, timer)
    if ticket is None:
        return False
    recipients = notices.leads(ctx.cfg)
    for to in recipients:
        notices.send(ctx, ticket, template="sla_breach", to=to, now=now, purpose="notice")
    ctx.store.events.add(
        "sla-breach",
        f"first response was due {notices.iso(ctx, ticket['first_response_due'])};"
        f" told {', '.join(recipients) or 'nobody (no leads or agents configured)'}",
        at=now,
        ticket_id=ticket["id"],
    )
    return True
