"""SLA compliance report: tickets received, answered in time, breached, first-response times.

Times are business hours (opening hours of business days on the current calendar), with the
clock's pauses (#pending, closed unanswered) left out, as the SLA counts them. A ticket is
*within SLA* when its first answer came by its due time, *breached* when the answer came later
or the clock ran past the due time without one. Agents are credited with the tickets they
answered first (the first outgoing agent message).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time
from sqlite3 import Row

from mailbot.context import Context
from mailbot.sla import BusinessCalendar
from mailbot.store import from_db

COLUMNS = ("received", "answered", "within_sla", "breached", "median_hours", "p90_hours")
UNANSWERED = "(unanswered)"


@dataclass
class Group:
    """Counts and first-response times (business seconds) of one slice of tickets."""

    received: int = 0
    answered: int = 0
    within_sla: int = 0
    breached: int = 0
    seconds: list[float] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.received += 1
        self.breached += outcome.breached
        if outcome.seconds is not None:
            self.answered += 1
            self.within_sla += not outcome.breached
            self.seconds.append(outcome.seconds)

    def document(self) -> dict[str, object]:
        hours = sorted(s / 3600 for s in self.seconds)
        return {
            "received": self.received,
            "answered": self.answered,
            "within_sla": self.within_sla,
            "breached": self.breached,
            "median_hours": round(statistics.median(hours), 2) if hours else None,
            "p90_hours": round(percentile(hours, 90), 2) if hours else None,
        }


@dataclass(frozen=True)
class Outcome:
    breached: bool
    seconds: float | None  # business seconds to the first answer; None while unanswered


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks of sorted `values` (numpy's default)."""
    if len(values) == 1:
        return values[0]
    rank = (len(values) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _outcome(ctx: Context, ticket: Row, pauses: list[Row], now: datetime) -> Outcome:
    cal = ctx.cfg.calendar
    created, answered = from_db(ticket["created_at"]), from_db(ticket["first_response_at"])
    due = from_db(ticket["first_response_due"])
    assert created is not None
    if answered is not None:
        paused = sum(_paused(cal, p, created, answered, now) for p in pauses)
        seconds = max(0.0, cal.business_seconds_between(created, answered) - paused)
        return Outcome(breached=due is not None and answered > due, seconds=seconds)
    # Unanswered: breached if the clock ran past the due time before it stopped (if it did).
    stopped = min((_started(p) for p in pauses if p["ended_at"] is None), default=now)
    return Outcome(breached=due is not None and stopped > due, seconds=None)


def _started(pause: Row) -> datetime:
    started = from_db(pause["started_at"])
    assert started is not None  # sla_pauses.started_at is NOT NULL
    return started


def _paused(
    cal: BusinessCalendar, pause: Row, start: datetime, end: datetime, now: datetime
) -> float:
    """Business seconds of `pause` that fall between `start` and `end`."""
    lo = max(from_db(pause["started_at"]) or start, start)
    hi = min(from_db(pause["ended_at"]) or now, end)
    return cal.business_seconds_between(lo, hi)


def build(ctx: Context, now: datetime, since: date | None = None) -> dict[str, object]:
    """The report as one document: totals, per language, per agent who answered first, and
    per mailbox when there are several support addresses."""
    store = ctx.store
    start = datetime.combine(since, time(0), tzinfo=ctx.cfg.tz) if since else None
    first_agent = store.messages.first_answerers()
    pauses = store.pauses.by_ticket()
    total = Group()
    languages: dict[str, Group] = {}
    agents: dict[str, Group] = {}
    mailboxes: dict[str, Group] = {m.address: Group() for m in ctx.cfg.mailboxes}
    for ticket in store.tickets.created_since(start):
        outcome = _outcome(ctx, ticket, pauses.get(ticket["id"], []), now)
        total.add(outcome)
        languages.setdefault(ticket["language"], Group()).add(outcome)
        mailboxes.setdefault(ticket["mailbox"] or ctx.cfg.mailbot.address, Group()).add(outcome)
        agent = first_agent.get(ticket["id"]) if ticket["first_response_at"] else None
        agents.setdefault(agent or UNANSWERED, Group()).add(outcome)
    doc: dict[str, object] = {
        "since": since.isoformat() if since else None,
        "generated_at": now.astimezone(ctx.cfg.tz).isoformat(timespec="seconds"),
        "timezone": str(ctx.cfg.tz),
        "total": total.document(),
        "languages": {name: g.document() for name, g in sorted(languages.items())},
        # Agents by address; tickets nobody has answered yet last.
        "agents": {
            name: g.document()
            for name, g in sorted(agents.items(), key=lambda item: (item[0] == UNANSWERED, item[0]))
        },
    }
    if len(mailboxes) > 1:  # several support addresses: each one's share, in config order
        doc["mailboxes"] = {name: g.document() for name, g in mailboxes.items()}
    return doc


def render(doc: dict) -> str:
    """The plain report: one aligned table, a row per slice."""
    since = f"since {doc['since']}" if doc["since"] else "all time"
    rows: list[tuple[str, dict]] = [("all tickets", doc["total"])]
    rows += [(f"language {name}", g) for name, g in doc["languages"].items()]
    rows += [(f"mailbox {name}", g) for name, g in doc.get("mailboxes", {}).items()]
    rows += [(f"agent {name}", g) for name, g in doc["agents"].items()]
    header = ("", "RECEIVED", "ANSWERED", "WITHIN SLA", "BREACHED", "MEDIAN H", "P90 H")
    cells = [header] + [(label, *(_cell(g[c]) for c in COLUMNS)) for label, g in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        f"SLA report, {since} (first-response times in business hours, {doc['timezone']})",
        "",
    ]
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = "  ".join(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True))
        lines.append(f"{first}  {rest}".rstrip())
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
