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
        """Pending rows whose time has come: what deciding on them needs, not their bodies.

        Answers to customers first: an agent's notification can wait a moment, a customer
        waiting for the ack of their request should not. The body and the rest of a row are
        read one row at a time, just before it is sent (`get`).
        """
        return self.store.all(
            "SELECT id, ticket_id, template, to_addr, message_id, attempts, created_at,"
            " requeued_at, sending_since"
            " FROM outbox INDEXED BY outbox_due"  # the planner would scan otherwise
            " WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY auto_submitted = 'auto-replied' DESC, id LIMIT ?",
            (to_db(now), limit),
        )

    def get(self, row_id: int) -> Row | None:
        return self.store.one("SELECT * FROM outbox WHERE id = ?", (row_id,))

    def requeue(self, row_id: int, now: datetime) -> bool:
        """Put a failed, cancelled or waiting row back to be sent now, with a fresh queue
        lifetime; False when there is no such row or it was sent."""
        cursor = self.store.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?,"
            " requeued_at = ?, sending_since = NULL WHERE id = ? AND status != 'sent'",
            (to_db(now), to_db(now), row_id),
        )
        return cursor.rowcount > 0

    def ids(self, status: str) -> list[int]:
        return [r[0] for r in self.store.all("SELECT id FROM outbox WHERE status = ?", (status,))]

    def cancel(self, row_id: int) -> bool:
        """Drop a row that was not sent: it is kept, marked cancelled, and never sent."""
        cursor = self.store.execute(
            "UPDATE outbox SET status = 'cancelled', sending_since = NULL"
            " WHERE id = ? AND status IN ('pending', 'failed')",
            (row_id,),
        )
        return cursor.rowcount > 0

    def failing(self) -> bool:
        """True while outgoing mail fails for good and the leads were told of it."""
        return bool(self.store.scalar("SELECT value FROM counters WHERE name = 'outbox_failing'"))

    def set_failing(self, value: bool) -> bool:
        """Record the failing state; True when it changed."""
        cursor = self.store.execute(
            "UPDATE counters SET value = ? WHERE name = 'outbox_failing' AND value != ?",
            (int(value), int(value)),
        )
        return cursor.rowcount > 0

    def count(self, status: str) -> int:
        return int(self.store.scalar("SELECT count(*) FROM outbox WHERE status = ?", (status,)))

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

    def automatic_answers(
        self, since: datetime, domain: str, domain_since: datetime
    ) -> tuple[int, int]:
        """Automatic answers (`auto-replied`) enqueued since `since` to anyone, and since
        `domain_since` to addresses at `domain`: (all, the domain's). Reads outbox_automatic."""
        row = self.store.one(
            "SELECT count(*) FILTER (WHERE created_at > ?),"
            " count(*) FILTER (WHERE substr(to_addr, instr(to_addr, '@') + 1) = ?)"
            " FROM outbox WHERE auto_submitted = 'auto-replied' AND created_at > ?",
            (to_db(since), domain, to_db(min(since, domain_since))),
        )
        assert row is not None
        return int(row[0]), int(row[1])

    def of_ticket(self, ticket_id: int) -> list[Row]:
        return self.store.all("SELECT * FROM outbox WHERE ticket_id = ? ORDER BY id", (ticket_id,))

    def listing(self, status: str | None = None) -> list[Row]:
        if status:
            return self.store.all("SELECT * FROM outbox WHERE status = ? ORDER BY id", (status,))
        return self.store.all("SELECT * FROM outbox ORDER BY id")
