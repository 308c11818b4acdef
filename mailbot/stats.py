"""`mailbot stats`: the figures the metrics endpoint exports, read from the database.

The endpoint's counters count what one daemon process did since it started; here the same
figures are lifetime totals from the tables (mail by source and outcome, tickets, outgoing mail
by template and status, breaches, acknowledgement times), next to the same gauges.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from mailbot.metrics import ACK_BUCKETS
from mailbot.store import Store


def _nested(rows: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for outer, inner, count in rows:
        out.setdefault(outer, {})[inner] = count
    return out


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    """Count, sum, median, 90th percentile and cumulative buckets (as the histogram has them)."""
    ordered = sorted(seconds)
    buckets = {str(b): sum(1 for s in ordered if s <= b) for b in ACK_BUCKETS}
    buckets["+Inf"] = len(ordered)
    p90 = statistics.quantiles(ordered, n=10)[-1] if len(ordered) > 1 else None
    return {
        "count": len(ordered),
        "sum": round(sum(ordered), 3),
        "median": statistics.median(ordered) if ordered else None,
        "p90": p90 if p90 is not None else (ordered[0] if ordered else None),
        "buckets": buckets,
    }


def build(store: Store, now: datetime) -> dict[str, Any]:
    gauges = store.stats.gauges(now)
    opened, closed = store.stats.tickets()
    trips, tripped, held = store.stats.flood_breaker()
    return {
        "at": now.isoformat(timespec="seconds"),
        "inbound": {
            "pending": gauges["inbound_pending"],
            "quarantined": gauges["quarantined"],
            "by_source": _nested(store.stats.inbound_outcomes()),
        },
        "tickets": {
            "opened": opened,
            "closed": closed,
            "unanswered": gauges["unanswered"],
            "oldest_unanswered_seconds": gauges["oldest_unanswered_seconds"],
            "next_breach_seconds": gauges["next_breach_seconds"],
            "sla_breaches": store.stats.breaches(),
        },
        "outbox": {
            "pending": gauges["outbox_pending"],
            "failed": gauges["outbox_failed"],
            "by_template": _nested(store.stats.outgoing()),
        },
        "intake_to_ack_seconds": latency_summary(store.stats.ack_latencies()),
        # The breaker on automatic answers to customers ([limits] auto_replies_per_minute).
        "flood_breaker": {"trips": trips, "last_tripped": tripped, "last_held": held},
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 120:
        return f"{sign}{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{sign}{seconds / 60:.0f} min"
    return f"{sign}{seconds / 3600:.1f} h"


def render(doc: dict[str, Any]) -> str:
    inbound, tickets, outbox = doc["inbound"], doc["tickets"], doc["outbox"]
    ack = doc["intake_to_ack_seconds"]
    oldest = _duration(tickets["oldest_unanswered_seconds"])
    lines = [
        f"tickets: {tickets['opened']} opened, {tickets['closed']} closed,"
        f" {tickets['unanswered']} unanswered (oldest {oldest}),"
        f" next breach in {_duration(tickets['next_breach_seconds'])},"
        f" {tickets['sla_breaches']} breaches so far",
        f"inbound: {inbound['pending']} waiting, {inbound['quarantined']} in quarantine",
    ]
    for source, outcomes in inbound["by_source"].items():
        counts = ", ".join(f"{n} {status}" for status, n in outcomes.items())
        lines.append(f"  {source}: {counts}")
    lines.append(f"outbox: {outbox['pending']} pending, {outbox['failed']} failed")
    for template, statuses in outbox["by_template"].items():
        counts = ", ".join(f"{n} {status}" for status, n in statuses.items())
        lines.append(f"  {template}: {counts}")
    lines.append(
        f"acknowledgements: {ack['count']} sent, median {_duration(ack['median'])}"
        f" and 90% within {_duration(ack['p90'])} of the mail's arrival"
    )
    breaker = doc["flood_breaker"]
    if breaker["trips"]:
        lines.append(
            f"flood breaker: tripped {breaker['trips']} times, last at {breaker['last_tripped']};"
            f" last answer held at {breaker['last_held'] or breaker['last_tripped']}"
        )
    return "\n".join(lines)
