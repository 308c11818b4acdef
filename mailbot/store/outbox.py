"""Queries of the outbox: rows to deliver, their outcomes, and what was sent to whom."""

from __future__ import annotations

from datetime import datetime
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries, to_db


class Outbox(Queries):
    def insert(self, row: dict[str, Any]) -> int:
        return self.store.insert("outbox", row)

    def update(self, row_id: int, values: dict[str, Any]) -> None:
        self.store.update("outbox", row_id, values)

    def due(self, now: datetime, limit: int) -> list[Row]:
        """Pending rows whose time has come.

        Answers to customers first: an agent's notification can wait a moment, a customer
        waiting for the ack of their request should not.
        """
        return self.store.all(
            "SELECT * FROM outbox INDEXED BY outbox_due"  # the planner would scan otherwise
            " WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY auto_submitted = 'auto-replied' DESC, id LIMIT ?",
            (to_db(now), limit),
        )

    def next_due(self) -> datetime | None:
        """When the next pending row is due."""
        value = self.store.scalar(
            "SELECT min(next_attempt_at) FROM outbox INDEXED BY outbox_due WHERE status = 'pending'"
        )
        return datetime.fromisoformat(value) if value else None

    def first_notification(self, ticket_id: int, to: str) -> str | None:
        """The Message-ID of the new-ticket notification `to` got about the ticket."""
        return self.store.scalar(
            "SELECT message_id FROM outbox WHERE ticket_id = ? AND to_addr = ?"
            " AND template = 'agent_new' ORDER BY id LIMIT 1",
            (ticket_id, to),
        )

    def sent_to(self, ticket_id: int, to: str) -> list[str]:
        """The Message-IDs of the mail `to` got about the ticket, oldest first."""
        return [
            row[0]
            for row in self.store.all(
                "SELECT message_id FROM outbox WHERE ticket_id = ? AND to_addr = ? ORDER BY id",
                (ticket_id, to),
            )
        ]

    def automatic_since(self, address: str, recent: datetime, today: datetime) -> tuple[int, int]:
        """Automatic mail enqueued to `address` since `recent` and since `today`."""
        row = self.store.one(
            "SELECT count(*) FILTER (WHERE created_at > ?), count(*) FROM outbox"
            " WHERE to_addr = ? AND auto_submitted IS NOT NULL AND created_at > ?",
            (to_db(recent), address, to_db(today)),
        )
        assert row is not None
        return int(row[0]), int(row[1])

    def of_ticket(self, ticket_id: int) -> list[Row]:
        return self.store.all("SELECT * FROM outbox WHERE ticket_id = ? ORDER BY id", (ticket_id,))

    def listing(self, status: str | None = None) -> list[Row]:
        if status:
            return self.store.all("SELECT * FROM outbox WHERE status = ? ORDER BY id", (status,))
        return self.store.all("SELECT * FROM outbox ORDER BY id")
