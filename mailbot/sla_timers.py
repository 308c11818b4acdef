"""SLA warnings and breaches as timers: the decisions that keep them in step with a ticket.

The pipeline's decide step and the timer handlers call the `on_*` functions with the `Plan` they
are building; those add the timer and clock decisions to it (nothing here writes).

A ticket's first-response due time is a function of its arrival, the configured calendar and
SLA, and the pauses of its clock (`sla_pauses`: #pending, or closed before an answer): each
pause moves the due time by the business time it lasted. While the clock runs (status open, no
first response, not pending) the ticket has one `sla_warning` timer per `[sla] warn_before`
offset still ahead and one `sla_breach` timer at the due time. Each fires at most once per
ticket; handlers re-check the ticket and plan nothing for one answered, closed or pending.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from sqlite3 import Row

from mailbot import escalations, notices
from mailbot.config import Config
from mailbot.decisions import CancelTimers, PauseClock, Plan, ResumeClock, ScheduleTimer
from mailbot.sla import Duration
from mailbot.store import RowLike, Store, from_db, to_db

SLA_KINDS = ("sla_warning", "sla_breach")


# -- the due time ------------------------------------------------------------------------------


def clock_running(ticket: RowLike) -> bool:
    return (
        ticket["status"] == "open"
        and ticket["first_response_at"] is None
        and ticket["pending_since"] is None
    )


def compute_due(cfg: Config, created_at: str, pauses: Sequence[RowLike]) -> datetime:
    """Arrival + SLA on the current calendar, moved by every finished pause of the clock."""
    cal = cfg.calendar
    created = from_db(created_at)
    assert created is not None
    due = cal.first_response_due(created, cfg.sla.first_response)
    for pause in pauses:
        start, end = from_db(pause["started_at"]), from_db(pause["ended_at"])
        assert start is not None and end is not None
        if start >= due:
            continue  # the clock had run out already: pausing later forgives nothing
        paused = cal.business_seconds_between(start, end)
        if paused:  # zero would still move a due time outside hours to the next opening
            due = cal.add_business_seconds(due, paused)
    return due


def _update_due(plan: Plan, store: Store, cfg: Config, why: str) -> bool:
    """Recompute the due time (with an event saying why); True when it moved."""
    ticket = plan.ticket
    due = to_db(compute_due(cfg, ticket["created_at"], plan.finished_pauses(store)))
    if due == ticket["first_response_due"]:
        return False
    plan.update(first_response_due=due)
    plan.event("due", f"first response due {notices.iso(cfg, due)} ({why})")
    return True


# -- keeping the timers in step ----------------------------------------------------------------


def _key(before: Duration) -> str:
    """Names a warning offset, so each fires once per ticket even when due times move."""
    return f"{before.business_days}d{before.seconds}s"


def timer_slots(cfg: Config, due: datetime) -> list[tuple[str, str, datetime]]:
    """(kind, key, when) of every SLA timer a ticket due at `due` should have."""
    plan = [("sla_warning", _key(b), cfg.calendar.subtract(due, b)) for b in cfg.sla.warn_before]
    plan.append(("sla_breach", "due", due))
    return plan


def _payload(timer: RowLike) -> dict:
    return json.loads(timer["payload"] or "{}")


def _slot(timer: RowLike) -> tuple[str, str]:
    return timer["kind"], _payload(timer).get("key", "")


def schedule(plan: Plan, store: Store, cfg: Config) -> None:
    """Make the ticket's scheduled SLA timers match its due time; safe to call again."""
    ticket, now = plan.ticket, plan.now
    if not clock_running(ticket):
        plan.add(CancelTimers(SLA_KINDS))
        return
    pending = {_slot(t): t for t in plan.scheduled(store, SLA_KINDS)}
    done = {_slot(t) for t in plan.used_slots(store, SLA_KINDS)}
    due = ticket["first_response_due"]
    due_at = from_db(due)
    assert due_at is not None
    for kind, key, moment in timer_slots(cfg, due_at):
        timer = pending.pop((kind, key), None)
        if timer is not None and timer["due_at"] == to_db(moment) and _payload(timer)["due"] == due:
            continue  # unchanged, even if overdue: a restarted daemon fires it now
        if timer is not None:
            plan.cancel(timer)
        if (kind, key) in done:
            continue  # each reminder once per ticket
        if kind == "sla_warning" and moment <= now:
            continue  # its moment passed before the clock got there (late arrival, resume)
        plan.add(ScheduleTimer(kind, moment, {"key": key, "due": due}))
    for timer in pending.values():  # an offset no longer configured
        plan.cancel(timer)


def recompute(store: Store, cfg: Config, ticket: Row, now: datetime) -> Plan:
    """After a config change: the due time and timers of a ticket whose clock runs."""
    plan = Plan(now)
    plan.start(ticket)
    plan.acted = _update_due(plan, store, cfg, "calendar or SLA changed")
    schedule(plan, store, cfg)
    return plan


