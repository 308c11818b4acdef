"""Queries of tickets, their participants and the pauses of their SLA clock."""

from __future__ import annotations

from datetime import datetime
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries, to_db

# The queue: unanswered open tickets. Named: without statistics the planner prefers
# tickets_status and reads the rows.
QUEUED = "FROM tickets INDEXED BY tickets_queue WHERE status = 'open' AND first_response_at IS NULL"
RECENT_QUEUE = 500  # queue_position counts up to this many later tickets before earlier ones


class Tickets(Queries):
    def get(self, ticket_id: int) -> Row | None:
        return self.store.one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))

    def exists(self, ticket_id: int) -> bool:
        return bool(self.store.scalar("SELECT 1 FROM tickets WHERE id = ?", (ticket_id,)))

    def key(self, ticket_id: int) -> tuple[bool, str | None]:
        """(whether the ticket exists, its token key: None for tickets from before m012)."""
        row = self.store.one("SELECT token_key FROM tickets WHERE id = ?", (ticket_id,))
        return (row is not None, row[0] if row else None)

    def insert(self, row: dict[str, Any]) -> int:
        return self.store.insert("tickets", row)

    def update(self, ticket_id: int, changes: dict[str, Any]) -> None:
        self.store.update("tickets", ticket_id, changes)

    def listing(self, status: str | None = None) -> list[Row]:
        if status:
            return self.store.all("SELECT * FROM tickets WHERE status = ? ORDER BY id", (status,))
        return self.store.all("SELECT * FROM tickets ORDER BY id")

    def filtered(
        self, status: str | None = None, assignee: str | None = None, topic: str | None = None
    ) -> list[Row]:
        """Tickets by status, assignee (email) and topic (its `name`); None matches any."""
        return self.store.all(
            "SELECT * FROM tickets WHERE (:status IS NULL OR status = :status)"
            " AND (:assignee IS NULL OR lower(assignee) = lower(:assignee))"
            " AND (:topic IS NULL OR topic = :topic) ORDER BY id",
            {"status": status, "assignee": assignee, "topic": topic},
        )

    def created_since(self, since: datetime | None) -> list[Row]:
        if since is None:
            return self.listing()
        return self.store.all(
            "SELECT * FROM tickets WHERE created_at >= ? ORDER BY id", (to_db(since),)
        )

    def latest_with_subject(self, requester: str, subject: str, before: datetime) -> int | None:
        """The requester's latest ticket with this subject created by `before` (history)."""
        return self.store.scalar(
            "SELECT id FROM tickets WHERE requester = ? AND subject = ? AND created_at <= ?"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (requester.lower(), subject, to_db(before)),
        )

    def unclosed_from(self, sources: tuple[str, ...], before: datetime) -> list[Row]:
        """Open and pending tickets with mail from these inbound sources (a history import)
        and nothing newer than `before`."""
        marks = ", ".join("?" * len(sources))
        return self.store.all(
            "SELECT * FROM tickets WHERE status IN ('open', 'pending') AND updated_at < ?"
            " AND id IN (SELECT ticket_id FROM inbound"
            f" WHERE source IN ({marks}) AND ticket_id IS NOT NULL) ORDER BY id",
            (to_db(before), *sources),
        )

    def unclosed(self) -> list[Row]:
        """Open and pending tickets, oldest first (agents' digests pick theirs from these)."""
        return self.store.all(
            "SELECT * FROM tickets WHERE status IN ('open', 'pending') ORDER BY created_at, id"
        )

    def clock_running(self) -> list[Row]:
        """Open, unanswered tickets not waiting on the customer: their SLA clock runs."""
        return self.store.all(
            "SELECT * FROM tickets WHERE status = 'open' AND first_response_at IS NULL"
            " AND pending_since IS NULL ORDER BY id"
        )

    def queue_length(self) -> int:
        """Unanswered open tickets, as the triggers of m004 count them."""
        return int(self.store.scalar("SELECT value FROM counters WHERE name = 'queue'"))

    def queue_position(self, created_at: str) -> int:
        """1 + unanswered open tickets that arrived earlier: requests are handled in order.

        The queue's length is kept by triggers (m004); a new ticket's place is that length + 1.
        For one in the queue, counting reads an index entry per ticket. A customer mostly
        writes again soon after writing first, when few tickets came since: those are counted
        first, up to RECENT_QUEUE, and the queue less them is what is ahead. Only for an older
        ticket are the tickets ahead of it counted.
        """
        queued = self.queue_length()
        since = self.store.scalar(
            f"SELECT count(*) FROM (SELECT 1 {QUEUED} AND created_at >= ? LIMIT ?)",
            (created_at, RECENT_QUEUE),
        )
        if since < RECENT_QUEUE:
            return max(1, queued - since + 1)
        ahead = self.store.scalar(f"SELECT count(*) {QUEUED} AND created_at < ?", (created_at,))
        return int(ahead) + 1


class Participants(Queries):
    def add(self, ticket_id: int, address: str, name: str, role: str) -> None:
        """The first role an address takes in a ticket stays (the requester stays requester)."""
        self.store.execute(
            "INSERT OR IGNORE INTO participants (ticket_id, address, name, role)"
            " VALUES (?, ?, ?, ?)",
            (ticket_id, address, name, role),
        )

    def takes_part(self, ticket_id: int, address: str) -> bool:
        return bool(
            self.store.scalar(
                "SELECT 1 FROM participants WHERE ticket_id = ? AND address = ?",
                (ticket_id, address.lower()),
            )
        )

    def ccs(self, ticket_id: int) -> list[str]:
        return [
            row["address"]
            for row in self.store.all(
                "SELECT address FROM participants WHERE ticket_id = ? AND role = 'cc'",
                (ticket_id,),
            )
        ]

    def of_ticket(self, ticket_id: int) -> list[Row]:
        return self.store.all("SELECT * FROM participants WHERE ticket_id = ?", (ticket_id,))


class Pauses(Queries):
    """`sla_pauses`: the SLA clock stood still from started_at to ended_at (NULL: still)."""

    def open(self, ticket_id: int) -> Row | None:
        return self.store.one(
            "SELECT * FROM sla_pauses WHERE ticket_id = ? AND ended_at IS NULL", (ticket_id,)
        )

    def finished(self, ticket_id: int) -> list[Row]:
        return self.store.all(
            "SELECT started_at, ended_at FROM sla_pauses WHERE ticket_id = ?"
            " AND ended_at IS NOT NULL ORDER BY started_at, id",
            (ticket_id,),
        )

    def start(self, ticket_id: int, reason: str, at: datetime) -> None:
        self.store.insert(
            "sla_pauses", {"ticket_id": ticket_id, "reason": reason, "started_at": to_db(at)}
        )

    def end(self, pause_id: int, at: datetime) -> None:
        self.store.update("sla_pauses", pause_id, {"ended_at": to_db(at)})

    def by_ticket(self) -> dict[int, list[Row]]:
        """Every pause, grouped by ticket, oldest first (for the SLA report)."""
        grouped: dict[int, list[Row]] = {}
        for pause in self.store.all("SELECT * FROM sla_pauses ORDER BY id"):
            grouped.setdefault(pause["ticket_id"], []).append(pause)
        return grouped
