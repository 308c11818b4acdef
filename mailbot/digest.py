"""The agents' digest: each agent's open tickets, overdue first, daily at opening and on #lista.

An agent's digest lists the tickets they look after: open and pending ones assigned to them,
and unassigned ones whose notifications go to them (`notices.ticket_agents`: their topics', and
those of no topic with agents). Overdue tickets come first (first response not sent and its due
time passed while the clock ran), then those whose clock runs, by due time, then those waiting
on the customer or already answered, oldest first. At most `LIMIT` are listed.

The daily digest is one `agent_digest` timer without a ticket, due at `[notifications] digest`
local time on the next business day; firing it sends every agent who did not opt out their
non-empty digest and schedules the next business day's, in one transaction, so a day's digest
goes out once however often the daemon restarts. `keep_scheduled` keeps that one timer in step
with the config (at start, on reload, on `run --once`): a daemon that was down at digest time
sends that day's digest when it starts within the day's opening hours, never a past day's.
On request (`#lista` / `#list`), `on_request` answers one agent with the same digest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from sqlite3 import Row
from typing import Any

from mailbot import notices
from mailbot.config import Config
from mailbot.decisions import CancelTimer, Plan, ScheduleTimer, Send
from mailbot.store import RowLike, Store, from_db, to_db
from mailbot.templates import format_when

KIND = "agent_digest"
TEMPLATE = "agent_digest"
LIMIT = 50  # tickets listed in one digest; the rest are counted
_SCAN_DAYS = 3660  # a calendar without a business day in ten years is a config error


# -- what one agent's digest holds ---------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One ticket of a digest and where it stands for the SLA now."""

    ticket: RowLike
    state: str  # overdue | running | paused | answered
    due: datetime | None  # first response due (None once answered)
    late: timedelta | None = None  # overdue: by how much (until the clock stopped, if it did)

    @property
    def order(self) -> tuple[int, str]:
        rank = ("overdue", "running", "paused", "answered").index(self.state)
        if self.state in ("overdue", "running"):
            return rank, to_db(self.due) if self.due else ""
        return rank, self.ticket["created_at"]


def sla_state(ticket: RowLike, now: datetime) -> Item:
    """Where a ticket's first response stands at `now`, by its true clock.

    A pending ticket's clock stands still: it is overdue only if its due time passed before the
    pause began (the due time moves by the pause once the clock runs again).
    """
    due = from_db(ticket["first_response_due"])
    if ticket["first_response_at"] is not None or due is None:
        return Item(ticket, "answered", None)
    paused_at = from_db(ticket["pending_since"])
    stopped = paused_at or now
    if due <= stopped:
        return Item(ticket, "overdue", due, stopped - due)
    return Item(ticket, "paused" if paused_at else "running", due)


def looks_after(cfg: Config, ticket: RowLike, agent: str) -> bool:
    """True when the ticket is the agent's: assigned to them, or unassigned and theirs to see."""
    if ticket["assignee"]:
        return str(ticket["assignee"]).lower() == agent
    return agent in (a.lower() for a in notices.ticket_agents(cfg, ticket))


def items_for(cfg: Config, tickets: Sequence[RowLike], agent: str, now: datetime) -> list[Item]:
    """The agent's tickets among `tickets` (open and pending), most urgent first."""
    agent = agent.lower()
    items = [sla_state(t, now) for t in tickets if looks_after(cfg, t, agent)]
    return sorted(items, key=lambda item: item.order)