# -- pauses --------------------------------------------------------------------------------------


def _pause(plan: Plan, store: Store, reason: str) -> None:
    if plan.ticket["first_response_at"] is None and plan.open_pause(store) is None:
        plan.add(PauseClock(reason))
    plan.add(CancelTimers())  # SLA reminders and any deferred manager page


def _end_pause(plan: Plan, store: Store, cfg: Config) -> None:
    """The clock runs again: the due time moves by the business time it stood still."""
    pause = plan.open_pause(store)
    if pause is None:
        return
    assert pause["id"] is not None, "a pause started by this plan cannot end in it"
    plan.add(ResumeClock(pause["id"], pause["started_at"]))
    started = from_db(pause["started_at"])
    assert started is not None
    hours = cfg.calendar.business_seconds_between(started, plan.now) / 3600
    _update_due(plan, store, cfg, f"clock stood {hours:.1f} business hours ({pause['reason']})")


# -- what tickets going through the pipeline lead to ---------------------------------------------


def on_new_ticket(plan: Plan, store: Store, cfg: Config, *, quietly: bool) -> None:
    """A ticket was opened: schedule its SLA timers; page the manager if it is urgent.

    `quietly`: old mail imported with --no-replies or --history: nobody is paged about it.
    """
    schedule(plan, store, cfg)
    if plan.ticket["priority"] == "urgent":
        escalations.escalate(plan, store, cfg, source="customer", quietly=quietly)


def on_first_response(plan: Plan, store: Store, cfg: Config) -> None:
    """The first agent reply went to the customer: the SLA clock stops."""
    _end_pause(plan, store, cfg)  # answered while paused: the due time credits the pause
    plan.add(CancelTimers())


def on_pending(plan: Plan, store: Store, cfg: Config) -> None:
    """The ticket waits on the customer: the clock pauses."""
    if plan.ticket["pending_since"] is None:
        plan.update(pending_since=plan.now)
    _pause(plan, store, "pending")


def on_resumed(plan: Plan, store: Store, cfg: Config) -> None:
    """The customer answered a pending ticket (or it was reopened): the clock runs again."""
    plan.update(pending_since=None)
    _end_pause(plan, store, cfg)
    schedule(plan, store, cfg)


def on_closed(plan: Plan, store: Store, cfg: Config) -> None:
    """The ticket was closed: nothing more fires for it (an unanswered one's clock pauses)."""
    _pause(plan, store, "closed")


def on_priority(plan: Plan, store: Store, cfg: Config, actor: str) -> None:
    """An agent changed the priority: urgent pages the manager, normal calls off a page."""
    if plan.ticket["priority"] == "urgent":
        escalations.escalate(plan, store, cfg, source="agent", raised_by=actor)
    else:
        plan.add(CancelTimers((escalations.PAGE_KIND,)))


# -- timer handlers ------------------------------------------------------------------------------


def _still_due(store: Store, timer: Row) -> Row | None:
    """The timer's ticket, if its clock still runs toward the due time the timer was set for."""
    ticket = store.tickets.get(timer["ticket_id"]) if timer["ticket_id"] else None
    if ticket is None or not clock_running(ticket):
        return None
    if _payload(timer).get("due") != ticket["first_response_due"]:
        return None
    return ticket


def fire_warning(store: Store, cfg: Config, timer: Row, now: datetime) -> Plan | None:
    """Remind the assignee (or the ticket's agents) that the first response is due soon."""
    ticket = _still_due(store, timer)
    if ticket is None:
        return None
    if ticket["first_response_due"] <= to_db(now):
        return None  # fired late (the daemon was down past the due): the breach notice covers it
    plan = Plan(now)
    plan.start(ticket)
    recipients = notices.ticket_agents(cfg, ticket)
    for to in recipients:
        plan.add(
            notices.to_staff(
                cfg,
                template="sla_warning",
                to=to,
                in_reply_to=store.outbox.first_notification(ticket["id"], to),
            )
        )
    plan.event(
        "sla-warning",
        f"first response due {notices.iso(cfg, ticket['first_response_due'])};"
        f" reminded {', '.join(recipients) or 'nobody (no agents configured)'}",
    )
    return plan


def fire_breach(store: Store, cfg: Config, timer: Row, now: datetime) -> Plan | None:
    """Tell the leads that a first response is overdue."""
    ticket = _still_due(store, timer)
    if ticket is None:
        return None
    plan = Plan(now)
    plan.start(ticket)
    recipients = notices.leads(cfg)
    for to in recipients:
        plan.add(notices.to_staff(cfg, template="sla_breach", to=to, purpose="notice"))
    plan.event(
        "sla-breach",
        f"first response was due {notices.iso(cfg, ticket['first_response_due'])};"
        f" told {', '.join(recipients) or 'nobody (no leads or agents configured)'}",
    )
    return plan
