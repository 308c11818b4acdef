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
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from sqlite3 import Row

from mailbot import notices, scheduler
from mailbot.config import Manager
from mailbot.context import Context
from mailbot.store import to_db

WINDOW_DAYS = 30
PAGE_KIND = "manager_page"


def _event(ctx: Context, ticket: Row, now: datetime, kind: str, detail: str) -> None:
    ctx.store.events.add(kind, detail, at=now, ticket_id=ticket["id"])


def counted(ctx: Context, customer: str, now: datetime) -> int:
    """The customer's own urgent escalations in the rolling window, since any reset."""
    return int(
        ctx.store.scalar(
            "SELECT count(*) FROM escalations WHERE customer = ? AND source = 'customer'"
            " AND reset_at IS NULL AND at > ?",
            (customer.lower(), to_db(now - timedelta(days=WINDOW_DAYS))),
        )
    )


def escalate(ctx: Context, ticket: Row, now: datetime, *, source: str) -> None:
    """The ticket became urgent (`source` customer or agent): page its manager, or do not."""
    store, cfg = ctx.store, ctx.cfg
    customer = ticket["requester"].lower()
    manager = cfg.manager_for(customer)
    if manager is None:
        _event(ctx, ticket, now, "escalation", f"urgent; {customer} has no account manager")
        return
    if store.scalar(
        "SELECT 1 FROM escalations WHERE ticket_id = ? AND outcome IN ('paged', 'deferred')",
        (ticket["id"],),
    ):
        return  # one page per ticket, however often its priority goes up and down
    if source == "customer" and _imported_quietly(ctx, ticket["id"]):
        _event(ctx, ticket, now, "escalation", "urgent; imported with --no-replies: not paged")
        return
    count = counted(ctx, customer, now) + 1 if source == "customer" else 0
    limit = cfg.urgent.abuse_limit
    if limit and count > limit:
        _suspended(ctx, ticket, manager, now, count)
        return
    window = cfg.manager_window
    outcome = "paged" if window.contains(now) else "deferred"
    _record(ctx, ticket, manager, now, source, outcome)
    raised_by = _priority_actor(ctx, ticket["id"]) if source == "agent" else None
    if outcome == "paged":
        _page(ctx, ticket, manager, now, raised_by)
    else:
        _defer(ctx, ticket, manager, now, raised_by)
    if cfg.urgent.abuse_warn and count == cfg.urgent.abuse_warn:
        refused = notices.send_to_customer(
            ctx,
            ticket,
            template="abuse_warning",
            now=now,
            manager=manager,
            count=count,
            limit=limit,
            days=WINDOW_DAYS,
        )
        detail = f"not sent: {refused}" if refused else "sent"
        _event(ctx, ticket, now, "abuse-warning", f"urgent request #{count}; warning {detail}")


def _record(
    ctx: Context, ticket: Row, manager: Manager, now: datetime, source: str, outcome: str
) -> None:
    ctx.store.insert(
        "escalations",
        {
            "customer": ticket["requester"].lower(),
            "ticket_id": ticket["id"],
            "manager": manager.email,
            "source": source,
            "outcome": outcome,
            "at": to_db(now),
            "paged_at": to_db(now) if outcome == "paged" else None,
        },
    )


def _suspended(ctx: Context, ticket: Row, manager: Manager, now: datetime, count: int) -> None:
    """Past the limit: no page, the ticket stays in the queue, the leads hear of it once."""
    customer, limit = ticket["requester"].lower(), ctx.cfg.urgent.abuse_limit
    first = not ctx.store.scalar(
        "SELECT 1 FROM escalations WHERE customer = ? AND outcome = 'suspended'"
        " AND reset_at IS NULL AND at > ?",
        (customer, to_db(now - timedelta(days=WINDOW_DAYS))),
    )
    _record(ctx, ticket, manager, now, "customer", "suspended")
    _event(
        ctx,
        ticket,
        now,
        "abuse-guard",
        f"{manager.email} not paged: urgent request #{count} from {customer} in {WINDOW_DAYS}"
        f" days (limit {limit}); the ticket stays in the normal queue",
    )
    if not first:
        return
    for to in notices.leads(ctx.cfg):
        notices.send(
            ctx,
            ticket,
            template="abuse_suspended",
            to=to,
            now=now,
            purpose="notice",
            manager=manager,
            count=count,
            limit=limit,
            days=WINDOW_DAYS,
        )


def _imported_quietly(ctx: Context, ticket_id: int) -> bool:
    """Opened by `import --no-replies` (old mail): nobody is paged or warned about it."""
    return bool(
        ctx.store.scalar(
            "SELECT inbound.no_replies FROM messages"
            " JOIN inbound ON inbound.id = messages.inbound_id"
            " WHERE messages.ticket_id = ? ORDER BY messages.id LIMIT 1",
            (ticket_id,),
        )
    )