def _span(delta: timedelta) -> dict[str, Any]:
    """A length of time as the templates word it: {"n": 3, "unit": "day"} (rounded down)."""
    minutes = max(1, int(delta.total_seconds() // 60))
    if minutes < 60:
        return {"n": minutes, "unit": "minute"}
    if minutes < 24 * 60:
        return {"n": minutes // 60, "unit": "hour"}
    return {"n": minutes // (24 * 60), "unit": "day"}


def _entry(cfg: Config, item: Item, agent: str, now: datetime, language: str) -> dict[str, Any]:
    """What a template shows of one ticket."""
    ticket = item.ticket
    created = from_db(ticket["created_at"])
    assert created is not None
    name = ticket["requester_name"] or ""
    return {
        "id": ticket["id"],
        "tag": notices.tag(cfg, ticket["id"]),
        "subject": ticket["subject"],
        "customer": f"{name} <{ticket['requester']}>" if name else ticket["requester"],
        "status": ticket["status"],
        "priority": ticket["priority"],
        "topic": ticket["topic"],
        "mine": bool(ticket["assignee"]) and str(ticket["assignee"]).lower() == agent,
        "state": item.state,
        "due_text": format_when(item.due.astimezone(cfg.tz), language) if item.due else "",
        "late": _span(item.late) if item.late is not None else None,
        "age": _span(now - created),
    }


def digest_send(
    cfg: Config,
    agent: str,
    items: list[Item],
    now: datetime,
    *,
    scheduled: bool,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
) -> Send:
    """The digest mail to one agent: their staff notice in the default language."""
    language = cfg.mailbot.default_language
    agent = agent.lower()
    mine = sum(1 for item in items if item.ticket["assignee"])
    return notices.to_staff(
        cfg,
        template=TEMPLATE,
        to=agent,
        in_reply_to=in_reply_to,
        references=references or None,
        # An answer to the agent's own #lista is auto-replied; the daily one auto-generated.
        auto_submitted="auto-generated" if scheduled else "auto-replied",
        company=cfg.mailbot.name,
        agent_name=notices.agent_name(cfg, agent),
        scheduled=scheduled,
        today_text=format_when(now.astimezone(cfg.tz), language).rsplit(", ", 1)[0],
        count=len(items),
        overdue=sum(1 for item in items if item.state == "overdue"),
        assigned=mine,
        unassigned=len(items) - mine,
        entries=[_entry(cfg, item, agent, now, language) for item in items[:LIMIT]],
        more=max(0, len(items) - LIMIT),
    )


def on_request(
    plan: Plan,
    store: Store,
    cfg: Config,
    agent: str,
    *,
    in_reply_to: str | None,
    references: tuple[str, ...] = (),
) -> None:
    """`#lista`: the agent's digest as an answer to their mail, whether empty or not.

    The plan's own ticket is listed as the plan leaves it (answered, assigned, closed…).
    """
    tickets: dict[int, RowLike] = {t["id"]: t for t in store.tickets.unclosed()}
    if plan.ticket_id is not None:
        tickets[plan.ticket_id] = plan.ticket
    unclosed = [t for t in tickets.values() if t["status"] != "closed"]
    items = items_for(cfg, unclosed, agent, plan.now)
    refs = tuple(dict.fromkeys((*references, *([in_reply_to] if in_reply_to else ()))))
    plan.add(
        digest_send(
            cfg, agent, items, plan.now, scheduled=False, in_reply_to=in_reply_to, references=refs
        )
    )
    plan.event("digest", f"digest on request: {len(items)} tickets", agent)


# -- when the daily digest goes ------------------------------------------------------------------


def _moment(cfg: Config, day: date, clock: time) -> datetime:
    """`clock` on `day` in the configured zone (a time in a spring-forward gap moves on)."""
    return datetime.combine(day, clock).replace(tzinfo=cfg.tz).astimezone(cfg.tz)


def _late_until(cfg: Config, day: date, clock: time) -> datetime:
    """Until when a day's digest is still worth sending: closing time, or midnight if later."""
    if clock < cfg.hours.closes:
        return _moment(cfg, day, cfg.hours.closes)
    return _moment(cfg, day + timedelta(days=1), time(0))


def next_slot(cfg: Config, now: datetime, sent_day: date | None) -> tuple[date, datetime] | None:
    """(day, moment) of the next digest due: today's if it is a business day, not sent yet and
    not too late, else the next business day's. None when the digest is off.
    """
    clock = cfg.notifications.digest
    if clock is None:
        return None
    day = now.astimezone(cfg.tz).date()
    for _ in range(_SCAN_DAYS):
        if (
            cfg.calendar.is_business_day(day)
            and (sent_day is None or day > sent_day)
            and now < _late_until(cfg, day, clock)
        ):
            return day, _moment(cfg, day, clock)
        day += timedelta(days=1)
    raise ValueError(f"no business day within {_SCAN_DAYS} days of {now.date()}")


def _day(timer: RowLike) -> date | None:
    day = json.loads(timer["payload"] or "{}").get("day")
    return date.fromisoformat(day) if day else None


def _last_sent_day(store: Store) -> date | None:
    """The day of the latest digest timer that fired (or gave up): that day is done."""
    days = [
        d
        for status in ("fired", "failed")
        for t in store.timers.unattached(KIND, status, limit=1)
        if (d := _day(t))
    ]
    return max(days, default=None)


def keep_scheduled(store: Store, cfg: Config, now: datetime) -> Plan | None:
    """The one digest timer the config asks for; None when it is there already."""
    slot = next_slot(cfg, now, _last_sent_day(store))
    plan = Plan(now)
    kept = False
    for timer in store.timers.unattached(KIND, "scheduled", limit=100):
        if not kept and slot and timer["due_at"] == to_db(slot[1]) and _day(timer) == slot[0]:
            kept = True
            continue
        plan.add(CancelTimer(timer["id"]))
    if slot and not kept:
        plan.add(ScheduleTimer(KIND, slot[1], {"day": slot[0].isoformat()}))
        plan.event("digest", f"next daily digest {slot[1].isoformat()}")
    return plan if plan.decisions else None


def fire(store: Store, cfg: Config, timer: Row, now: datetime) -> Plan | None:
    """Digest time: every agent who did not opt out gets their non-empty digest.

    Fired late (the daemon was down), it sends only on its own day within opening hours. Either
    way the next business day's digest is scheduled in the same transaction.
    """
    clock = cfg.notifications.digest
    day = _day(timer)
    if clock is None or day is None:
        return None  # switched off since; keep_scheduled cancels what is left
    plan = Plan(now)
    if now.astimezone(cfg.tz).date() == day and now < _late_until(cfg, day, clock):
        _send_all(plan, store, cfg, day)
    else:
        plan.acted = False
        plan.event("digest", f"digest of {day} not sent: it is {now.astimezone(cfg.tz)} now")
    slot = next_slot(cfg, now, day)
    if slot:
        plan.add(ScheduleTimer(KIND, slot[1], {"day": slot[0].isoformat()}))
    return plan


def _send_all(plan: Plan, store: Store, cfg: Config, day: date) -> None:
    tickets = store.tickets.unclosed()
    sent, empty, off = [], [], []
    for agent in cfg.agents:
        if not agent.digest:
            off.append(agent.email)
            continue
        items = items_for(cfg, tickets, agent.email, plan.now)
        if not items:
            empty.append(agent.email)
            continue
        plan.add(digest_send(cfg, agent.email, items, plan.now, scheduled=True))
        sent.append(f"{agent.email} ({len(items)})")
    plan.event(
        "digest",
        f"daily digest of {day}: sent to {', '.join(sent) or 'nobody'}"
        + (f"; nothing open for {', '.join(empty)}" if empty else "")
        + (f"; opted out: {', '.join(off)}" if off else ""),
    )
