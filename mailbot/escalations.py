"""Urgent tickets page the customer's account manager; the abuse guard limits who may page.

An urgent ticket (subject keyword or Importance/X-Priority header, or an agent's
`#priority urgent`) pages the manager serving the requester at once inside `[urgent]
manager_hours`, otherwise a `manager_page` timer pages them at the start of the next window.
Every escalation is an `escalations` row. A customer's own escalations are counted over a
rolling `WINDOW_DAYS`: the one that reaches `abuse_warn` brings the customer a polite warning;
past `abuse_limit` the manager is no longer paged for them (the ticket stays in the normal
queue) and the leads are told once. `abuse_warn`/`abuse_limit` of 0 switch that step off.
An agent's `#priority urgent` always pages and never counts against the customer: it is how
an agent overrides the guard. `mailbot escalations reset ADDRESS` forgives a customer.
These functions add their decisions (escalation rows, pages, timers, events) to a `Plan`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from sqlite3 import Row

from mailbot import notices
from mailbot.config import Config, Manager
from mailbot.decisions import MarkPaged, Plan, RecordEscalation, ScheduleTimer
from mailbot.store import Store

WINDOW_DAYS = 30
PAGE_KIND = "manager_page"


def counted(store: Store, customer: str, now: datetime) -> int:
    """The customer's own urgent escalations in the rolling window, since any reset."""
    return store.escalations.counted(customer, now - timedelta(days=WINDOW_DAYS))


def escalate(
    plan: Plan,
    store: Store,
    cfg: Config,
    *,
    source: str,
    raised_by: str | None = None,
    quietly: bool = False,
) -> None:
    """The ticket became urgent (`source` customer or agent): page its manager, or do not.

    `raised_by`: the agent whose #priority made it urgent. `quietly`: old mail imported with
    --no-replies or --history, for which nobody is paged.
    """
    ticket, now = plan.ticket, plan.now
    customer = ticket["requester"].lower()
    manager = cfg.manager_for(customer)
    if manager is None:
        plan.event("escalation", f"urgent; {customer} has no account manager")
        return
    if (plan.ticket_id and store.escalations.paged(plan.ticket_id)) or any(
        isinstance(d, RecordEscalation) and d.outcome != "suspended" for d in plan.decisions
    ):
        return  # one page per ticket, however often its priority goes up and down
    if (source == "customer" and quietly) or plan.history is not None:
        plan.event("escalation", "urgent; old mail imported: not paged")
        return
    count = counted(store, customer, now) + 1 if source == "customer" else 0
    limit = cfg.urgent.abuse_limit
    if limit and count > limit:
        _suspended(plan, store, cfg, manager, count)
        return
    outcome = "paged" if cfg.manager_window.contains(now) else "deferred"
    plan.add(RecordEscalation(customer, manager.email, source, outcome))
    if outcome == "paged":
        _page(plan, cfg, manager, raised_by)
    else:
        _defer(plan, cfg, manager, raised_by)
    if cfg.urgent.abuse_warn and count == cfg.urgent.abuse_warn:
        refused = notices.to_customer(
            plan,
            store,
            cfg,
            template="abuse_warning",
            manager=manager,
            count=count,
            limit=limit,
            days=WINDOW_DAYS,
        )
        detail = f"not sent: {refused}" if refused else "sent"
        plan.event("abuse-warning", f"urgent request #{count}; warning {detail}")


def _suspended(plan: Plan, store: Store, cfg: Config, manager: Manager, count: int) -> None:
    """Past the limit: no page, the ticket stays in the queue, the leads hear of it once."""
    customer, limit = plan.ticket["requester"].lower(), cfg.urgent.abuse_limit
    first = not store.escalations.suspended_since(customer, plan.now - timedelta(days=WINDOW_DAYS))
    plan.add(RecordEscalation(customer, manager.email, "customer", "suspended"))
    plan.event(
        "abuse-guard",
        f"{manager.email} not paged: urgent request #{count} from {customer} in {WINDOW_DAYS}"
        f" days (limit {limit}); the ticket stays in the normal queue",
    )
    if not first:
        return
    for to in notices.leads(cfg):
        plan.add(
            notices.to_staff(
                cfg,
                template="abuse_suspended",
                to=to,
                purpose="notice",
                manager=manager,
                count=count,
                limit=limit,
                days=WINDOW_DAYS,
            )
        )


def _page(plan: Plan, cfg: Config, manager: Manager, raised_by: str | None) -> None:
    plan.add(
        notices.to_staff(
            cfg,
            template="manager_urgent",
            to=manager.email,
            purpose="manager",
            manager=manager,
            raised_by=notices.staff_name(cfg, raised_by) if raised_by else None,
            agents=[notices.staff_name(cfg, a) for a in notices.ticket_agents(cfg, plan.ticket)],
            importance="high",  # a page: it must stand out, never be filed away as bulk
        )
    )
    plan.event("manager-paged", f"{manager.name} <{manager.email}>")


def _defer(plan: Plan, cfg: Config, manager: Manager, raised_by: str | None) -> None:
    """Outside manager hours: a timer pages them when the next window opens."""
    start = cfg.manager_window.next_start(plan.now)
    plan.add(ScheduleTimer(PAGE_KIND, start, {"manager": manager.email, "raised_by": raised_by}))
    plan.event(
        "manager-deferred",
        f"{manager.email} will be paged {start.isoformat()}"
        f" (outside manager hours {cfg.urgent.manager_hours})",
    )


def fire_page(store: Store, cfg: Config, timer: Row, now: datetime) -> Plan | None:
    """The manager window opened: page the manager if the ticket still waits, urgent."""
    ticket = store.tickets.get(timer["ticket_id"]) if timer["ticket_id"] else None
    if (
        ticket is None
        or ticket["status"] != "open"
        or ticket["first_response_at"] is not None
        or ticket["priority"] != "urgent"
    ):
        return None
    plan = Plan(now)
    plan.start(ticket)
    manager = cfg.manager_for(ticket["requester"])
    if manager is None:
        plan.event("escalation", "page dropped: no account manager any more")
        plan.acted = False
        return plan
    raised_by = json.loads(timer["payload"] or "{}").get("raised_by")
    if not cfg.manager_window.contains(now):
        # Fired at night (the daemon was down, or the clock jumped): wait for the window again.
        _defer(plan, cfg, manager, raised_by)
        return plan
    _page(plan, cfg, manager, raised_by)
    plan.add(MarkPaged())
    return plan


# -- the admin's view ----------------------------------------------------------------------------


def reset(store: Store, customer: str, now: datetime) -> int:
    """Forgive a customer: their escalations so far no longer count; how many were."""
    customer = customer.strip().lower()
    forgiven = store.escalations.reset(customer, now)
    if forgiven:
        store.events.add(
            "escalations-reset",
            f"{customer}: {forgiven} urgent escalations no longer counted",
            at=now,
            actor="admin",
        )
    return forgiven


def summary(store: Store, cfg: Config, now: datetime) -> list[dict[str, object]]:
    """Customers with counted escalations in the window: count, last one, guard state."""
    urgent = cfg.urgent
    return [
        {
            "customer": row["customer"],
            "manager": row["manager"],
            "count": row["count"],
            "last": notices.iso(cfg, row["last"]),
            "state": _state(row["count"], urgent.abuse_warn, urgent.abuse_limit),
        }
        for row in store.escalations.per_customer(now - timedelta(days=WINDOW_DAYS))
    ]


def _state(count: int, warn: int, limit: int) -> str:
    if limit and count > limit:
        return "suspended"
    if warn and count >= warn:
        return "warned"
    return "ok"
