"""Queries behind the metrics endpoint and `mailbot stats`: cheap, indexed, one snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.store.base import Queries, from_db, to_db

BREACH_KIND = "sla_breach"


class Stats(Queries):
    def gauges(self, now: datetime) -> dict[str, Any]:
        """How things stand: backlogs, the queue, its oldest ticket and the nearest breach.

        One statement (one snapshot), each part an index search: cheap enough for every scrape.
        """
        row = self.store.one(
            "SELECT"
            " (SELECT count(*) FROM inbound WHERE status = 'pending') AS inbound_pending,"
            " (SELECT count(*) FROM inbound INDEXED BY inbound_status"
            "  WHERE status = 'quarantined') AS quarantined,"
            " (SELECT count(*) FROM outbox INDEXED BY outbox_due"
            "  WHERE status = 'pending') AS outbox_pending,"
            " (SELECT count(*) FROM outbox INDEXED BY outbox_failed"
            "  WHERE status = 'failed') AS outbox_failed,"
            " (SELECT value FROM counters WHERE name = 'queue') AS unanswered,"
            " (SELECT min(created_at) FROM tickets INDEXED BY tickets_queue"
            "  WHERE status = 'open' AND first_response_at IS NULL) AS oldest_unanswered,"
            # In due order: stops at the first breach timer, past any warnings before it.
            " (SELECT due_at FROM timers INDEXED BY timers_due"
            "  WHERE status = 'scheduled' AND kind = :breach ORDER BY due_at LIMIT 1)"
            " AS next_breach",
            {"breach": BREACH_KIND},
        )
        assert row is not None
        figures = dict(row)
        oldest, breach = (
            from_db(figures.pop("oldest_unanswered")),
            from_db(figures.pop("next_breach")),
        )
        figures["oldest_unanswered_seconds"] = (now - oldest).total_seconds() if oldest else None
        figures["next_breach_seconds"] = (breach - now).total_seconds() if breach else None
        return figures

    def inbound_outcomes(self) -> list[tuple[str, str, int]]:
        """(source, status, count) of every message ever stored (from the index alone)."""
        return [
            (r[0], r[1], r[2])
            for r in self.store.all(
                "SELECT source, status, count(*) FROM inbound INDEXED BY inbound_status"
                " GROUP BY status, source ORDER BY source, status"
            )
        ]

    def tickets(self) -> tuple[int, int]:
        """(tickets ever opened, tickets closed now)."""
        row = self.store.one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'closed') FROM tickets"
        )
        assert row is not None
        return int(row[0]), int(row[1])

    def outgoing(self) -> list[tuple[str, str, int]]:
        """(template, status, count) of every outbox row (reads the outbox: for the CLI)."""
        return [
            (r[0], r[1], r[2])
            for r in self.store.all(
                "SELECT template, status, count(*) FROM outbox GROUP BY template, status"
                " ORDER BY template, status"
            )
        ]

    def breaches(self) -> int:
        """SLA breaches so far (breach timers that fired)."""
        return int(
            self.store.scalar(
                "SELECT count(*) FROM timers WHERE kind = ? AND status = 'fired'", (BREACH_KIND,)
            )
        )

    def flood_breaker(self) -> tuple[int, str | None, str | None]:
        """(times the flood breaker tripped, when it last did, when it last held an answer);
        from the events_guard index (`mailbot.loops`)."""
        row = self.store.one(
            "SELECT count(*) FILTER (WHERE kind = 'flood-tripped'),"
            " max(at) FILTER (WHERE kind = 'flood-tripped'),"
            " max(at) FILTER (WHERE kind != 'flood-tripped')"
            " FROM events WHERE kind IN ('flood-tripped', 'flood-held', 'flood-held-hot',"
            " 'unverified-warned') AND kind != 'unverified-warned'"
        )
        assert row is not None
        return int(row[0]), row[1], row[2]

    def ack_latencies(self, since: datetime | None = None) -> list[float]:
        """Seconds from a new ticket's arrival to its acknowledgement reaching the relay."""
        rows = self.store.all(
            "SELECT (julianday(o.sent_at) - julianday(t.created_at)) * 86400.0"
            " FROM outbox o JOIN tickets t ON t.id = o.ticket_id"
            " WHERE o.template = 'ack' AND o.status = 'sent' AND t.created_at >= ?",
            (to_db(since) if since else "",),
        )
        return [max(0.0, float(r[0])) for r in rows]
