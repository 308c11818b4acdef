"""Queries of urgent escalations: pages to account managers and the abuse guard's counts."""

from __future__ import annotations

from datetime import datetime
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries, to_db


class Escalations(Queries):
    def insert(self, row: dict[str, Any]) -> int:
        return self.store.insert("escalations", row)

    def counted(self, customer: str, since: datetime) -> int:
        """The customer's own escalations since `since`, not forgiven by a reset."""
        return int(
            self.store.scalar(
                "SELECT count(*) FROM escalations WHERE customer = ? AND source = 'customer'"
                " AND reset_at IS NULL AND at > ?",
                (customer.lower(), to_db(since)),
            )
        )

    def paged(self, ticket_id: int) -> bool:
        """Whether the ticket's manager was paged already, or will be (deferred)."""
        return bool(
            self.store.scalar(
                "SELECT 1 FROM escalations WHERE ticket_id = ?"
                " AND outcome IN ('paged', 'deferred')",
                (ticket_id,),
            )
        )

    def suspended_since(self, customer: str, since: datetime) -> bool:
        return bool(
            self.store.scalar(
                "SELECT 1 FROM escalations WHERE customer = ? AND outcome = 'suspended'"
                " AND reset_at IS NULL AND at > ?",
                (customer.lower(), to_db(since)),
            )
        )

    def mark_paged(self, ticket_id: int, now: datetime) -> None:
        """A deferred page went out."""
        self.store.execute(
            "UPDATE escalations SET paged_at = ? WHERE ticket_id = ? AND outcome = 'deferred'"
            " AND paged_at IS NULL",
            (to_db(now), ticket_id),
        )

    def reset(self, customer: str, now: datetime) -> int:
        """The customer's escalations so far no longer count; returns how many did."""
        return self.store.execute(
            "UPDATE escalations SET reset_at = ? WHERE customer = ? AND reset_at IS NULL",
            (to_db(now), customer.lower()),
        ).rowcount

    def per_customer(self, since: datetime) -> list[Row]:
        """Customers with counted escalations since `since`: count, last one, a manager."""
        return self.store.all(
            "SELECT customer, max(manager) AS manager, count(*) AS count, max(at) AS last"
            " FROM escalations"
            " WHERE source = 'customer' AND reset_at IS NULL AND at > ?"
            " GROUP BY customer ORDER BY count DESC, customer",
            (to_db(since),),
        )