def _priority_actor(ctx: Context, ticket_id: int) -> str | None:
    """The agent whose #priority command made the ticket urgent (the latest priority event)."""
    actor = ctx.store.scalar(
        "SELECT actor FROM events WHERE ticket_id = ? AND kind = 'priority' ORDER BY id DESC",
        (ticket_id,),
    )
    return actor if actor and actor != "mailbot" else None


def _page(
    ctx: Context, ticket: Row, manager: Manager, now: datetime, raised_by: str | None
) -> None:

    notices.send(
        ctx,
        ticket,
        template="manager_urgent",
        to=manager.email,
        now=now,
        purpose="manager",
        manager=manager,
        raised_by=raised_by,
        agents=notices.ticket_agents(ctx.cfg, ticket),
    )
    _event(ctx, ticket, now, "manager-paged", f"{manager.name} <{manager.email}>")


def _defer(
    ctx: Context, ticket: Row, manager: Manager, now: datetime, raised_by: str | None
) -> None:
    """Outside manager hours: a timer pages them when the next window opens."""
    start = ctx.cfg.manager_window.next_start(now)
    scheduler.add_timer(
        ctx,
        kind=PAGE_KIND,
        due=start,
        now=now,
        ticket_id=ticket["id"],
        payload={"manager": manager.email, "raised_by": raised_by},
    )
    _event(
        ctx,
        ticket,
        now,
        "manager-deferred",
        f"{manager.email} will be paged {start.isoformat()}"
        f" (outside manager hours {ctx.cfg.urgent.manager_hours})",
    )


@scheduler.handler(PAGE_KIND)
def fire_page(ctx: Context, timer: Row, now: datetime) -> bool:
    """The manager window opened: page the manager if the ticket still waits, urgent."""
    ticket = ctx.store.tickets.get(timer["ticket_id"]) if timer["ticket_id"] else None
    if (
        ticket is None
        or ticket["status"] != "open"
        or ticket["first_response_at"] is not None
        or ticket["priority"] != "urgent"
    ):
        return False
    manager = ctx.cfg.manager_for(ticket["requester"])
    if manager is None:
        _event(ctx, ticket, now, "escalation", "page dropped: no account manager any more")
        return False
    raised_by = json.loads(timer["payload"] or "{}").get("raised_by")
    if not ctx.cfg.manager_window.contains(now):
        # Fired at night (the daemon was down, or the clock jumped): wait for the window again.
        _defer(ctx, ticket, manager, now, raised_by)
        return True
    _page(ctx, ticket, manager, now, raised_by)
    ctx.store.execute(
        "UPDATE escalations SET paged_at = ? WHERE ticket_id = ? AND outcome = 'deferred'"
        " AND paged_at IS NULL",
        (to_db(now), ticket["id"]),
    )
    return True


# -- the admin's view ----------------------------------------------------------------------------


def reset(ctx: Context, customer: str, now: datetime) -> int:
    """Forgive a customer: their escalations so far no longer count; how many were."""
    customer = customer.strip().lower()
    forgiven = ctx.store.execute(
        "UPDATE escalations SET reset_at = ? WHERE customer = ? AND reset_at IS NULL",
        (to_db(now), customer),
    ).rowcount
    if forgiven:
        ctx.store.events.add(
            "escalations-reset",
            f"{customer}: {forgiven} urgent escalations no longer counted",
            at=now,
            actor="admin",
        )
    return forgiven


def summary(ctx: Context, now: datetime) -> list[dict[str, object]]:
    """Customers with counted escalations in the window: count, last one, guard state."""
    urgent = ctx.cfg.urgent
    rows = ctx.store.all(
        "SELECT customer, max(manager) AS manager, count(*) AS count, max(at) AS last"
        " FROM escalations"
        " WHERE source = 'customer' AND reset_at IS NULL AND at > ?"
        " GROUP BY customer ORDER BY count DESC, customer",
        (to_db(now - timedelta(days=WINDOW_DAYS)),),
    )
    return [
        {
            "customer": row["customer"],
            "manager": row["manager"],
            "count": row["count"],
            "last": notices.iso(ctx, row["last"]),
            "state": _state(row["count"], urgent.abuse_warn, urgent.abuse_limit),
        }
        for row in rows
    ]


def _state(count: int, warn: int, limit: int) -> str:
    if limit and count > limit:
        return "suspended"
    if warn and count >= warn:
        return "warned"
    return "ok"
